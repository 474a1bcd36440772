"""RoPE: the torch path is megatron's unfused rotation and Hugging Face's Llama rotation, bit for
bit in fp32 and bf16, forward and backward; the Triton kernel, run by Triton's interpreter on
the CPU, equals the torch path bit for bit too (values and gradients), for strided input (a
slice of a fused QKV tensor), a head count and half-width that are not powers of two, and
repeated positions; bad shapes and tables are refused."""

import pytest
import torch

from kernels.rope import kernel_rope, rope, rope_tables, torch_rope
from tests.unit.kernels.interpreter import (in_the_interpreter, run_in_interpreter,
                                            the_parent_process)

TOKENS, HEADS, D = 19, 6, 48  # 6 heads: not a power of two; d/2 = 24: neither
POSITIONS = torch.tensor([0, 1, 2, 3, 4, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10])


def _inputs(dtype, max_seqlen=11):
    gen = torch.Generator().manual_seed(0)
    inv_freq = 1.0 / 500000 ** (torch.arange(0, D, 2).float() / D)
    angles = torch.outer(torch.arange(max_seqlen).float(), inv_freq)
    freqs = torch.cat([angles, angles], dim=-1)  # megatron's layout: the halves share angles
    qkv = (2 * torch.randn(TOKENS, HEADS + 4, D, generator=gen)).to(dtype)
    x = qkv[:, :HEADS]  # a view, as megatron splits its fused QKV projection
    dy = torch.randn(TOKENS, HEADS, D, generator=gen).to(dtype)
    return x, freqs, dy


def _forward_backward(fn, x, dy):
    x = x.detach().clone().requires_grad_()
    y = fn(x)
    y.backward(dy)
    return y.detach(), x.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("mscale", [1.0, 1.25])
def test_the_torch_path_is_megatrons_rotation(dtype, mscale):
    from megatron.core.models.common.embeddings.rope_utils import _apply_rotary_pos_emb_bshd

    x, freqs, dy = _inputs(dtype)
    cos, sin = rope_tables(freqs, dtype, mscale)
    ours = _forward_backward(lambda t: torch_rope(t, POSITIONS, cos, sin), x, dy)
    megatrons = _forward_backward(
        lambda t: _apply_rotary_pos_emb_bshd(t.unsqueeze(1), freqs[POSITIONS][:, None, None],
                                             mscale=mscale).squeeze(1), x, dy)
    for a, b in zip(ours, megatrons):
        assert torch.equal(a, b)


def test_the_torch_path_is_hugging_faces_llama_rotation():
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    x, freqs, _ = _inputs(torch.bfloat16)
    cos, sin = rope_tables(freqs, torch.bfloat16)
    # HF: q [batch, heads, seq, d] with cos / sin [batch, seq, d] of the positions
    hf, _ = apply_rotary_pos_emb(x.transpose(0, 1)[None], x.transpose(0, 1)[None],
                                 cos[POSITIONS][None], sin[POSITIONS][None])
    assert torch.equal(torch_rope(x, POSITIONS, cos, sin), hf[0].transpose(0, 1))


def test_cpu_tensors_take_the_torch_path():
    x, freqs, _ = _inputs(torch.float32)
    cos, sin = rope_tables(freqs, torch.float32)
    assert torch.equal(rope(x, POSITIONS, cos, sin), torch_rope(x, POSITIONS, cos, sin))


@pytest.mark.parametrize("shape, table, message", [
    ((TOKENS, HEADS, 7), None, r"x must be \[tokens, heads, d\] with d even; got \(19, 6, 7\)"),
    ((TOKENS, HEADS * D), None, r"x must be \[tokens, heads, d\]"),
    (None, torch.float64, r"cos must be \[positions, 48\] of torch.float32; got \(11, 48\) of "
                          r"torch.float64"),
])
def test_the_kernel_path_refuses_bad_shapes_and_tables(shape, table, message):
    x, freqs, _ = _inputs(torch.float32)
    cos, sin = rope_tables(freqs, table or torch.float32)
    with pytest.raises(ValueError, match=message):
        kernel_rope(torch.zeros(shape) if shape else x, POSITIONS, cos, sin)


@the_parent_process
def test_kernel_in_the_interpreter():
    pytest.importorskip("triton")
    run_in_interpreter(__file__, expected_passed=11)  # all but this one


@in_the_interpreter
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernel_equals_the_torch_path(dtype):
    x, freqs, dy = _inputs(dtype)
    cos, sin = rope_tables(freqs, dtype)
    assert not x.is_contiguous()
    got = _forward_backward(lambda t: kernel_rope(t, POSITIONS, cos, sin), x, dy)
    want = _forward_backward(lambda t: torch_rope(t, POSITIONS, cos, sin), x, dy)
    for name, a, b in zip(("y", "dx"), got, want):
        assert a.dtype == dtype and a.shape == (TOKENS, HEADS, D)
        assert torch.equal(a, b), (name, (a.float() - b.float()).abs().max())
