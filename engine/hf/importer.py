"""Hugging Face model directory → engine weights, streamed one tensor at a time.

- `load_hf_weights`: into a built model (what `model.init_from_hf` does): each rank reads only
  the HF tensors of its own stage and keeps its TP slice.
- `import_hf`: into a weights-only engine checkpoint (`hf-to-engine`), one layer at a time, in
  the stored dtype; it loads at any TP/PP layout through `model.init_from_checkpoint` and exports
  back with `engine-to-hf`. Peak memory is about one layer plus the embedding.

Both map names and layouts through `engine.hf.name_map` (QKV fused, gate/up stacked, vocabulary
padded to the engine's size); shapes that disagree with the config, and HF tensors the map does
not use, are errors that name them.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from engine.checkpoint.writer import WeightsWriter
from engine.config import ModelConfig
from engine.errors import CheckpointError
from engine.hf.config import model_config_from_hf, read_hf_config
from engine.hf.name_map import check_hf_names, hf_names, rules
from engine.hf.safetensors_io import HFReader
from engine.model.init import Source, fill_weights


def hf_source(m: ModelConfig, directory: str, tp: int) -> Source:
    """The engine's global tensors of the HF model in `directory` (its names checked first)."""
    reader = HFReader(directory)
    check_hf_names(reader.names(), m, directory)
    by_key = {rule.engine_key: rule for rule in rules(m)}

    def hf_tensor(key: str, layer: int | None, shape: tuple) -> torch.Tensor:
        rule = by_key.get(key)
        if rule is None:
            raise CheckpointError(f"no Hugging Face source for engine tensor {key}")
        return rule.to_engine(m, tp, *(reader.get(n).float()
                                                 for n in hf_names(rule, layer)))

    return hf_tensor


def load_hf_weights(model: torch.nn.Module, m: ModelConfig, directory: str, tp: int) -> None:
    fill_weights(model, hf_source(m, directory, tp))


def import_hf(hf_dir: str | Path, out: str | Path, progress=None) -> dict:
    m = model_config_from_hf(read_hf_config(hf_dir), f"{hf_dir}/config.json")
    reader = HFReader(hf_dir)
    check_hf_names(reader.names(), m, str(hf_dir))
    out = Path(out)
    if (out / "metadata.json").exists():
        raise CheckpointError(f"{out} already holds a checkpoint")
    writer = WeightsWriter(out)
    for layer in [None, *range(m.num_layers)]:
        for rule in (r for r in rules(m) if r.per_layer == (layer is not None)):
            tensor = rule.to_engine(m, 1, *(reader.get(n) for n in hf_names(rule, layer)))
            writer.add(rule.engine_key, tensor, layer, m.num_layers)
        if progress is not None:
            progress(layer)
    writer.close(meta={"model": asdict(m), "source": str(hf_dir)})
    return {"hf": str(hf_dir), "out": str(out), "bytes": writer.bytes}
