"""Per-row softmax statistics of a chunk of vocabulary-parallel logits, in one pass (Triton).

For logits [rows, V_local] (row-major, bf16/fp16/fp32) holding the global vocabulary ids
[vocab_start, vocab_start + V_local), each row gets, in fp32:
- `row_max`: max z over the real columns (global id < real_vocab_size; the rest is padding);
- `sum_exp`: Σ exp(z − row_max);
- `target`: the logit of the row's label when this slice holds it, else 0 (labels are global
  ids; a -100 row gets 0 and its other statistics as usual);
- `sum_exp_dev`: Σ exp(z − row_max)·(z − row_max), the shifted form of Σ exp(z − max)·z, for
  the entropy (H = log S − Σ_exp_dev / S once reduced over the vocabulary); shifting by the max
  keeps it free of cancellation for large logits.

One program per row loops over vocabulary blocks with an online (rescaled) max; V_local is a
compile-time constant (one compile per slice size, and a plain loop bound for Triton's
interpreter). The torch reference is `kernels.linear_cross_entropy.torch_logits_stats`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_V = 4096
NUM_WARPS = 8


@triton.jit
def _logits_stats_kernel(logits_ptr, labels_ptr, max_ptr, sum_exp_ptr, target_ptr,
                         sum_exp_dev_ptr, row_stride, vocab_start, real_vocab_size,
                         N_COLS: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    row_ptr = logits_ptr + row * row_stride
    # A finite start keeps the first update free of inf * 0: there exp(shift) = 0 and
    # shift * sum_exp = finite * 0.
    running_max = -1e30
    sum_exp = 0.0
    sum_exp_dev = 0.0
    for start in range(0, N_COLS, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        real = (cols < N_COLS) & (vocab_start + cols < real_vocab_size)
        z = tl.load(row_ptr + cols, mask=real, other=float("-inf")).to(tl.float32)
        new_max = tl.maximum(running_max, tl.max(z, axis=0))
        shift = running_max - new_max
        rescale = tl.exp(shift)
        shifted = z - new_max
        e = tl.exp(shifted)
        dev = e * tl.where(real, shifted, 0.0)
        sum_exp_dev = rescale * (sum_exp_dev + shift * sum_exp) + tl.sum(dev, axis=0)
        sum_exp = rescale * sum_exp + tl.sum(e, axis=0)
        running_max = new_max
    local = tl.load(labels_ptr + row).to(tl.int64) - vocab_start
    owned = (local >= 0) & (local < N_COLS)
    target = tl.load(row_ptr + local, mask=owned, other=0.0).to(tl.float32)
    tl.store(max_ptr + row, running_max)
    tl.store(sum_exp_ptr + row, sum_exp)
    tl.store(target_ptr + row, target)
    tl.store(sum_exp_dev_ptr + row, sum_exp_dev)


def logits_stats(logits: torch.Tensor, labels: torch.Tensor, vocab_start: int,
                 real_vocab_size: int):
    """(row_max, sum_exp, target, sum_exp_dev), each [rows] fp32, of logits [rows, V_local]
    (contiguous rows) and labels [rows] (int64 global ids)."""
    if logits.stride(1) != 1:
        raise ValueError("logits_stats needs row-major logits (unit column stride)")
    rows, n_cols = logits.shape
    row_max, sum_exp, target, sum_exp_dev = (
        torch.empty(rows, dtype=torch.float32, device=logits.device) for _ in range(4))
    if rows:
        _logits_stats_kernel[(rows,)](
            logits, labels, row_max, sum_exp, target, sum_exp_dev, logits.stride(0), vocab_start,
            real_vocab_size, N_COLS=n_cols, BLOCK=min(BLOCK_V, triton.next_power_of_2(n_cols)),
            num_warps=NUM_WARPS)
    return row_max, sum_exp, target, sum_exp_dev
