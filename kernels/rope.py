"""Rotary position embedding (RoPE, non-interleaved halves: Llama's) of packed tokens at given
positions, as megatron's and Hugging Face's unfused code computes it: the cos / sin tables cast
to x's dtype, then x·cos + rotate_half(x)·sin, each elementwise step rounded to x's dtype.

    cos, sin = rope_tables(freqs, x.dtype)       # freqs [positions, d]: the angles, fp32
    y = rope(x, positions, cos, sin)             # x [tokens, heads, d], positions [tokens]

On CUDA with triton it runs one Triton kernel forward and one backward
(kernels/rope_triton.py): x read once and y written once, where the unfused code runs about
eight elementwise kernels each way (gathers of the two tables, two products, a negation and a
concatenation for rotate_half, a sum, megatron's final concatenation) with their intermediate
tensors. The arithmetic and its roundings are the same, so the results are equal. The plain
torch version (`torch_rope`, which autograd differentiates) runs everywhere else and is what
the kernel is tested against.
"""

from __future__ import annotations

import torch

from kernels import triton_installed

KERNEL_DTYPES = (torch.float32, torch.bfloat16)


def rope_tables(freqs: torch.Tensor, dtype: torch.dtype,
                mscale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) [positions, d] in `dtype` of the angles `freqs` [positions, d], × mscale."""
    return (torch.cos(freqs) * mscale).to(dtype), (torch.sin(freqs) * mscale).to(dtype)


def torch_rope(x: torch.Tensor, positions: torch.Tensor, cos: torch.Tensor,
               sin: torch.Tensor) -> torch.Tensor:
    c, s = cos[positions].unsqueeze(1), sin[positions].unsqueeze(1)
    x1, x2 = torch.chunk(x, 2, dim=-1)
    return x * c + torch.cat((-x2, x1), dim=-1) * s


class _Rope(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, positions, cos, sin):
        from kernels.rope_triton import rope_rows

        ctx.save_for_backward(positions, cos, sin)
        return rope_rows(x, positions, cos, sin)

    @staticmethod
    def backward(ctx, dy):
        from kernels.rope_triton import rope_rows

        positions, cos, sin = ctx.saved_tensors
        return rope_rows(dy, positions, cos, sin, backward=True), None, None, None


def rope(x: torch.Tensor, positions: torch.Tensor, cos: torch.Tensor,
         sin: torch.Tensor) -> torch.Tensor:
    """RoPE of x (see the module): the Triton kernel for fp32 and bf16 CUDA tensors where triton
    is installed, plain torch otherwise."""
    if x.is_cuda and x.dtype in KERNEL_DTYPES and triton_installed():
        return kernel_rope(x, positions, cos, sin)
    return torch_rope(x, positions, cos, sin)


def kernel_rope(x: torch.Tensor, positions: torch.Tensor, cos: torch.Tensor,
                sin: torch.Tensor) -> torch.Tensor:
    """The Triton path, on any device Triton runs on (CUDA; the CPU under its interpreter)."""
    d = x.shape[-1]
    if x.dtype not in KERNEL_DTYPES:
        raise ValueError(f"the kernel rotates fp32 or bf16; got {x.dtype}")
    if x.dim() != 3 or d % 2:
        raise ValueError(f"x must be [tokens, heads, d] with d even; got {tuple(x.shape)}")
    for name, table in (("cos", cos), ("sin", sin)):
        if table.dim() != 2 or table.shape[1] != d or table.dtype != x.dtype:
            raise ValueError(f"{name} must be [positions, {d}] of {x.dtype}; got "
                             f"{tuple(table.shape)} of {table.dtype}")
    return _Rope.apply(x, positions.contiguous(), cos.contiguous(), sin.contiguous())
