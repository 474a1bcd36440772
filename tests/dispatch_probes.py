"""Probes on torch's dispatcher for tests: what a piece of code does to tensors, not what it
returns."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_HOST_READS = (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.is_nonzero.default)


class HostReads(TorchDispatchMode):
    """Counts the operations that read a tensor's value on the host (`.item()`, `bool()`, ...):
    on a GPU, each waits for the device."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func in _HOST_READS
        return func(*args, **(kwargs or {}))
