"""Hugging Face model directory → weights-only engine checkpoint, one layer at a time.

Reads the HF tensors of one layer at a time (`HFReader` opens shards lazily), maps them through
`engine.convert` into global engine tensors (QKV fused, gate/up stacked, vocabulary padded to a
multiple of `make_vocab_size_divisible_by`), and appends them to a `WeightsWriter` checkpoint in
their stored dtype. Peak memory is about one layer plus the embedding. The result loads at any
TP/PP layout through `model.init_from_checkpoint`, and exports back with `engine-to-hf`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from engine.config import ConfigError
from engine.convert import hf_names, model_config_from_hf, read_hf_config, rules
from engine.hf_checkpoint import HFReader
from engine.weights import check_hf_names
from engine.weights_checkpoint import WeightsWriter


def import_hf(hf_dir: str | Path, out: str | Path, progress=None) -> dict:
    m = model_config_from_hf(read_hf_config(hf_dir), f"{hf_dir}/config.json")
    reader = HFReader(hf_dir)
    check_hf_names(reader, m, str(hf_dir))
    multiple = m.make_vocab_size_divisible_by
    padded_vocab = -(-m.vocab_size // multiple) * multiple
    out = Path(out)
    if (out / "metadata.json").exists():
        raise ConfigError(f"{out} already holds a checkpoint")
    writer = WeightsWriter(out)
    for layer in [None, *range(m.num_layers)]:
        for rule in (r for r in rules(m) if r.per_layer == (layer is not None)):
            tensor = rule.to_engine(m, padded_vocab,
                                    *(reader.get(n) for n in hf_names(rule, layer)))
            writer.add(rule.engine_key, tensor, layer, m.num_layers)
        if progress is not None:
            progress(layer)
    writer.close(meta={"model": asdict(m), "source": str(hf_dir)})
    return {"hf": str(hf_dir), "out": str(out), "bytes": writer.bytes}
