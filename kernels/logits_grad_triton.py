"""The gradient of a chunk of vocabulary-parallel logits, written in place over them (Triton).

For logits z [rows, V_local] (row-major, bf16/fp16/fp32) holding the global vocabulary ids
[vocab_start, vocab_start + V_local), with p = exp(z − lse) from the globally reduced
log-sum-exp of each row, writes

    dz_j = scale · (p_j − [j = label]) − entropy_coef · p_j · (log p_j + H)

in the logits' dtype, all math in fp32; padded columns (global id ≥ real_vocab_size) get 0.
`scale` is the per-row coefficient of the cross-entropy (its gradient is p − onehot), and the
second term, present when `entropy_coef` is given, is the gradient of the entropy
H = lse − Σ_k p_k z_k: dH/dz_j = −p_j (z_j − Σ_k p_k z_k) = −p_j (log p_j + H).
A row whose label is -100 (or lies in another rank's slice) has no one-hot term; the caller
zeroes `scale` and `entropy_coef` where a row must give no gradient.

One program per row, looping over vocabulary blocks (V_local a compile-time constant, as in
kernels/logits_stats_triton.py). The torch reference is
`kernels.linear_cross_entropy.torch_logits_grad_`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_V = 4096
NUM_WARPS = 8


@triton.jit
def _logits_grad_kernel(logits_ptr, labels_ptr, lse_ptr, scale_ptr, entropy_coef_ptr,
                        entropy_ptr, row_stride, vocab_start, real_vocab_size,
                        N_COLS: tl.constexpr, HAS_ENTROPY: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    row_ptr = logits_ptr + row * row_stride
    lse = tl.load(lse_ptr + row)
    scale = tl.load(scale_ptr + row)
    local = tl.load(labels_ptr + row).to(tl.int64) - vocab_start
    for start in range(0, N_COLS, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        in_row = cols < N_COLS
        real = in_row & (vocab_start + cols < real_vocab_size)
        log_p = tl.load(row_ptr + cols, mask=real, other=0.0).to(tl.float32) - lse
        coef = scale
        if HAS_ENTROPY:
            coef = scale - tl.load(entropy_coef_ptr + row) * (log_p + tl.load(entropy_ptr + row))
        grad = tl.exp(log_p) * coef - tl.where(cols == local, scale, 0.0)
        grad = tl.where(real, grad, 0.0)
        tl.store(row_ptr + cols, grad.to(logits_ptr.dtype.element_ty), mask=in_row)


def logits_grad_(logits: torch.Tensor, labels: torch.Tensor, vocab_start: int,
                 real_vocab_size: int, lse: torch.Tensor, scale: torch.Tensor,
                 entropy_coef: torch.Tensor | None = None,
                 entropy: torch.Tensor | None = None) -> torch.Tensor:
    """Overwrite logits [rows, V_local] with their gradient (see the module) and return them;
    labels [rows] int64 global ids, lse/scale/entropy_coef/entropy [rows] fp32."""
    if logits.stride(1) != 1:
        raise ValueError("logits_grad_ needs row-major logits (unit column stride)")
    if (entropy_coef is None) != (entropy is None):
        raise ValueError("entropy_coef and entropy go together")
    rows, n_cols = logits.shape
    if rows:
        _logits_grad_kernel[(rows,)](
            logits, labels, lse, scale, entropy_coef, entropy, logits.stride(0), vocab_start,
            real_vocab_size, N_COLS=n_cols, HAS_ENTROPY=entropy_coef is not None,
            BLOCK=min(BLOCK_V, triton.next_power_of_2(n_cols)), num_warps=NUM_WARPS)
    return logits
