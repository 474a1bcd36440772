"""Reading single tensors (or one layer of them) straight from the chunk files of a checkpoint
directory (torch.distributed.checkpoint format, as megatron's dist_checkpointing writes it),
without a process group. The HF export and weights-only loading use it.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch.distributed.checkpoint import FileSystemReader

from engine.errors import CheckpointError


class CheckpointTensors:
    """Whole tensors, or one index of their first (layer) axis, read from the chunks of a
    torch.distributed.checkpoint directory; with `prefix`, those of a model saved beside the
    policy (keys `prefix` + the model's own key: "value." for PPO's value model)."""

    def __init__(self, path: Path, prefix: str = ""):
        self.path, self.prefix = path, prefix
        metadata = FileSystemReader(str(path)).read_metadata()
        self.tensors = metadata.state_dict_metadata
        self.storage = {(index.fqn, tuple(index.offset)): info
                        for index, info in metadata.storage_data.items()
                        if index.offset is not None}

    def _metadata(self, key: str):
        if self.prefix + key not in self.tensors:
            raise CheckpointError(f"{self.path}: checkpoint has no tensor {self.prefix}{key}")
        return self.tensors[self.prefix + key]

    def dtype(self, key: str) -> torch.dtype:
        return self._metadata(key).properties.dtype

    def meta_tensor(self, key: str, layer: int | None = None) -> torch.Tensor:
        """A shape-and-dtype-only stand-in for `read(key, layer)`."""
        size = list(self._metadata(key).size)
        return torch.empty(size[1:] if layer is not None else size, dtype=self.dtype(key),
                           device="meta")

    def read(self, key: str, layer: int | None = None) -> torch.Tensor:
        meta = self._metadata(key)
        key = self.prefix + key
        lo, hi = [0] * len(meta.size), list(meta.size)
        if layer is not None:
            lo[0], hi[0] = layer, layer + 1
        out = torch.empty([h - l for h, l in zip(hi, lo)], dtype=meta.properties.dtype)
        for chunk in meta.chunks:
            start, size = list(chunk.offsets), list(chunk.sizes)
            a = [max(l, s) for l, s in zip(lo, start)]
            b = [min(h, s + n) for h, s, n in zip(hi, start, size)]
            if any(x >= y for x, y in zip(a, b)):
                continue
            data = self._load_chunk(key, tuple(start)).reshape(size)
            out[tuple(slice(x - l, y - l) for x, y, l in zip(a, b, lo))] = \
                data[tuple(slice(x - s, y - s) for x, y, s in zip(a, b, start))]
        return out[0] if layer is not None else out

    def _load_chunk(self, key: str, offsets: tuple) -> torch.Tensor:
        info = self.storage[(key, offsets)]
        if info.transform_descriptors:
            raise CheckpointError(f"{self.path}: {key} is stored with transforms "
                              f"{info.transform_descriptors}, which this reader does not undo")
        with open(self.path / info.relative_path, "rb") as f:
            f.seek(info.offset)
            data = f.read(info.length)
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
