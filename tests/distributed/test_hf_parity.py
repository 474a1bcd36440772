"""Hugging Face ↔ engine: logits (a value model's values) equal `transformers` after loading
(TP=1, TP=2, PP=2), export reproduces the original tensors bit for bit, and a checkpoint trained
at TP=2 × PP=2 exports to a model `transformers` loads with the engine's logits."""

import json

import pytest
import torch

from engine.hf.safetensors_io import HFReader
from engine.recipe import load_recipe
from tests.hf_models import SHAPES
from tests.util import ROOT, launch, script_json


def _parity(hf_dir, nproc, *args):
    return script_json(["tests.scripts.hf_parity", str(hf_dir), *args], nproc, "max_abs_diff")


LAYOUTS = {"tp1": (1, []), "tp2": (2, ["parallel.tp=2"]), "pp2": (2, ["parallel.pp=2"])}
CASES = [(shape, layout) for shape in SHAPES for layout in LAYOUTS
         if not (shape == "llama-mqa-tied" and layout == "tp2")]  # 1 KV head: TP must divide it


@pytest.mark.parametrize("shape, layout", CASES, ids=[f"{s}-{l}" for s, l in CASES])
def test_engine_logits_equal_transformers(hf_models, shape, layout):
    nproc, layout = LAYOUTS[layout]
    result = _parity(hf_models[shape], nproc, *layout)
    assert result["max_abs_diff"] <= 1e-4, result
    assert result["logit_scale"] > 1.0


def _recipe(tmp_path, hf_dir, **overrides):
    corpus = ROOT / "recipes" / "tiny" / "data" / "corpus.jsonl"
    text = (f"output_dir: {tmp_path / 'run'}\nstage: pretrain\nmodel:\n  init_from_hf: {hf_dir}\n"
            f"data:\n  sources: [{{path: {corpus}}}]\n  tokenizer: byte\n  max_seq_len: 128\n"
            f"  max_tokens_per_micro_batch: 512\n  global_batch_size: 8\n"
            f"train:\n  max_steps: 3\n")
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def _export(ckpt, out):
    proc = launch(["tools.convert_checkpoint", "engine-to-hf", "--ckpt", str(ckpt),
                   "--out", str(out)], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout[proc.stdout.index("{"):])


def test_hf_to_engine_to_hf_is_bit_exact(hf_models, tmp_path):
    """Loaded at TP=2 × PP=2, saved (lr 0: weights untouched), exported: the same tensors."""
    hf_dir = hf_models["llama-gqa2-rope-scaled-untied"]
    recipe = _recipe(tmp_path, hf_dir)
    proc = launch(["engine.train", str(recipe), "optim.lr=0.0", "optim.min_lr=0.0",
                   "train.max_steps=1", "parallel.tp=2", "parallel.pp=2"], nproc=4)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = _export(tmp_path / "run" / "checkpoints" / "step_1", tmp_path / "hf")
    assert result["dtype"] == "torch.float32"
    original, exported = HFReader(hf_dir), HFReader(tmp_path / "hf")
    assert exported.names() == original.names()
    for name in original.names():
        assert torch.equal(exported.get(name), original.get(name)), name


def test_checkpoint_trained_at_tp2_pp2_exports_to_transformers(hf_models, tmp_path):
    hf_dir = hf_models["qwen2-bias-gqa4-tied"]
    recipe = _recipe(tmp_path, hf_dir)
    proc = launch(["engine.train", str(recipe), "optim.lr=1e-3", "parallel.tp=2",
                   "parallel.pp=2", "parallel.sp=true"], nproc=4)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = tmp_path / "run" / "checkpoints" / "step_3"
    _export(ckpt, tmp_path / "hf")
    # transformers on the export vs the engine on the checkpoint it was exported from
    result = _parity(tmp_path / "hf", 1, "--engine-ckpt", str(ckpt))
    assert result["max_abs_diff"] <= 1e-4, result
    # and training moved the weights away from the starting model
    assert not torch.equal(HFReader(tmp_path / "hf").get("model.norm.weight"),
                           HFReader(hf_dir).get("model.norm.weight"))


def test_hf_to_engine_checkpoint_roundtrip_and_parity(hf_models, tmp_path):
    """hf-to-engine writes a weights-only checkpoint: it exports back bit for bit, and loaded
    at TP=2 (model.init_from_checkpoint) gives transformers' logits."""
    hf_dir = hf_models["llama-gqa2-rope-scaled-untied"]
    proc = launch(["tools.convert_checkpoint", "hf-to-engine", "--hf", str(hf_dir), "--out",
                   str(tmp_path / "engine")], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert summary["bytes"] > 0 and summary["peak_rss_gib"] > 0
    _export(tmp_path / "engine", tmp_path / "hf")
    original, exported = HFReader(hf_dir), HFReader(tmp_path / "hf")
    assert exported.names() == original.names()
    assert all(torch.equal(exported.get(n), original.get(n)) for n in original.names())
    result = _parity(hf_dir, 2, "--engine-ckpt", str(tmp_path / "engine"), "parallel.tp=2")
    assert result["max_abs_diff"] <= 1e-4, result
    cfg = load_recipe(None, [f"model.init_from_checkpoint={tmp_path / 'engine'}"])
    assert cfg.model.num_query_groups == 2 and cfg.model.rope_scaling.factor == 8.0


def test_value_model_converts_both_ways_and_transformers_loads_the_export(hf_models, tmp_path):
    """A one-label LlamaForSequenceClassification: hf-to-engine then engine-to-hf gives back
    every tensor (the score head included) and its config; the engine on the converted
    checkpoint at TP=2 + SP gives the values of transformers on the export."""
    hf_dir = hf_models["llama-value"]
    proc = launch(["tools.convert_checkpoint", "hf-to-engine", "--hf", str(hf_dir), "--out",
                   str(tmp_path / "engine")], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _export(tmp_path / "engine", tmp_path / "hf")
    original, exported = HFReader(hf_dir), HFReader(tmp_path / "hf")
    assert "score.weight" in exported.names() and exported.names() == original.names()
    assert all(torch.equal(exported.get(n), original.get(n)) for n in original.names())
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"]
    assert len(config["id2label"]) == 1
    result = _parity(tmp_path / "hf", 2, "--engine-ckpt", str(tmp_path / "engine"),
                     "parallel.tp=2", "parallel.sp=true")
    assert result["max_abs_diff"] <= 1e-4 and result["logit_scale"] > 1.0, result
