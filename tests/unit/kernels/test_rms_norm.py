"""RMSNorm: the torch path is Hugging Face's Llama arithmetic; the Triton kernels, run by Triton's
interpreter on the CPU, equal it forward and backward (values of y, dx and dw) in fp32 and
bf16, for a hidden size that is not a power of two and rows split unevenly over programs; the
engine's norm takes the torch path on CPU tensors."""

import pytest
import torch

from kernels.rms_norm import kernel_rms_norm, rms_norm, torch_rms_norm
from tests.unit.kernels.interpreter import (in_the_interpreter, run_in_interpreter,
                                            the_parent_process)

ROWS, HIDDEN, EPS = 37, 80, 1e-5


def _inputs(dtype):
    gen = torch.Generator().manual_seed(0)
    x = (3 * torch.randn(2, ROWS, HIDDEN, generator=gen) + 0.5).to(dtype)
    weight = (1 + 0.1 * torch.randn(HIDDEN, generator=gen)).to(dtype)
    dy = torch.randn(2, ROWS, HIDDEN, generator=gen).to(dtype)
    return x, weight, dy


def test_the_torch_path_is_hugging_faces_llama_norm():
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    x, weight, _ = _inputs(torch.bfloat16)
    hf = LlamaRMSNorm(HIDDEN, eps=EPS).to(torch.bfloat16)
    with torch.no_grad():
        hf.weight.copy_(weight)
    assert torch.equal(torch_rms_norm(x, weight, EPS), hf(x))


def test_cpu_tensors_take_the_torch_path():
    x, weight, _ = _inputs(torch.float32)
    assert torch.equal(rms_norm(x, weight, EPS), torch_rms_norm(x, weight, EPS))


def test_the_kernel_path_refuses_a_weight_of_another_dtype():
    x, weight, _ = _inputs(torch.float32)
    with pytest.raises(ValueError, match=r"weight must be \[80\] of torch.float32"):
        kernel_rms_norm(x, weight.double(), EPS)


@the_parent_process
def test_kernels_in_the_interpreter():
    pytest.importorskip("triton")
    run_in_interpreter(__file__, expected_passed=5)  # all but this one


def _forward_backward(norm, x, weight, dy):
    x, weight = x.clone().requires_grad_(), weight.clone().requires_grad_()
    y = norm(x, weight, EPS)
    y.backward(dy)
    return y.detach(), x.grad, weight.grad


@in_the_interpreter
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_kernels_equal_the_torch_path(dtype, tol):
    x, weight, dy = _inputs(dtype)
    got = _forward_backward(kernel_rms_norm, x, weight, dy)
    want = _forward_backward(torch_rms_norm, x, weight, dy)
    for name, a, b in zip(("y", "dx", "dw"), got, want):
        assert a.dtype == dtype, name
        scale = b.abs().max().item()
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * scale, msg=name)
