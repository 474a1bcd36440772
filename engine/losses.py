"""Losses as pure functions on logits / per-token log-probs, and the loss-reduction weights.

Reduction is explicit and global: `reduction_weights` gives every target token of a global batch
a weight such that the weighted *sum* over all tokens is the loss, for
- `sum`:           Σ token losses (Tülu 3 SFT);
- `token_mean`:    Σ / number of trainable tokens in the global batch;
- `sequence_mean`: mean over sequences of each sequence's token mean.
Because the weights already carry the global normalization, any split of the batch over
micro-batches, data-parallel ranks or pipeline stages sums to the same loss and gradient.

`weighted_cross_entropy` runs megatron's vocab-parallel cross-entropy on TP-sharded logits (its
one process group: the tensor-parallel group), with padded vocabulary columns masked out.
"""

from __future__ import annotations

import numpy as np
import torch
from megatron.core import parallel_state, tensor_parallel

REDUCTIONS = ("sum", "token_mean", "sequence_mean")


def reduction_weights(masks: list[np.ndarray], reduction: str) -> list[np.ndarray]:
    """Per-target weights for every sequence of a global batch; masks are 0/1 per target."""
    if reduction == "sum":
        return [m.astype(np.float64) for m in masks]
    if reduction == "token_mean":
        total = sum(int(m.sum()) for m in masks)
        return [m / max(total, 1) for m in masks]
    if reduction == "sequence_mean":
        counted = sum(1 for m in masks if m.any())
        return [m / (max(int(m.sum()), 1) * max(counted, 1)) for m in masks]
    raise ValueError(f"unknown loss reduction {reduction!r}; expected one of {REDUCTIONS}")


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
