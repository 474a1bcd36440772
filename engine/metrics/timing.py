"""Wall time per training phase (data, forward-backward, grad reduce, optimizer), synchronized
with the GPU at each phase boundary so that asynchronous kernels are charged to their phase.
Used by `python -m tools.perf step`; the training loop runs without it (no extra synchronization).
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict

import torch


class PhaseTimer:
    def __init__(self):
        self.totals: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, phase: str):
        _sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            _sync()
            self.totals[phase] += time.perf_counter() - start

    def reset(self) -> None:
        self.totals.clear()


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
