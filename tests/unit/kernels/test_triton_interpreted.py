"""The two Triton kernels of the fused head, run by Triton's interpreter on the CPU, equal their
torch references, and the fused head built on them equals the torch path. Skipped where triton
is not installed; the interpreted tests run in their own process (tests/unit/kernels/
interpreter.py) and show as skipped in the parent's.
"""

import pytest
import torch

import kernels.linear_cross_entropy as lce
from tests.unit.kernels import make_problem
from tests.unit.kernels.interpreter import (in_the_interpreter, run_in_interpreter,
                                            the_parent_process)

pytest.importorskip("triton")

# A slice of 9000 columns (three 4096-wide blocks) starting at global id 5000, whose last 500
# columns are padding; labels: first and last real column, another rank's, -100, two inside.
VOCAB_START, REAL_VOCAB_SIZE, N_COLS = 5000, 13500, 9000
N_REAL = REAL_VOCAB_SIZE - VOCAB_START
LABELS = torch.tensor([5000, 13499, 4999, -100, 9321, 12000])


@the_parent_process
def test_kernels_in_the_interpreter():
    run_in_interpreter(__file__, expected_passed=7)


@pytest.fixture(scope="module")
def interpreted():
    """(logits_stats, logits_grad_), the Triton kernels' wrappers."""
    from kernels.logits_grad_triton import logits_grad_
    from kernels.logits_stats_triton import logits_stats

    return logits_stats, logits_grad_


def _logits(dtype):
    gen = torch.Generator().manual_seed(0)
    return (3 * torch.randn(len(LABELS), N_COLS, generator=gen)).to(dtype)


def _exact_row_stats(logits):
    """(lse, entropy) per row over the real columns, in fp64."""
    real = logits[:, :N_REAL].double()
    log_p = torch.log_softmax(real, dim=1)
    return torch.logsumexp(real, dim=1).float(), -(log_p.exp() * log_p).sum(dim=1).float()


@in_the_interpreter
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_stats_kernel_equals_its_torch_reference(interpreted, dtype):
    logits_stats, _ = interpreted
    logits = _logits(dtype)
    got = logits_stats(logits, LABELS, VOCAB_START, REAL_VOCAB_SIZE)
    want = lce.torch_logits_stats(logits, LABELS, VOCAB_START, REAL_VOCAB_SIZE)
    for name, a, b in zip(("max", "sum_exp", "target", "sum_exp_dev"), got, want):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=name)
    assert got[2][2] == 0 and got[2][3] == 0  # another rank's label, -100


@in_the_interpreter
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-6), (torch.bfloat16, 1.6e-2)])
@pytest.mark.parametrize("with_entropy", [False, True])
def test_grad_kernel_equals_its_torch_reference(interpreted, dtype, tol, with_entropy):
    _, logits_grad_ = interpreted
    logits = _logits(dtype)
    lse, entropy = _exact_row_stats(logits)
    gen = torch.Generator().manual_seed(1)
    scale, entropy_coef = torch.randn(2, len(LABELS), generator=gen)
    extra = (entropy_coef, entropy) if with_entropy else ()
    got = logits_grad_(logits.clone(), LABELS, VOCAB_START, REAL_VOCAB_SIZE, lse, scale, *extra)
    want = lce.torch_logits_grad_(logits.clone(), LABELS, VOCAB_START, REAL_VOCAB_SIZE, lse,
                                  scale, *extra)
    assert got.dtype == dtype
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    assert (got[:, N_REAL:] == 0).all()  # padding


@in_the_interpreter
def test_fused_head_on_the_kernels_equals_the_torch_path(interpreted, monkeypatch):
    p = make_problem()
    gen = torch.Generator().manual_seed(2)
    g_logprobs, g_entropy = torch.randn(2, len(p.labels), generator=gen)

    def run():
        hidden, weight = p.hidden.clone().requires_grad_(), p.weight.clone().requires_grad_()
        logprobs, entropy = lce.linear_logprobs(hidden, weight, p.labels,
                                                real_vocab_size=p.real_vocab_size,
                                                chunk_tokens=8, with_entropy=True)
        ((g_logprobs * logprobs).sum() + (g_entropy * entropy).sum()).backward()
        loss = lce.linear_cross_entropy_loss(hidden, weight, p.labels, p.weights,
                                             real_vocab_size=p.real_vocab_size, chunk_tokens=8)
        loss.backward()
        return logprobs, entropy, loss, hidden.grad, weight.grad

    torch_path = run()
    monkeypatch.setattr(lce, "_chunk_steps", lambda device: interpreted)
    for a, b in zip(run(), torch_path):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
