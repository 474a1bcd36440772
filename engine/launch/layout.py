"""This rank's place in the TP × PP × DP grid: a plain value the engine passes around instead of
reading megatron's globals."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Layout:
    rank: int
    world_size: int
    tp: int
    pp: int
    dp: int
    tp_rank: int
    pp_rank: int
    dp_rank: int
    device: torch.device

    @property
    def is_first_stage(self) -> bool:
        return self.pp_rank == 0

    @property
    def is_last_stage(self) -> bool:
        return self.pp_rank == self.pp - 1

    @property
    def is_logger(self) -> bool:
        """The rank that writes logs and metrics (global rank 0)."""
        return self.rank == 0
