"""RMSNorm, y = w · (x / sqrt(mean(x²) + eps)), as Hugging Face's Llama computes it: the
normalization in fp32, cast back to x's dtype, then scaled by the weight in that dtype.

    y = rms_norm(x, weight, eps)       # x [..., h], weight [h] of x's dtype

On CUDA with triton, x and the weight of one dtype, it runs two Triton kernels
(kernels/rms_norm_forward_triton.py, kernels/rms_norm_backward_triton.py): one read of x and
one write of y forward, saving x and one fp32 rstd per row; one read of x and dy and one write of
dx backward, with the weight's gradient summed in fp32 per program and then over programs.
The plain torch version (`torch_rms_norm`, which autograd differentiates and which keeps fp32
copies for its backward) runs everywhere else and is what the kernels are tested against.
"""

from __future__ import annotations

import torch

from kernels import triton_installed


def torch_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    x32 = x.float()
    normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * normed.to(x.dtype)


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, eps):
        from kernels.rms_norm_forward_triton import rms_norm_forward

        rows = x.reshape(-1, x.shape[-1])
        y, rstd = rms_norm_forward(rows, weight, eps)
        ctx.save_for_backward(rows, weight, rstd)
        return y.view(x.shape)

    @staticmethod
    def backward(ctx, dy):
        from kernels.rms_norm_backward_triton import rms_norm_backward

        rows, weight, rstd = ctx.saved_tensors
        dx, dweight = rms_norm_backward(dy.reshape(rows.shape), rows, weight, rstd)
        return dx.view(dy.shape), dweight, None


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm of x over its last dimension (see the module): the Triton kernels for CUDA
    tensors of one dtype where triton is installed, plain torch otherwise."""
    if x.is_cuda and weight.dtype == x.dtype and triton_installed():
        return kernel_rms_norm(x, weight, eps)
    return torch_rms_norm(x, weight, eps)


def kernel_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """The Triton path, on any device Triton runs on (CUDA; the CPU under its interpreter)."""
    if weight.shape != x.shape[-1:] or weight.dtype != x.dtype:
        raise ValueError(f"weight must be [{x.shape[-1]}] of {x.dtype}; got "
                         f"{tuple(weight.shape)} of {weight.dtype}")
    return _RMSNorm.apply(x.contiguous(), weight, eps)
