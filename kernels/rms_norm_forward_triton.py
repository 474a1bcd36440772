"""RMSNorm forward, one program per row (Triton): y = w · cast(x · rstd), rstd = 1/sqrt(mean(x²)
+ eps) in fp32, the cast to x's dtype before the weight scales it (Hugging Face's Llama order).
Stores y and rstd [rows] fp32 for the backward. The hidden size is a compile-time constant and
the whole row one block (8,192 for Llama-3.1-70B). The torch reference is
`kernels.rms_norm.torch_rms_norm`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rms_norm_forward_kernel(x_ptr, w_ptr, y_ptr, rstd_ptr, eps, N: tl.constexpr,
                             BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < N
    x = tl.load(x_ptr + row * N + cols, mask=mask, other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / N + eps)
    normed = (x * rstd).to(y_ptr.dtype.element_ty).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + row * N + cols, (w * normed).to(y_ptr.dtype.element_ty), mask=mask)
    tl.store(rstd_ptr + row, rstd)


def rms_norm_forward(x: torch.Tensor, weight: torch.Tensor, eps: float):
    """(y [rows, h] of x's dtype, rstd [rows] fp32) of contiguous x [rows, h]."""
    rows, n = x.shape
    y = torch.empty_like(x)
    rstd = torch.empty(rows, dtype=torch.float32, device=x.device)
    if rows:
        block = triton.next_power_of_2(n)
        _rms_norm_forward_kernel[(rows,)](x, weight, y, rstd, eps, N=n, BLOCK=block,
                                          num_warps=min(max(block // 256, 1), 16))
    return y, rstd
