"""RMSNorm backward (Triton): from dy, x and the forward's rstd, with n = x · rstd,

    dx = rstd · (dn − n · mean(dn · n)),  dn = dy · w        (per row, fp32 math)
    dw = Σ_rows dy · cast(n)                                  (cast: to x's dtype, as forward)

A fixed number of programs (a few per SM) each walk rows pid, pid + P, ..., write dx and sum
their rows' dw in fp32; the [P, h] partial sums are then added over programs. The torch
reference is autograd through `kernels.rms_norm.torch_rms_norm`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

PROGRAMS_PER_SM = 4


@triton.jit
def _rms_norm_backward_kernel(dy_ptr, x_ptr, w_ptr, rstd_ptr, dx_ptr, dw_partial_ptr, n_rows,
                              N: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    programs = tl.num_programs(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < N
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK], dtype=tl.float32)
    for row in range(pid, n_rows, programs):
        offsets = tl.cast(row, tl.int64) * N + cols
        x = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(dy_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        rstd = tl.load(rstd_ptr + row)
        n = x * rstd
        dn = dy * w
        dx = rstd * (dn - n * (tl.sum(dn * n, axis=0) / N))
        tl.store(dx_ptr + offsets, dx.to(dx_ptr.dtype.element_ty), mask=mask)
        dw += dy * n.to(dx_ptr.dtype.element_ty).to(tl.float32)
    tl.store(dw_partial_ptr + pid.to(tl.int64) * N + cols, dw, mask=mask)


def rms_norm_backward(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                      rstd: torch.Tensor):
    """(dx [rows, h] of x's dtype, dw [h] of the weight's dtype) for contiguous x [rows, h]."""
    rows, n = x.shape
    dy = dy.contiguous()
    dx = torch.empty_like(x)
    sms = (torch.cuda.get_device_properties(x.device).multi_processor_count if x.is_cuda
           else 2)
    programs = max(min(rows, PROGRAMS_PER_SM * sms), 1)
    partial = torch.zeros(programs, n, dtype=torch.float32, device=x.device)
    if rows:
        block = triton.next_power_of_2(n)
        _rms_norm_backward_kernel[(programs,)](dy, x, weight, rstd, dx, partial, rows, N=n,
                                               BLOCK=block,
                                               num_warps=min(max(block // 256, 1), 16))
    return dx, partial.sum(dim=0).to(weight.dtype)
