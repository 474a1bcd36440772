"""Preemption: SIGTERM and SIGUSR1 (what Slurm sends before preemption or the time limit), and
Ctrl-C (SIGINT), ask the run to save a checkpoint at the next step boundary and exit with
`EXIT_REQUEUE`, which the sbatch scripts turn into `scontrol requeue`. A second Ctrl-C aborts at
once, without saving.

The flag is agreed on by all ranks at every step boundary (one all-reduce of a scalar), since
the signal may reach the ranks at different moments. Once the checkpoint is saved, further stop
signals are ignored: under `srun --kill-on-bad-exit` the first rank to exit with EXIT_REQUEUE
makes srun terminate the others, and a rank killed while still shutting down would turn the
job's exit status into 143, which is not requeued.
"""

from __future__ import annotations

import signal

import torch
import torch.distributed as dist

from engine.metrics.log import log

EXIT_REQUEUE = 3
SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class StopRequest:
    def __init__(self, device: torch.device):
        self.device = device
        self.received: int | None = None
        for sig in SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.received is not None:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            raise KeyboardInterrupt("second Ctrl-C: aborted without saving")
        if signum == signal.SIGINT:
            log.warning("Ctrl-C: saving a checkpoint after this step, then stopping (Ctrl-C "
                        "again to abort without saving)")
        self.received = signum

    def settle(self) -> None:
        """The stop is done (checkpoint saved): let nothing interrupt the exit that follows."""
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    def agreed(self) -> bool:
        """True on every rank if any rank has received a stop signal."""
        flag = torch.tensor([0 if self.received is None else 1], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())
