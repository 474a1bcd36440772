"""A model's weights and architecture taken from an engine checkpoint (a training checkpoint or a
weights-only one written by `hf-to-engine`), saved at any TP/PP/DP layout.

    model, where = stored_model_config(path)      # what `model.init_from_checkpoint` reads
    load_checkpoint_weights(model, path)          # this rank's slices, any layout
    source = checkpoint_source(path)              # its global tensors (engine.model.init.Source)
"""

from __future__ import annotations

from pathlib import Path

import torch

from engine.checkpoint.manifest import has_manifest, verify_share
from engine.checkpoint.reader import CheckpointTensors
from engine.checkpoint.train_state import latest
from engine.config import ModelConfig, model_config_from_dict
from engine.errors import CheckpointError
from engine.model.init import Source, fill_weights


def find_checkpoint(path: str | Path) -> Path:
    """A complete checkpoint directory: `path` itself, or a run dir's newest checkpoint; its
    files must be all there with the sizes its manifest records (contents are not read)."""
    path = Path(path)
    if (path / "checkpoints").is_dir():
        found = latest(path / "checkpoints")
        if found is None:
            raise CheckpointError(f"{path}/checkpoints holds no complete checkpoint")
        path = found[1]
    if not (path / "metadata.json").is_file():
        raise CheckpointError(f"{path}: not a complete engine checkpoint (no metadata.json)")
    damage = verify_share(path, checksums=False) if has_manifest(path) else []
    if damage:
        raise CheckpointError(f"{path}: damaged checkpoint ({'; '.join(damage[:3])})")
    return path


def stored_model_config(directory: str | Path, part: str | None = None) -> tuple[ModelConfig,
                                                                                 str]:
    """(the model config a checkpoint records in common.pt, where it was read): the policy's,
    or with `part` that of a model saved beside it (PPO's "value")."""
    common = Path(directory) / "common.pt"
    if not common.is_file():
        raise CheckpointError(f"{directory}: not an engine checkpoint (no common.pt)")
    meta = torch.load(common, map_location="cpu", weights_only=False).get("meta", {})
    if "model" not in meta:
        raise CheckpointError(f"{common}: the checkpoint does not record its model config")
    if part is None:
        return model_config_from_dict(meta["model"]), str(common)
    companions = meta.get("companions", {})
    if part not in companions:
        raise CheckpointError(f"{directory}: the checkpoint holds no {part} model (it holds "
                              f"{', '.join(['the policy', *companions])})")
    return model_config_from_dict(companions[part]), str(common)


def load_checkpoint_weights(model: torch.nn.Module, checkpoint_dir: str | Path,
                            part: str | None = None) -> None:
    """This rank's slices of the model weights stored in a checkpoint (the policy's, or with
    `part` those of a model saved beside it: PPO's "value")."""
    fill_weights(model, checkpoint_source(checkpoint_dir, part))


def checkpoint_source(checkpoint_dir: str | Path, part: str | None = None) -> Source:
    """The global tensors stored in a checkpoint (see `load_checkpoint_weights`). The padded
    vocabulary rows are zeros, so a checkpoint padded to another multiple loads by padding or
    trimming those rows."""
    stored = CheckpointTensors(Path(checkpoint_dir), f"{part}." if part else "")

    def read(key: str, layer, shape: tuple) -> torch.Tensor:
        tensor = stored.read(key, layer).float()
        if key in ("embedding.word_embeddings.weight", "output_layer.weight") and \
                tensor.shape[0] != shape[0]:
            resized = tensor.new_zeros(shape)
            rows = min(shape[0], tensor.shape[0])
            resized[:rows] = tensor[:rows]
            tensor = resized
        return tensor

    return read
