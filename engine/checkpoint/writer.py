"""Weights-only engine checkpoints, written one tensor at a time.

Same on-disk format as the trainer's checkpoints (torch.distributed.checkpoint chunk file and
`.metadata`, megatron's `metadata.json`, `common.pt` carrying the model config), holding only
the model's tensors in global coordinates, one chunk per layer. So `engine.checkpoint.reader`,
the HF exporter and `model.init_from_checkpoint` read it like any checkpoint, at any layout,
while the writer never holds more than the tensor it is appending.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import torch
from torch.distributed.checkpoint.filesystem import _StorageInfo
from torch.distributed.checkpoint.metadata import (
    ChunkStorageMetadata,
    Metadata,
    MetadataIndex,
    TensorProperties,
    TensorStorageMetadata,
)

DATA_FILE = "__0_0.distcp"


class WeightsWriter:
    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data = (self.dir / DATA_FILE).open("wb")
        self.tensors: dict[str, TensorStorageMetadata] = {}
        self.storage: dict[MetadataIndex, _StorageInfo] = {}
        self.bytes = 0

    def add(self, key: str, tensor: torch.Tensor, layer: int | None = None,
            num_layers: int | None = None) -> None:
        """A whole tensor, or layer `layer` of a tensor stacked over `num_layers` layers."""
        chunk = tensor.detach().contiguous() if layer is None else tensor.detach()[None].contiguous()
        offsets = torch.Size([0] * chunk.dim() if layer is None else [layer] + [0] * tensor.dim())
        size = chunk.shape if layer is None else torch.Size([num_layers, *tensor.shape])
        meta = self.tensors.setdefault(key, TensorStorageMetadata(
            properties=TensorProperties(dtype=chunk.dtype), size=size, chunks=[]))
        meta.chunks.append(ChunkStorageMetadata(offsets=offsets, sizes=chunk.shape))
        buffer = io.BytesIO()
        torch.save(chunk, buffer)
        payload = buffer.getvalue()
        self.storage[MetadataIndex(key, offsets)] = _StorageInfo(
            relative_path=DATA_FILE, offset=self.data.tell(), length=len(payload))
        self.data.write(payload)
        self.bytes += chunk.numel() * chunk.element_size()

    def close(self, meta: dict) -> None:
        self.data.close()
        with (self.dir / ".metadata").open("wb") as f:
            pickle.dump(Metadata(state_dict_metadata=self.tensors, storage_data=self.storage), f)
        (self.dir / "metadata.json").write_text(json.dumps(
            {"sharded_backend": "torch_dist", "sharded_backend_version": 1,
             "common_backend": "torch", "common_backend_version": 1}))
        torch.save({"meta": meta, "step": 0}, self.dir / "common.pt")
