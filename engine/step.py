"""One optimizer step: packed micro-batches through megatron's forward-backward schedule.

This is the only pipeline-aware code. megatron picks the schedule (no pipelining, or 1F1B for
PP > 1); every stage of a data-parallel replica iterates the same micro-batches (the loader plans
them identically everywhere), the first stage reads tokens, the last computes the weighted loss.
Losses arrive globally normalized (engine.losses), so the reported loss is the sum of the
micro-batch losses over data-parallel replicas.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import partial

import torch
import torch.distributed as dist
from megatron.core.packed_seq_params import PackedSeqParams
from megatron.core.pipeline_parallel import get_forward_backward_func
from megatron.core.utils import get_model_config

from engine.data.packing import MicroBatch
from engine.dist import Layout
from engine.losses import weighted_cross_entropy


@dataclass
class StepResult:
    loss: float
    grad_norm: float
    lr: float
    skipped: bool


def packed_seq_params(mb: MicroBatch) -> PackedSeqParams:
    return PackedSeqParams(qkv_format="thd", cu_seqlens_q=mb.cu_seqlens,
                           cu_seqlens_kv=mb.cu_seqlens, max_seqlen_q=mb.max_seqlen,
                           max_seqlen_kv=mb.max_seqlen)


def forward_packed(model, mb: MicroBatch) -> torch.Tensor:
    """Run a stage on one packed micro-batch: logits [1, t, vocab/TP] on the last stage."""
    return model(input_ids=mb.tokens.unsqueeze(0), position_ids=mb.position_ids.unsqueeze(0),
                 attention_mask=None, packed_seq_params=packed_seq_params(mb))


def _loss(mb: MicroBatch, real_vocab_size: int, logits: torch.Tensor):
    loss = weighted_cross_entropy(logits.squeeze(0), mb.labels, mb.loss_weights, real_vocab_size)
    count = torch.tensor(mb.num_tokens, dtype=torch.int, device=loss.device)
    return loss, count, {"loss": loss.detach()}


class TrainStep:
    def __init__(self, model, optimizer, scheduler, layout: Layout, real_vocab_size: int):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.layout = layout
        self.real_vocab_size = real_vocab_size
        self.schedule = get_forward_backward_func()
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

    def _forward_step(self, data_iterator, model):
        mb = next(data_iterator)
        return forward_packed(model, mb), partial(_loss, mb, self.real_vocab_size)

    def _schedule(self, micro_batches: list[MicroBatch], forward_only: bool) -> list[dict]:
        batches = [mb.to(self.layout.device) for mb in micro_batches]
        return self.schedule(
            forward_step_func=self._forward_step,
            data_iterator=iter(batches),
            model=[self.model],
            num_microbatches=len(batches),
            seq_length=max(mb.tokens.numel() for mb in batches),
            micro_batch_size=1,
            forward_only=forward_only,
        )

    def __call__(self, micro_batches: list[MicroBatch]) -> StepResult:
        self.model.zero_grad_buffer()
        self.optimizer.zero_grad()
        with self._phase("forward_backward_and_grad_reduce"):
            outputs = self._schedule(micro_batches, forward_only=False)
        lr = self.optimizer.param_groups[0]["lr"]
        with self._phase("optimizer"):
            ok, grad_norm, _ = self.optimizer.step()
            self.scheduler.step(increment=1)
        return StepResult(loss=self._global_loss(outputs), grad_norm=float(grad_norm or 0.0),
                          lr=lr, skipped=not ok)

    def evaluate(self, micro_batches: list[MicroBatch]) -> float:
        """The loss of micro-batches, forward only (no gradients, no update)."""
        self.model.eval()
        with torch.no_grad():
            outputs = self._schedule(micro_batches, forward_only=True)
        self.model.train()
        return self._global_loss(outputs)

    def _global_loss(self, outputs) -> float:
        """Σ micro-batch losses over DP replicas; each TP rank of the last stage holds a copy."""
        local = sum((o["loss"] for o in outputs), torch.zeros((), device=self.layout.device))
        total = local.double() if self.layout.is_last_stage else torch.zeros(
            (), dtype=torch.float64, device=self.layout.device)
        dist.all_reduce(total)
        return total.item() / self.layout.tp
