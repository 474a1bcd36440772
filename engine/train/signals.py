"""Preemption: SIGTERM and SIGUSR1 (what Slurm sends before preemption or the time limit) ask the
run to save a checkpoint at the next step boundary and exit with `EXIT_REQUEUE`, which the
sbatch scripts turn into `scontrol requeue`.

The flag is agreed on by all ranks at every step boundary (one all-reduce of a scalar), since
the signal may reach the ranks at different moments.
"""

from __future__ import annotations

import signal

import torch
import torch.distributed as dist

EXIT_REQUEUE = 3
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopRequest:
    def __init__(self, device: torch.device):
        self.device = device
        self.received: int | None = None
        for sig in SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.received = signum

    def agreed(self) -> bool:
        """True on every rank if any rank has received a stop signal."""
        flag = torch.tensor([0 if self.received is None else 1], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())
