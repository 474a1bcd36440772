"""Reading and writing Hugging Face safetensors checkpoints one tensor at a time.

`HFReader` indexes a model directory (`model.safetensors.index.json` or one
`model.safetensors`), opens shards lazily, and reads a tensor only when asked, so peak memory
stays at the tensors in use, not the model. Missing shards and tensors are errors that name
them. `HFWriter` streams tensors into shards of at most `max_shard_bytes` and writes
`model.safetensors.index.json`, as `transformers` and vLLM expect.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from engine.errors import CheckpointError


def _tensor_names(shard: Path) -> set[str]:
    """The tensors a shard's header lists; a file that is not safetensors is an error naming it."""
    try:
        with safe_open(shard, framework="pt") as f:
            return set(f.keys())
    except SafetensorError as e:
        raise CheckpointError(f"{shard}: not a readable safetensors file ({e})") from None


class HFReader:
    """Checks on opening that the index parses, every shard exists and has a readable header
    listing the tensors the index puts in it."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        index = self.dir / "model.safetensors.index.json"
        single = self.dir / "model.safetensors"
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (ValueError, KeyError, TypeError) as e:
                raise CheckpointError(f"{index}: not a safetensors index ({e})") from None
            self.files = {name: self.dir / f for name, f in weight_map.items()}
        elif single.is_file():
            self.files = {name: single for name in _tensor_names(single)}
        else:
            raise CheckpointError(f"{self.dir}: no model.safetensors or "
                                  f"model.safetensors.index.json")
        missing = sorted({str(p.name) for p in self.files.values() if not p.is_file()})
        if missing:
            raise CheckpointError(f"{self.dir}: missing shard(s) {', '.join(missing)} listed in "
                                  f"model.safetensors.index.json")
        if index.is_file():
            for shard in sorted(set(self.files.values())):
                listed = {n for n, f in self.files.items() if f == shard}
                absent = sorted(listed - _tensor_names(shard))
                if absent:
                    raise CheckpointError(f"{shard}: does not hold tensor(s) the index puts in "
                                          f"it, e.g. {absent[0]}")

    def names(self) -> set[str]:
        return set(self.files)

    def get(self, name: str) -> torch.Tensor:
        """A copy of one tensor; its shard is mapped only while reading it, so the pages of
        tensors already read do not stay resident."""
        if name not in self.files:
            raise CheckpointError(f"{self.dir}: tensor {name} is missing")
        with safe_open(self.files[name], framework="pt") as f:
            return f.get_tensor(name).clone()


SAFETENSORS_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}


class HFWriter:
    """Streams tensors into safetensors shards. The plan (name, dtype, shape, in writing order)
    is known up front, so each shard's header is written first and every tensor's bytes go
    straight to disk as it arrives: memory holds one tensor, not a shard."""

    def __init__(self, directory: str | Path, plan: list[tuple[str, torch.dtype, tuple]],
                 max_shard_bytes: int = 5 * 2**30):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.shards: list[list[tuple[str, torch.dtype, tuple, int]]] = [[]]
        size = 0
        for name, dtype, shape in plan:
            nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
            if self.shards[-1] and size + nbytes > max_shard_bytes:
                self.shards.append([])
                size = 0
            self.shards[-1].append((name, dtype, tuple(shape), nbytes))
            size += nbytes
        self.total_bytes = sum(n for shard in self.shards for *_, n in shard)
        self.order = [(i, entry) for i, shard in enumerate(self.shards) for entry in shard]
        self.position = 0
        self.file = None

    def _shard_name(self, index: int) -> str:
        return f"model-{index + 1:05d}-of-{len(self.shards):05d}.safetensors"

    def _open(self, index: int) -> None:
        header, offset = {"__metadata__": {"format": "pt"}}, 0
        for name, dtype, shape, nbytes in self.shards[index]:
            header[name] = {"dtype": SAFETENSORS_DTYPES[dtype], "shape": list(shape),
                            "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        self.file = (self.dir / self._shard_name(index)).open("wb")
        self.file.write(struct.pack("<Q", len(raw)) + raw)

    def add(self, name: str, tensor: torch.Tensor) -> None:
        index, (expected, dtype, shape, _) = self.order[self.position]
        if name != expected or tensor.dtype != dtype or tuple(tensor.shape) != shape:
            raise ValueError(f"writing {name} {tensor.dtype} {tuple(tensor.shape)}, the plan "
                             f"expects {expected} {dtype} {shape}")
        if self.position == 0 or self.order[self.position - 1][0] != index:
            if self.file is not None:
                self.file.close()
            self._open(index)
        flat = tensor.detach().contiguous().reshape(-1)
        self.file.write(flat.view(torch.uint8).numpy().tobytes())
        self.position += 1

    def close(self) -> None:
        if self.position != len(self.order):
            raise ValueError(f"{len(self.order) - self.position} planned tensors not written")
        self.file.close()
        weight_map = {name: self._shard_name(i) for i, shard in enumerate(self.shards)
                      for name, *_ in shard}
        (self.dir / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {"total_size": self.total_bytes}, "weight_map": weight_map}, indent=2))
