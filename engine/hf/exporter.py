"""Engine checkpoint → Hugging Face model directory, streamed one layer at a time.

Reads any checkpoint the trainer saved (any TP/PP/DP layout: megatron stores tensors in global
coordinates), one layer of each tensor at a time (`engine.checkpoint.reader`; no process group
needed), maps them through `engine.hf.name_map` and appends them to sharded safetensors. Peak
memory is about one layer plus the embedding, not the model. Writes config.json,
generation_config.json and, when given a tokenizer directory, its files.

The output directory must be new or empty: files left from another model beside new shards
would be loaded in their place (a lone `model.safetensors` wins over a new index). With
`overwrite`, the model files already there (weights, indexes, configs, tokenizer files) are
removed first and anything else is left alone.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from engine.checkpoint.reader import CheckpointTensors
from engine.checkpoint.weights import find_checkpoint, stored_model_config
from engine.errors import CheckpointError
from engine.hf.config import hf_config_from_model
from engine.hf.name_map import hf_names, rules
from engine.hf.safetensors_io import HFWriter

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "tokenizer.model", "chat_template.jinja")
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}
MODEL_FILES = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin",
               "pytorch_model.bin.index.json", "config.json", "generation_config.json",
               *TOKENIZER_FILES)


def prepare_output(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty `out`, or with `overwrite` clear the model files in it."""
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"--out {out} is a file, not a directory")
    present = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if present and not overwrite:
        raise CheckpointError(f"--out {out} is not empty ({', '.join(present[:4])}"
                              f"{', ...' if len(present) > 4 else ''}): choose a new directory, "
                              f"or pass --overwrite to replace the model in it")
    for pattern in MODEL_FILES if present else ():
        for old in out.glob(pattern):
            old.unlink()


def export_hf(ckpt: str | Path, out: str | Path, tokenizer: str | Path | None = None,
              dtype: str | None = None, progress=None, overwrite: bool = False,
              part: str | None = None) -> dict:
    """Write the HF model of checkpoint `ckpt` (or of a run dir's newest checkpoint) into
    `out`: the policy, or with `part` a model saved beside it (PPO's "value": an HF
    ...ForSequenceClassification); returns what was written."""
    ckpt, out = find_checkpoint(ckpt), Path(out)
    m, _ = stored_model_config(ckpt, part)
    prepare_output(out, overwrite)
    stored = CheckpointTensors(ckpt, f"{part}." if part else "")
    target = DTYPES[dtype] if dtype else None
    order = [(layer, rule) for layer in [None, *range(m.num_layers)]
             for rule in rules(m) if rule.per_layer == (layer is not None)]
    plan = []  # names, dtypes and shapes, from meta tensors: the writer streams against it
    for layer, rule in order:
        meta = stored.meta_tensor(rule.engine_key, layer)
        plan += [(name, target or t.dtype, tuple(t.shape))
                 for name, t in zip(hf_names(rule, layer), rule.to_hf(m, meta))]
    writer = HFWriter(out, plan)
    for i, (layer, rule) in enumerate(order):
        tensors = rule.to_hf(m, stored.read(rule.engine_key, layer))
        for name, tensor in zip(hf_names(rule, layer), tensors):
            writer.add(name, tensor.to(target or tensor.dtype))
        if progress is not None and (i + 1 == len(order) or order[i + 1][0] != layer):
            progress(layer)
    writer.close()
    written_dtype = str(target or stored.dtype("embedding.word_embeddings.weight"))
    (out / "config.json").write_text(json.dumps(
        hf_config_from_model(m, written_dtype.replace("torch.", "")), indent=2))
    generation = {"do_sample": True}
    copied = []
    if tokenizer is not None:
        from engine.data.tokenizer import load_tokenizer

        tok = load_tokenizer(str(tokenizer))
        generation.update(bos_token_id=tok.bos_id, eos_token_id=tok.eos_id)
        for name in TOKENIZER_FILES:
            if (Path(tokenizer) / name).is_file():
                shutil.copy(Path(tokenizer) / name, out / name)
                copied.append(name)
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2))
    return {"checkpoint": str(ckpt), "out": str(out), "bytes": writer.total_bytes,
            "shards": len(writer.shards), "dtype": written_dtype, "tokenizer_files": copied}

