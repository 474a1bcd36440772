"""One optimizer step: packed micro-batches through megatron's schedule with the stage's loss.

The loss is a `LossFunction` (`engine.losses`): a pure function of (micro-batch, logits) that
returns (loss, token count, metrics), every value globally normalized. The step sums each metric
over micro-batches and data-parallel replicas — whatever keys the loss declares, not only
"loss"; those it declares as maxima, it reduces by their maximum — and reports them with the
learning rate, gradient norm and whether the update was skipped (non-finite gradients).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.distributed as dist
from megatron.core.utils import get_model_config

from engine.data.packing import MicroBatch
from engine.launch.layout import Layout
from engine.losses.registry import LossFunction
from engine.train.optimizer import apply_update
from engine.train.schedule import run_schedule


@dataclass
class StepResult:
    metrics: dict[str, float]  # the loss's metrics, reduced over the global batch
    grad_norm: float
    lr: float
    skipped: bool

    @property
    def loss(self) -> float:
        return self.metrics["loss"]


class TrainStep:
    def __init__(self, model, optimizer, scheduler, layout: Layout, loss: LossFunction):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.layout, self.loss = layout, loss
        self.timer = None

    def time_phases(self, timer) -> None:
        """Charge forward-backward, grad reduce and optimizer time to `timer` (a PhaseTimer)."""
        self.timer = timer
        config = get_model_config(self.model)
        finalize = config.finalize_model_grads_func

        def timed_finalize(*args, **kwargs):
            with timer("grad_reduce"):
                finalize(*args, **kwargs)

        config.finalize_model_grads_func = timed_finalize

    def _phase(self, name: str):
        return self.timer(name) if self.timer is not None else contextlib.nullcontext()

    def __call__(self, micro_batches: list[MicroBatch]) -> StepResult:
        self.model.zero_grad_buffer()
        self.optimizer.zero_grad()
        with self._phase("forward_backward_and_grad_reduce"):
            outputs = run_schedule(self.model, micro_batches, self.loss, self.layout.device,
                                   forward_only=False)
        lr = self.optimizer.param_groups[0]["lr"]
        with self._phase("optimizer"):
            ok, grad_norm = apply_update(self.optimizer, self.optimizer.config.clip_grad)
            self.scheduler.step(increment=1)
        return StepResult(metrics=self._global_metrics(outputs), grad_norm=grad_norm, lr=lr,
                          skipped=not ok)

    def evaluate(self, micro_batches: list[MicroBatch]) -> dict[str, float]:
        """The loss's metrics on micro-batches, forward only (no gradients, no update)."""
        self.model.eval()
        with torch.no_grad():
            outputs = run_schedule(self.model, micro_batches, self.loss, self.layout.device,
                                   forward_only=True)
        self.model.train()
        return self._global_metrics(outputs)

    def _global_metrics(self, outputs: list[dict]) -> dict[str, float]:
        """Σ over micro-batches and DP replicas of each metric (one all-reduce), and the maximum
        of each of the loss's maxima (one more). Only the last pipeline stage has outputs, and
        each of its TP ranks holds a copy; the other stages add zeros, and −∞ to the maxima."""
        device, keys, maxima = self.layout.device, self.loss.metrics, self.loss.maxima
        sums = torch.zeros(len(keys), dtype=torch.float64, device=device)
        tops = torch.full((len(maxima),), -torch.inf, dtype=torch.float64, device=device)
        if self.layout.is_last_stage:
            sums = torch.stack([sum((o[k] for o in outputs), torch.zeros((), device=device))
                                for k in keys]).double()
            if maxima:
                tops = torch.stack([torch.stack([o[k] for o in outputs]).max()
                                    for k in maxima]).double()
        dist.all_reduce(sums)
        if maxima:
            dist.all_reduce(tops, op=dist.ReduceOp.MAX)
        values = torch.cat([sums / self.layout.tp, tops]).tolist()  # one host read
        return dict(zip(keys + maxima, values))
