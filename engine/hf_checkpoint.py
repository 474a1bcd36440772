"""Reading and writing Hugging Face safetensors checkpoints one tensor at a time.

`HFReader` indexes a model directory (`model.safetensors.index.json` or one
`model.safetensors`), opens shards lazily, and reads a tensor only when asked, so peak memory
stays at the tensors in use, not the model. Missing shards and tensors are errors that name
them. `HFWriter` appends tensors to shards of at most `max_shard_bytes`, then writes
`model.safetensors.index.json`, as `transformers` and vLLM expect.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from engine.config import ConfigError


class HFReader:
    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        index = self.dir / "model.safetensors.index.json"
        single = self.dir / "model.safetensors"
        if index.is_file():
            self.files = {name: self.dir / f
                          for name, f in json.loads(index.read_text())["weight_map"].items()}
        elif single.is_file():
            with safe_open(single, framework="pt") as f:
                self.files = {name: single for name in f.keys()}
        else:
            raise ConfigError(f"{self.dir}: no model.safetensors or "
                              f"model.safetensors.index.json")
        missing = sorted({str(p.name) for p in self.files.values() if not p.is_file()})
        if missing:
            raise ConfigError(f"{self.dir}: missing shard(s) {', '.join(missing)} listed in "
                              f"model.safetensors.index.json")
        self._open: dict[Path, object] = {}

    def names(self) -> set[str]:
        return set(self.files)

    def get(self, name: str) -> torch.Tensor:
        if name not in self.files:
            raise ConfigError(f"{self.dir}: tensor {name} is missing")
        path = self.files[name]
        if path not in self._open:
            self._open[path] = safe_open(path, framework="pt")
        return self._open[path].get_tensor(name)


class HFWriter:
    def __init__(self, directory: str | Path, max_shard_bytes: int = 5 * 2**30):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_shard_bytes = max_shard_bytes
        self.pending: dict[str, torch.Tensor] = {}
        self.pending_bytes = 0
        self.shards: list[list[str]] = []
        self.total_bytes = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        size = tensor.numel() * tensor.element_size()
        if self.pending and self.pending_bytes + size > self.max_shard_bytes:
            self._flush()
        self.pending[name] = tensor.contiguous()
        self.pending_bytes += size
        self.total_bytes += size

    def _flush(self) -> None:
        index = len(self.shards) + 1
        save_file(self.pending, self.dir / f"part-{index:05d}.safetensors",
                  metadata={"format": "pt"})
        self.shards.append(list(self.pending))
        self.pending, self.pending_bytes = {}, 0

    def close(self) -> None:
        if self.pending:
            self._flush()
        n = len(self.shards)
        weight_map = {}
        for i, names in enumerate(self.shards, start=1):
            final = f"model-{i:05d}-of-{n:05d}.safetensors"
            (self.dir / f"part-{i:05d}.safetensors").rename(self.dir / final)
            weight_map.update({name: final for name in names})
        (self.dir / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {"total_size": self.total_bytes}, "weight_map": weight_map}, indent=2))
