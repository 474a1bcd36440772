"""Loss-reduction weights, explicit and global.

`reduction_weights` gives every target token of a global batch a weight such that the weighted
*sum* over all tokens is the loss, for
- `sum`:           Σ token losses (Tülu 3 SFT);
- `token_mean`:    Σ / number of trainable tokens in the global batch;
- `sequence_mean`: mean over sequences of each sequence's token mean.
Because the weights already carry the global normalization, any split of the batch over
micro-batches, data-parallel ranks or pipeline stages sums to the same loss and gradient.
"""

from __future__ import annotations

import numpy as np

from engine.config import REDUCTIONS


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
