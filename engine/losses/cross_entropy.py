"""Cross-entropy on tensor-parallel logits: the next-token loss of pretraining and SFT, and the
per-token log-probabilities of the labels (DPO's reference cache, RL and evaluation use them).

megatron's vocab-parallel cross-entropy runs on TP-sharded logits (its one process group: the
tensor-parallel group), with the padded vocabulary columns masked out.
"""

from __future__ import annotations

import torch
from megatron.core import parallel_state, tensor_parallel

from engine.losses.registry import register


def mask_padded_vocab(logits: torch.Tensor, real_vocab_size: int) -> torch.Tensor:
    """-inf on the padded vocabulary columns this TP rank holds (in place)."""
    local = logits.shape[-1]
    start = parallel_state.get_tensor_model_parallel_rank() * local
    first_pad = max(real_vocab_size - start, 0)
    if first_pad < local:
        logits[..., first_pad:] = float("-inf")
    return logits


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
                           real_vocab_size: int) -> torch.Tensor:
    """Σ weights · CE(logits, labels) over tokens; logits [..., vocab/TP], labels -100 = none."""
    mask_padded_vocab(logits, real_vocab_size)
    targets = labels.clamp(min=0)
    losses = tensor_parallel.vocab_parallel_cross_entropy(logits, targets)
    return (losses.float() * weights).sum()


def label_logprobs(logits: torch.Tensor, labels: torch.Tensor,
                   real_vocab_size: int) -> torch.Tensor:
    """log p(label) per token (fp32), 0 where the label is -100; logits [t, vocab/TP]."""
    mask_padded_vocab(logits, real_vocab_size)
    logprobs = -tensor_parallel.vocab_parallel_cross_entropy(logits, labels.clamp(min=0)).float()
    return logprobs.masked_fill(labels < 0, 0.0)


@register("cross_entropy", metrics=("loss",))
def cross_entropy(mb, logits: torch.Tensor, *, real_vocab_size: int):
    """Next-token loss weighted per target token (the weights carry the reduction)."""
    loss = weighted_cross_entropy(logits.squeeze(0), mb.labels, mb.loss_weights, real_vocab_size)
    count = torch.tensor(mb.num_tokens, dtype=torch.int, device=loss.device)
    return loss, count, {"loss": loss.detach()}
