"""The fused linear + cross-entropy / log-probability head (torch path, CPU) equals the full-logits
reference in fp64: values, gradients, the weighted loss; it rejects bad input, and never holds a
[tokens, vocabulary] tensor."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from kernels import linear_cross_entropy
from kernels.linear_cross_entropy import linear_cross_entropy_loss, linear_logprobs
from tests.dispatch_probes import HostReads
from tests.unit.kernels import make_problem, reference_logprobs, reference_loss

TOL = dict(rtol=1e-5, atol=1e-5)


def _leaves(problem):
    """hidden and the whole (padded) weight as fresh leaves that require grad."""
    return (problem.hidden.clone().requires_grad_(), problem.weight.clone().requires_grad_())


def _reference_leaves(hidden, weight):
    return (hidden.detach().double().requires_grad_(), weight.detach().double().requires_grad_())


@pytest.mark.parametrize("chunk_tokens", [8, 37, 64], ids=["uneven-chunks", "one-chunk", "big"])
def test_logprobs_and_entropy_match_the_reference(chunk_tokens):
    p = make_problem()
    logprobs, entropy = linear_logprobs(p.hidden, p.weight, p.labels,
                                        real_vocab_size=p.real_vocab_size,
                                        chunk_tokens=chunk_tokens, with_entropy=True)
    ref_logprobs, ref_entropy = reference_logprobs(p.hidden, p.weight, p.labels,
                                                   p.real_vocab_size)
    assert logprobs.dtype == entropy.dtype == torch.float32
    torch.testing.assert_close(logprobs.double(), ref_logprobs, **TOL)
    torch.testing.assert_close(entropy.double(), ref_entropy, **TOL)
    ignored = p.labels == -100
    assert ignored.any() and (logprobs[ignored] == 0).all() and (entropy[ignored] == 0).all()


def test_entropy_is_none_unless_asked():
    p = make_problem()
    logprobs, entropy = linear_logprobs(p.hidden, p.weight, p.labels,
                                        real_vocab_size=p.real_vocab_size, chunk_tokens=8)
    assert entropy is None and logprobs.shape == p.labels.shape


@pytest.mark.parametrize("with_entropy", [True, False])
def test_logprob_and_entropy_gradients_match_the_reference(with_entropy):
    p = make_problem()
    gen = torch.Generator().manual_seed(1)
    g_logprobs, g_entropy = torch.randn(2, p.labels.shape[0], generator=gen)
    hidden, weight = _leaves(p)
    logprobs, entropy = linear_logprobs(hidden, weight, p.labels,
                                        real_vocab_size=p.real_vocab_size, chunk_tokens=8,
                                        with_entropy=with_entropy)
    ref_hidden, ref_weight = _reference_leaves(hidden, weight)
    ref_logprobs, ref_entropy = reference_logprobs(ref_hidden, ref_weight, p.labels,
                                                   p.real_vocab_size)
    objective = (g_logprobs * logprobs).sum()
    ref_objective = (g_logprobs.double() * ref_logprobs).sum()
    if with_entropy:
        objective = objective + (g_entropy * entropy).sum()
        ref_objective = ref_objective + (g_entropy.double() * ref_entropy).sum()
    objective.backward()
    ref_objective.backward()
    torch.testing.assert_close(hidden.grad.double(), ref_hidden.grad, **TOL)
    torch.testing.assert_close(weight.grad.double(), ref_weight.grad, **TOL)
    assert (weight.grad[p.real_vocab_size:] == 0).all()  # padding rows


def test_weighted_loss_and_its_gradients_match_the_reference():
    p = make_problem()
    hidden, weight = _leaves(p)
    loss = linear_cross_entropy_loss(hidden, weight, p.labels, p.weights,
                                     real_vocab_size=p.real_vocab_size, chunk_tokens=8)
    ref_hidden, ref_weight = _reference_leaves(hidden, weight)
    ref_loss = reference_loss(ref_hidden, ref_weight, p.labels, p.weights, p.real_vocab_size)
    assert loss.dtype == torch.float32 and loss.shape == ()
    torch.testing.assert_close(loss.double(), ref_loss, **TOL)
    (3 * loss).backward()  # an upstream gradient other than 1
    (3 * ref_loss).backward()
    torch.testing.assert_close(hidden.grad.double(), ref_hidden.grad, **TOL)
    torch.testing.assert_close(weight.grad.double(), ref_weight.grad, **TOL)
    silent = (p.labels == -100) | (p.weights == 0)
    assert silent.any() and (hidden.grad[silent] == 0).all()


def test_loss_gradients_only_for_inputs_that_require_them():
    p = make_problem()
    hidden = p.hidden.clone().requires_grad_()
    loss = linear_cross_entropy_loss(hidden, p.weight, p.labels, p.weights,
                                     real_vocab_size=p.real_vocab_size, chunk_tokens=8)
    loss.backward()
    assert hidden.grad is not None and p.weight.grad is None
    hidden, weight = _leaves(p)

    def evaluate():
        with torch.no_grad():
            return linear_cross_entropy_loss(hidden, weight, p.labels, p.weights,
                                             real_vocab_size=p.real_vocab_size, chunk_tokens=8)

    assert torch.equal(evaluate(), loss.detach())
    assert _operations_of(evaluate).matmuls == 5  # the logits of each chunk, no gradient GEMMs


def test_the_loss_backward_runs_once():
    p = make_problem()
    hidden, weight = _leaves(p)
    loss = linear_cross_entropy_loss(hidden, weight, p.labels, p.weights,
                                     real_vocab_size=p.real_vocab_size)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward"):
        loss.backward()


def test_bf16_inputs_stay_close_to_the_fp64_reference():
    p = make_problem(dtype=torch.bfloat16)
    hidden, weight = _leaves(p)
    logprobs, entropy = linear_logprobs(hidden, weight, p.labels,
                                        real_vocab_size=p.real_vocab_size, chunk_tokens=8,
                                        with_entropy=True)
    ref_logprobs, ref_entropy = reference_logprobs(p.hidden, p.weight, p.labels,
                                                   p.real_vocab_size)
    # The logits are bf16 (as a bf16 linear layer makes them): ~|z| * 2^-9 off.
    torch.testing.assert_close(logprobs.double(), ref_logprobs, rtol=0, atol=5e-2)
    torch.testing.assert_close(entropy.double(), ref_entropy, rtol=0, atol=5e-2)
    (logprobs.sum() + entropy.sum()).backward()
    assert hidden.grad.dtype == weight.grad.dtype == torch.bfloat16


@pytest.mark.parametrize("change, message", [
    (dict(hidden=torch.zeros(37, 8)), "hidden size mismatch"),
    (dict(hidden=torch.zeros(37, 16, dtype=torch.float64)), "share a floating dtype"),
    (dict(hidden=torch.zeros(2, 37, 16)), r"\[tokens, hidden\]"),
    (dict(labels=torch.zeros(37)), "integer token ids"),
    (dict(labels=torch.zeros(36, dtype=torch.long)), r"labels must be \[37\]"),
    (dict(labels=torch.full((37,), 35)), r"-100 or in \[0, 35\)"),
    (dict(labels=torch.full((37,), -1)), r"-100 or in \[0, 35\)"),
    (dict(weights=torch.ones(36)), r"weights must be \[37\]"),
    (dict(chunk_tokens=0), "chunk_tokens must be positive"),
    (dict(vocab_start=35), "vocab_start must lie in"),
], ids=["hidden-size", "dtype", "3d", "float-labels", "labels-shape", "label-too-big",
        "negative-label", "weights-shape", "chunk", "start-past-vocab"])
def test_bad_inputs_are_refused_clearly(change, message):
    p = make_problem()
    args = dict(hidden=p.hidden, weight=p.weight, labels=p.labels, weights=p.weights,
                real_vocab_size=p.real_vocab_size)
    args.update(change)
    with pytest.raises(ValueError, match=message):
        linear_cross_entropy_loss(**args)


class _Operations(TorchDispatchMode):
    """Records each operation run and the element count of the largest tensor it produced."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        sizes = [t.numel() for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        self.calls.append((str(func), max(sizes, default=0)))
        return out

    @property
    def largest(self) -> int:
        return max(size for _, size in self.calls)

    @property
    def matmuls(self) -> int:
        return sum(name.startswith(("aten.mm", "aten.addmm")) for name, _ in self.calls)


def _operations_of(step) -> _Operations:
    with _Operations() as mode:
        step()
    return mode


def test_no_tensor_of_full_logits_size_is_ever_made():
    p = make_problem(tokens=256, vocab=512, real_vocab_size=500)
    full_logits = 256 * 512

    def fused_logprobs():
        hidden, weight = _leaves(p)
        logprobs, entropy = linear_logprobs(hidden, weight, p.labels, real_vocab_size=500,
                                            chunk_tokens=32, with_entropy=True)
        (logprobs.sum() + entropy.sum()).backward()

    def fused_loss():
        hidden, weight = _leaves(p)
        linear_cross_entropy_loss(hidden, weight, p.labels, p.weights, real_vocab_size=500,
                                  chunk_tokens=32).backward()

    def reference():
        hidden, weight = _leaves(p)
        sum(reference_logprobs(hidden, weight, p.labels, 500, torch.float32)).sum().backward()

    assert _operations_of(reference).largest >= full_logits * 500 // 512  # it sees logits
    assert _operations_of(fused_logprobs).largest < full_logits
    assert _operations_of(fused_loss).largest < full_logits


@pytest.mark.parametrize("check_labels, reads", [(True, 1), (False, 0)])
def test_the_label_check_is_the_forwards_only_host_read(check_labels, reads):
    p = make_problem()
    with HostReads() as probe:
        linear_logprobs(p.hidden, p.weight, p.labels, real_vocab_size=p.real_vocab_size,
                        chunk_tokens=8, with_entropy=True, check_labels=check_labels)
        linear_cross_entropy_loss(p.hidden, p.weight, p.labels, p.weights,
                                  real_vocab_size=p.real_vocab_size, chunk_tokens=8,
                                  check_labels=check_labels)
    assert probe.count == 2 * reads


def _addmm_that(writes):
    def addmm(acc, a, b, *, out_dtype, out):
        writes(out, a.float() @ b.float())
        return out
    return addmm


def _older_torchs_addmm(acc, a, b, *, out_dtype, out):
    raise RuntimeError("self and mat2 must have the same dtype")


@pytest.mark.parametrize("addmm, usable", [
    (None, False),  # this CPU's torch: no such kernel
    (_addmm_that(lambda out, product: out.add_(product)), True),
    (_addmm_that(lambda out, product: out.copy_(product)), False),  # does not accumulate
    (_older_torchs_addmm, False),
])
def test_fp32_accumulation_of_the_weight_grad_is_used_only_where_it_works(monkeypatch, addmm,
                                                                           usable):
    if addmm is not None:
        monkeypatch.setattr(torch, "addmm", addmm)
    probe = linear_cross_entropy._addmm_into_fp32.__wrapped__
    assert probe(torch.device("cpu"), torch.bfloat16) is usable
