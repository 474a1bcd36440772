"""Steps skipped for a non-finite gradient norm: each one is logged, and a run of more than
`train.max_skipped_in_a_row` in a row ends training with an error that names the steps and the
newest checkpoint (the update is skipped in `engine.train.optimizer.apply_update`; every rank
sees the same global norm, so every rank stops at the same step)."""

from __future__ import annotations

from engine.errors import DivergenceError
from engine.metrics.log import log


class SkippedSteps:
    def __init__(self, limit: int):
        self.limit, self.in_a_row, self.total = limit, 0, 0

    def see(self, step: int, skipped: bool, norms: dict[str, float],
            newest_checkpoint: str) -> None:
        """Count step `step` (`norms`: the gradient norms to name, e.g. {"grad_norm": nan})."""
        if not skipped:
            self.in_a_row = 0
            return
        self.in_a_row += 1
        self.total += 1
        named = ", ".join(f"{k} {v:.4g}" for k, v in norms.items())
        if self.in_a_row > self.limit:
            first = step - self.in_a_row + 1
            raise DivergenceError(
                f"step {step}: non-finite gradients ({named}) at steps {first}-{step}, "
                f"{self.in_a_row} in a row (train.max_skipped_in_a_row={self.limit}); the weights "
                f"are step {first - 1}'s and the newest checkpoint is {newest_checkpoint}: lower "
                f"optim.lr or raise optim.warmup_steps, or look at the data of these steps")
        log.warning("step %d: non-finite gradients (%s): update skipped (%d in a row, %d in all; "
                    "the run stops after %d in a row)", step, named, self.in_a_row, self.total,
                    self.limit + 1)
