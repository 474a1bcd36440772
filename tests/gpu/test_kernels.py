"""On CUDA, the fused language-model head runs its Triton kernels (and RMSNorm its own, equal to
the torch path at the 1B shape's 16,384 × 2,048, timed beside it; RoPE its own, equal to
megatron's unfused rotation of the 1B shape's queries, timed beside it): they equal their torch
references, the head equals the fp64 reference (fp32 inputs), and at a realistic bf16 shape
(8192 tokens, hidden 2048, vocabulary 128256) it stays within bf16 tolerance of the fp32
full-logits path while its peak memory stays below the size of the bf16 logits. Prints one JSON
line per path with the time of forward+backward next to the full-logits path's (`-s` shows it).
Skipped without CUDA (tests/conftest.py)."""

import json
import time

import pytest
import torch

import kernels.linear_cross_entropy as lce
from tests.unit.kernels import (logprobs_of_logits, make_problem, reference_logprobs,
                                reference_loss)

pytest.importorskip("triton")

TOKENS, HIDDEN, VOCAB = 8192, 2048, 128256
CHUNK_TOKENS = 2048  # the logits of a chunk: 2048 x 128256 bf16 = 525 MB


def _on_cuda(problem, dtype):
    hidden, weight, labels, weights, real = problem
    return (hidden.cuda().to(dtype), weight.cuda().to(dtype), labels.cuda(), weights.cuda(),
            real)


def test_the_triton_kernels_are_the_cuda_path():
    stats, grad_ = lce._chunk_steps(torch.device("cuda"))
    assert stats.__module__ == "kernels.logits_stats_triton"
    assert grad_.__module__ == "kernels.logits_grad_triton"


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 1.6e-2)])
def test_kernels_equal_their_torch_references(dtype, tol):
    from kernels.logits_grad_triton import logits_grad_
    from kernels.logits_stats_triton import logits_stats

    vocab_start, real_vocab_size, n_cols = 5000, 13500, 9000  # 500 padded columns
    labels = torch.tensor([5000, 13499, 4999, -100, 9321, 12000], device="cuda")
    logits = (3 * torch.randn(len(labels), n_cols, device="cuda")).to(dtype)
    got = logits_stats(logits, labels, vocab_start, real_vocab_size)
    want = lce.torch_logits_stats(logits, labels, vocab_start, real_vocab_size)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    lse = torch.logsumexp(logits[:, :real_vocab_size - vocab_start].float(), dim=1)
    scale, entropy_coef, entropy = torch.randn(3, len(labels), device="cuda")
    for extra in ((), (entropy_coef, entropy)):
        got = logits_grad_(logits.clone(), labels, vocab_start, real_vocab_size, lse, scale,
                           *extra)
        want = lce.torch_logits_grad_(logits.clone(), labels, vocab_start, real_vocab_size, lse,
                                      scale, *extra)
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)


def test_fp32_head_equals_the_fp64_reference():
    hidden, weight, labels, weights, real = _on_cuda(
        make_problem(tokens=300, hidden_size=64, vocab=5120, real_vocab_size=5000), torch.float32)
    g_logprobs, g_entropy = torch.randn(2, len(labels), device="cuda")
    h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    logprobs, entropy = lce.linear_logprobs(h, w, labels, real_vocab_size=real, chunk_tokens=128,
                                            with_entropy=True)
    ((g_logprobs * logprobs).sum() + (g_entropy * entropy).sum()).backward()
    loss = lce.linear_cross_entropy_loss(hidden, weight, labels, weights, real_vocab_size=real,
                                         chunk_tokens=128)
    rh, rw = hidden.double().requires_grad_(), weight.double().requires_grad_()
    ref_logprobs, ref_entropy = reference_logprobs(rh, rw, labels, real)
    ((g_logprobs * ref_logprobs).sum() + (g_entropy * ref_entropy).sum()).backward()
    tol = dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logprobs.double(), ref_logprobs, **tol)
    torch.testing.assert_close(entropy.double(), ref_entropy, **tol)
    torch.testing.assert_close(h.grad.double(), rh.grad, **tol)
    torch.testing.assert_close(w.grad.double(), rw.grad, **tol)
    torch.testing.assert_close(loss.double(), reference_loss(rh, rw, labels, weights, real),
                               **tol)


# -- the realistic bf16 shape ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def realistic():
    """hidden [8192, 2048] ~ N(0, 1), weight [128256, 2048] ~ N(0, 0.02²) (bf16), labels with
    -100 every eighth token, loss weights, and upstream gradients for log-probs and entropy."""
    gen = torch.Generator(device="cuda").manual_seed(0)
    hidden = torch.randn(TOKENS, HIDDEN, device="cuda", generator=gen).bfloat16()
    weight = (0.02 * torch.randn(VOCAB, HIDDEN, device="cuda", generator=gen)).bfloat16()
    labels = torch.randint(0, VOCAB, (TOKENS,), device="cuda", generator=gen)
    labels[::8] = -100
    weights = torch.rand(TOKENS, device="cuda", generator=gen) / TOKENS
    upstream = torch.randn(2, TOKENS, device="cuda", generator=gen)
    return hidden, weight, labels, weights, upstream


def _fused_logprobs(hidden, weight, labels, _, upstream):
    logprobs, entropy = lce.linear_logprobs(hidden, weight, labels, real_vocab_size=VOCAB,
                                            chunk_tokens=CHUNK_TOKENS, with_entropy=True)
    ((upstream[0] * logprobs).sum() + (upstream[1] * entropy).sum()).backward()
    return logprobs.detach(), entropy.detach()


def _full_logprobs(hidden, weight, labels, _, upstream):
    """The unfused path: logits in the inputs' dtype (a linear layer), fp32 log-softmax; with
    fp32 inputs, the fp32 reference."""
    logprobs, entropy = logprobs_of_logits(hidden @ weight.T, labels, torch.float32)
    ((upstream[0] * logprobs).sum() + (upstream[1] * entropy).sum()).backward()
    return logprobs.detach(), entropy.detach()


def _fused_loss(hidden, weight, labels, weights, _):
    loss = lce.linear_cross_entropy_loss(hidden, weight, labels, weights, real_vocab_size=VOCAB,
                                         chunk_tokens=CHUNK_TOKENS)
    loss.backward()
    return (loss.detach(),)


def _full_loss(hidden, weight, labels, weights, _):
    logprobs = logprobs_of_logits(hidden @ weight.T, labels, torch.float32)[0]
    loss = -(weights * logprobs).sum()
    loss.backward()
    return (loss.detach(),)


def _leaves(realistic, dtype=torch.bfloat16):
    """Fresh leaves (copies in `dtype`) of the fixture's hidden states and weight."""
    hidden, weight, *rest = realistic
    return (hidden.to(dtype, copy=True).requires_grad_(),
            weight.to(dtype, copy=True).requires_grad_(), *rest)


def _run(path, inputs):
    """(outputs, d_hidden, d_weight, peak bytes above the start, seconds) of forward+backward."""
    for leaf in inputs[:2]:
        leaf.grad = None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start_bytes = torch.cuda.memory_allocated()
    start = time.perf_counter()
    outputs = path(*inputs)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() - start_bytes
    return outputs, inputs[0].grad, inputs[1].grad, peak, seconds


def _relative_error(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@pytest.mark.parametrize("fused, full", [(_fused_logprobs, _full_logprobs),
                                         (_fused_loss, _full_loss)], ids=["logprobs", "loss"])
def test_realistic_bf16_head_is_close_lean_and_timed(realistic, fused, full):
    inputs = _leaves(realistic)
    _run(fused, inputs)  # compiles the kernels
    outputs, d_hidden, d_weight, peak, seconds = _run(fused, inputs)
    logits_bytes = TOKENS * VOCAB * 2
    assert peak < logits_bytes, f"peak {peak / 2**30:.2f} GiB >= bf16 logits"

    unfused = _leaves(realistic)
    _run(full, unfused)
    *_, unfused_peak, unfused_seconds = _run(full, unfused)
    ref_outputs, ref_d_hidden, ref_d_weight, *_ = _run(full, _leaves(realistic, torch.float32))
    for got, want in zip(outputs, ref_outputs):
        torch.testing.assert_close(got, want, rtol=1e-2, atol=1e-2)
    errors = {"d_hidden": _relative_error(d_hidden, ref_d_hidden),
              "d_weight": _relative_error(d_weight, ref_d_weight)}
    assert max(errors.values()) < 2e-2, errors
    print(json.dumps({"path": fused.__name__, "tokens": TOKENS, "hidden": HIDDEN,
                      "vocab": VOCAB, "chunk_tokens": CHUNK_TOKENS,
                      "fused_fwd_bwd_ms": round(seconds * 1e3, 2),
                      "unfused_fwd_bwd_ms": round(unfused_seconds * 1e3, 2),
                      "fused_peak_gib": round(peak / 2**30, 3),
                      "unfused_peak_gib": round(unfused_peak / 2**30, 3),
                      "bf16_logits_gib": round(logits_bytes / 2**30, 3),
                      "grad_relative_errors": errors}), flush=True)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_rms_norm_kernels_equal_the_torch_path_and_are_timed(dtype, tol):
    """The 1B shape's norms: 16,384 tokens × 2,048, forward and backward."""
    from kernels.rms_norm import kernel_rms_norm, rms_norm, torch_rms_norm

    gen = torch.Generator(device="cuda").manual_seed(0)
    x = (3 * torch.randn(16384, HIDDEN, device="cuda", generator=gen)).to(dtype)
    weight = (1 + 0.1 * torch.randn(HIDDEN, device="cuda", generator=gen)).to(dtype)
    dy = torch.randn(16384, HIDDEN, device="cuda", generator=gen).to(dtype)
    taken = rms_norm(x.clone().requires_grad_(), weight, 1e-5).grad_fn
    assert type(taken).__name__ == "_RMSNormBackward"  # CUDA tensors take the kernels

    def run(norm):
        leaves = x.clone().requires_grad_(), weight.clone().requires_grad_()
        torch.cuda.synchronize()
        start = time.perf_counter()
        y = norm(*leaves, 1e-5)
        y.backward(dy)
        torch.cuda.synchronize()
        return (y.detach(), *(leaf.grad for leaf in leaves)), time.perf_counter() - start

    run(kernel_rms_norm)
    run(torch_rms_norm)  # warm both
    got, kernel_s = run(kernel_rms_norm)
    want, torch_s = run(torch_rms_norm)
    for name, a, b in zip(("y", "dx", "dw"), got, want):
        torch.testing.assert_close(a.float(), b.float(), rtol=tol,
                                   atol=tol * b.float().abs().max().item(), msg=name)
    print(json.dumps({"rms_norm": str(dtype), "kernel_fwd_bwd_ms": round(kernel_s * 1e3, 3),
                      "torch_fwd_bwd_ms": round(torch_s * 1e3, 3)}), flush=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rope_kernel_equals_megatrons_rotation_and_is_timed(dtype):
    """The 1B shape's queries: 16,384 packed tokens (4 sequences of 4,096) × 32 heads × 64, a
    strided slice of the fused QKV output as in the model, forward and backward; bf16 bit for
    bit (fp32: the GPU may fuse a product and a sum into one rounding)."""
    from megatron.core.models.common.embeddings.rope_utils import _apply_rotary_pos_emb_bshd

    from engine.model.rope import positions_in_sequences
    from kernels.rope import rope, rope_tables

    tokens, heads, groups, d = 16384, 32, 8, 64
    gen = torch.Generator(device="cuda").manual_seed(0)
    qkv = torch.randn(tokens, heads + 2 * groups, d, device="cuda", generator=gen).to(dtype)
    dy = torch.randn(tokens, heads, d, device="cuda", generator=gen).to(dtype)
    inv_freq = 1.0 / 500000 ** (torch.arange(0, d, 2, device="cuda").float() / d)
    angles = torch.outer(torch.arange(4096, device="cuda").float(), inv_freq)
    freqs = torch.cat([angles, angles], dim=-1)
    cu_seqlens = torch.arange(0, tokens + 1, 4096, device="cuda", dtype=torch.int32)
    positions = positions_in_sequences(cu_seqlens, tokens)
    taken = rope(qkv[:, :heads].clone().requires_grad_(), positions,
                 *rope_tables(freqs, dtype)).grad_fn
    assert type(taken).__name__ == "_RopeBackward"  # CUDA tensors take the kernel

    def kernel(x):
        return rope(x, positions, *rope_tables(freqs, dtype))

    def unfused(x):
        return _apply_rotary_pos_emb_bshd(x.unsqueeze(1), freqs[positions][:, None, None]
                                          ).squeeze(1)

    def run(path):
        x = qkv[:, :heads].detach().requires_grad_()  # a strided view, as the model's
        torch.cuda.synchronize()
        start = time.perf_counter()
        y = path(x)
        y.backward(dy)
        torch.cuda.synchronize()
        return (y.detach(), x.grad), time.perf_counter() - start

    run(kernel)
    run(unfused)  # warm both
    got, kernel_s = run(kernel)
    want, unfused_s = run(unfused)
    for name, a, b in zip(("y", "dx"), got, want):
        if dtype == torch.bfloat16:
            assert torch.equal(a, b), name
        else:
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6, msg=name)
    print(json.dumps({"rope": str(dtype), "kernel_fwd_bwd_ms": round(kernel_s * 1e3, 3),
                      "unfused_fwd_bwd_ms": round(unfused_s * 1e3, 3)}), flush=True)
