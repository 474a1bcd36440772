"""Packed micro-batches through megatron's pipeline schedule: the only pipeline-aware code.

megatron picks the schedule (no pipelining, or 1F1B for PP > 1); every stage of a data-parallel
replica iterates the same micro-batches (the loader plans them identically everywhere), the
first stage reads tokens, the last computes what the caller asks of the logits.

- `run_schedule`: forward (and backward) of micro-batches, a function of (micro-batch, logits)
  on the last stage — the train step's loss;
- `forward_collect`: forward only, returning per micro-batch what a function makes of the
  logits on the last stage (None elsewhere);
- `label_logprobs`: forward only, log p(label) per token — DPO's reference cache, RL and
  evaluation use it.
"""

from __future__ import annotations

from typing import Callable

import torch
from megatron.core.packed_seq_params import PackedSeqParams
from megatron.core.pipeline_parallel import get_forward_backward_func

from engine.data.packing import MicroBatch
from engine.losses.cross_entropy import label_logprobs as logprobs_of_labels
from engine.model.head import head_output, sharded_logits


def packed_seq_params(mb: MicroBatch) -> PackedSeqParams:
    return PackedSeqParams(qkv_format="thd", cu_seqlens_q=mb.cu_seqlens,
                           cu_seqlens_kv=mb.cu_seqlens, max_seqlen_q=mb.max_seqlen,
                           max_seqlen_kv=mb.max_seqlen)


def forward_packed(model, mb: MicroBatch) -> torch.Tensor:
    """Run a stage on one packed micro-batch: on the last stage, logits [1, t, vocab/TP] or, with
    a fused head, hidden states [1, t, h] (`engine.model.head`)."""
    return model(input_ids=mb.tokens.unsqueeze(0), position_ids=mb.position_ids.unsqueeze(0),
                 attention_mask=None, packed_seq_params=packed_seq_params(mb))


def forward_logits(model, mb: MicroBatch) -> torch.Tensor:
    """Logits [t, vocab/TP] of one packed micro-batch on the last stage, whatever the head."""
    return sharded_logits(head_output(model, forward_packed(model, mb)))


def run_schedule(model, micro_batches: list[MicroBatch], on_logits: Callable,
                 device: torch.device, forward_only: bool,
                 collect_non_loss_data: bool = False) -> list:
    """megatron's schedule over the micro-batches; `on_logits(mb, out)` runs on the last stage,
    `out` the logits [t, vocab/TP] or a fused head's `HiddenStates` (`engine.model.head`), and
    returns (loss, token count, metrics) — or any value with collect_non_loss_data.
    Returns what it returned, per micro-batch, on the last stage (empty elsewhere)."""
    batches = [mb.to(device) for mb in micro_batches]

    def forward_step(data_iterator, model):
        mb = next(data_iterator)
        return forward_packed(model, mb), lambda output, **_: on_logits(mb, head_output(model,
                                                                                    output))

    return get_forward_backward_func()(
        forward_step_func=forward_step,
        data_iterator=iter(batches),
        model=[model],
        num_microbatches=len(batches),
        seq_length=max(mb.tokens.numel() for mb in batches),
        micro_batch_size=1,
        forward_only=forward_only,
        collect_non_loss_data=collect_non_loss_data,
    )


@torch.no_grad()
def forward_collect(model, micro_batches: list[MicroBatch], fn: Callable,
                    device: torch.device, last_stage: bool) -> list | None:
    """Forward only: `fn(mb, out)` per micro-batch on the last pipeline stage (`out` as in
    `run_schedule`), None on the other stages."""
    out = run_schedule(model, micro_batches, fn, device, forward_only=True,
                       collect_non_loss_data=True)
    return out if last_stage else None


def label_logprobs(model, micro_batches: list[MicroBatch], real_vocab_size: int,
                   device: torch.device, last_stage: bool) -> list[torch.Tensor] | None:
    """log p(label) [t] per micro-batch (0 where there is no label) on the last stage."""
    return forward_collect(
        model, micro_batches,
        lambda mb, logits: logprobs_of_labels(logits, mb.labels, real_vocab_size),
        device, last_stage)
