"""Rotary embedding of packed tokens, forward or backward, one program per token (Triton).

x [tokens, heads, d] (any token and head strides, the last dimension contiguous), each token's
position, and the cos / sin tables [positions, d] already in x's dtype. With halves x1, x2 of
the last dimension and c, s the table rows at the token's position:

    forward:  y1 = x1·c1 − x2·s1        y2 = x2·c2 + x1·s2
    backward: dx1 = g1·c1 + g2·s2       dx2 = g2·c2 − g1·s1     (the transposed rotation)

x is fp32 or bf16. In bf16 every product and sum is rounded to bf16 (to nearest, ties to even,
done on the bits: Triton's interpreter truncates in its casts), as megatron's and Hugging
Face's unfused RoPE round their separate elementwise operations, so the result equals theirs
bit for bit. The torch reference is `kernels.rope.torch_rope`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rounded(v, BF16: tl.constexpr):
    """v (fp32) rounded to the nearest bf16 (ties to even), as fp32; v itself unless BF16."""
    if BF16:
        bits = v.to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return tl.where(v != v, v, bits.to(tl.float32, bitcast=True))
    return v


@triton.jit
def _rope_kernel(x_ptr, pos_ptr, cos_ptr, sin_ptr, y_ptr, stride_t, stride_h, H: tl.constexpr,
                 HALF: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
                 BACKWARD: tl.constexpr):
    token = tl.program_id(0).to(tl.int64)
    heads = tl.arange(0, BLOCK_H)[:, None]
    cols = tl.arange(0, BLOCK_D)[None, :]
    mask = (heads < H) & (cols < HALF)
    dtype = y_ptr.dtype.element_ty
    BF16: tl.constexpr = dtype == tl.bfloat16
    row = tl.load(pos_ptr + token).to(tl.int64) * (2 * HALF)
    c1 = tl.load(cos_ptr + row + cols, mask=cols < HALF, other=0.0).to(tl.float32)
    c2 = tl.load(cos_ptr + row + HALF + cols, mask=cols < HALF, other=0.0).to(tl.float32)
    s1 = tl.load(sin_ptr + row + cols, mask=cols < HALF, other=0.0).to(tl.float32)
    s2 = tl.load(sin_ptr + row + HALF + cols, mask=cols < HALF, other=0.0).to(tl.float32)
    x = x_ptr + token * stride_t + heads * stride_h + cols
    x1 = tl.load(x, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(x + HALF, mask=mask, other=0.0).to(tl.float32)
    a1 = _rounded(x1 * c1, BF16)
    a2 = _rounded(x2 * c2, BF16)
    if BACKWARD:
        b1 = _rounded(x2 * s2, BF16)
        b2 = _rounded(x1 * s1, BF16)
        y1, y2 = a1 + b1, a2 - b2
    else:
        b1 = _rounded(x2 * s1, BF16)
        b2 = _rounded(x1 * s2, BF16)
        y1, y2 = a1 - b1, a2 + b2
    y = y_ptr + token * (H * 2 * HALF) + heads * (2 * HALF) + cols
    tl.store(y, _rounded(y1, BF16).to(dtype), mask=mask)
    tl.store(y + HALF, _rounded(y2, BF16).to(dtype), mask=mask)


def rope_rows(x: torch.Tensor, positions: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
              backward: bool = False) -> torch.Tensor:
    """The rotation (or with `backward` its transpose) of x [tokens, heads, d] by the rows
    `positions` [tokens] of cos / sin [positions, d]: a new contiguous tensor like x."""
    if x.stride(-1) != 1:
        x = x.contiguous()
    tokens, heads, d = x.shape
    y = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    if tokens:
        half = d // 2
        block_h, block_d = triton.next_power_of_2(heads), triton.next_power_of_2(half)
        _rope_kernel[(tokens,)](x, positions, cos, sin, y, x.stride(0), x.stride(1), H=heads,
                                HALF=half, BLOCK_H=block_h, BLOCK_D=block_d, BACKWARD=backward,
                                num_warps=min(max(block_h * block_d // 256, 1), 8))
    return y
