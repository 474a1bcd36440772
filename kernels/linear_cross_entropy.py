"""The language-model head fused with its loss: linear + cross-entropy / log-probabilities of the
labels, chunked over tokens so that the [tokens, vocabulary] logits never exist at once.

    linear_logprobs(hidden, weight, labels, real_vocab_size=...)             -> (logprobs, entropy)
    linear_cross_entropy_loss(hidden, weight, labels, weights, real_vocab_size=...) -> Σ w·CE

hidden [t, h] and weight [V_local, h] share one dtype; the logits of a chunk of tokens are
hidden_chunk @ weight.T in that dtype (as a linear layer computes them), and all softmax math is
fp32. The weight rows are this rank's slice of a vocabulary-parallel (tensor-parallel) head: the
global ids [vocab_start, vocab_start + V_local), of which those ≥ real_vocab_size are padding.
With `tp_group`, each chunk's row statistics are reduced over the group (one MAX and one packed
SUM all-reduce), so every rank returns the same values; the gradient of `hidden` is this rank's
partial sum (to be all-reduced by the caller, as after megatron's ColumnParallelLinear) and that
of `weight` is this rank's slice.

Rows labelled -100 have logprob 0, entropy 0 and give no gradient. Other labels must be global
ids below real_vocab_size: checked on every call unless `check_labels=False`, for callers whose
labels are known good, since the check reads a device tensor on the host (a synchronization).

Chunks default to 2,048 tokens: on an H100 at vocabulary 128,256, hidden 2,048, 8,192 tokens in
bf16, log-probs + entropy forward and backward took 39 / 31 / 27 / 28 ms at chunks of 512 /
1,024 / 2,048 / 4,096 tokens (peak 1.5 GiB; 2.0 GiB at 4,096, above the 1.96 GiB that the
whole bf16 logits would take), against 61 ms and 19.6 GiB through full fp32 log-softmax.

- `linear_logprobs` (DPO, RL): the forward keeps O(t) row statistics; the backward, whose
  upstream gradients are known only then, recomputes each chunk's logits (one more GEMM). An
  output whose gradient is unused (the entropy as a metric) adds no work to it.
- `linear_cross_entropy_loss` (SFT): the loss is linear in the per-token cross-entropies with
  weights known up front, so the forward also computes the gradients chunk by chunk, and the
  backward only scales them by the upstream scalar (no recompute).

Per chunk, two elementwise steps run on the logits: the row statistics (`torch_logits_stats`,
or the Triton kernel of kernels/logits_stats_triton.py) and the in-place gradient
(`torch_logits_grad_`, or kernels/logits_grad_triton.py). The Triton kernels run for CUDA
tensors where triton is installed; it is imported only then.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.distributed as dist

from kernels import triton_installed

IGNORE_INDEX = -100
CHUNK_TOKENS = 2048  # the default chunk: see above


@dataclass(frozen=True)
class _Head:
    """The real vocabulary size, where this rank's slice starts, the tensor-parallel group that
    shares the vocabulary (None: one rank), and the chunk size in tokens."""

    real_size: int
    start: int
    tp_group: object
    chunk_tokens: int


# -- the per-chunk steps in plain torch (CPU, and CUDA without triton) ----------------------------

def _real_columns(n_cols: int, vocab_start: int, real_vocab_size: int) -> int:
    """How many leading local columns hold real (not padding) vocabulary ids."""
    return min(n_cols, real_vocab_size - vocab_start)


def _owned_label_columns(labels: torch.Tensor, vocab_start: int, n_cols: int):
    """(local column of each row's label clamped into range, whether this slice holds it)."""
    local = labels - vocab_start
    owned = (local >= 0) & (local < n_cols)
    return local.clamp(0, n_cols - 1), owned


def torch_logits_stats(logits: torch.Tensor, labels: torch.Tensor, vocab_start: int,
                       real_vocab_size: int):
    """(row_max, sum_exp, target, sum_exp_dev), each [rows] fp32, of logits [rows, V_local]:
    max z, Σ exp(z − max), the label's logit where this slice holds it (else 0) and
    Σ exp(z − max)·(z − max), over the real columns (see kernels/logits_stats_triton.py)."""
    real = logits[:, :_real_columns(logits.shape[1], vocab_start, real_vocab_size)].float()
    row_max = real.amax(dim=1)
    shifted = real - row_max[:, None]
    exp = shifted.exp()
    column, owned = _owned_label_columns(labels, vocab_start, logits.shape[1])
    target = logits.gather(1, column[:, None]).squeeze(1).float()
    return (row_max, exp.sum(dim=1), torch.where(owned, target, 0.0),
            (exp * shifted).sum(dim=1))


def torch_logits_grad_(logits: torch.Tensor, labels: torch.Tensor, vocab_start: int,
                       real_vocab_size: int, lse: torch.Tensor, scale: torch.Tensor,
                       entropy_coef: torch.Tensor | None = None,
                       entropy: torch.Tensor | None = None) -> torch.Tensor:
    """Overwrite logits [rows, V_local] with scale·(p − onehot) − entropy_coef·p·(log p + H)
    (0 on padded columns) and return them (see kernels/logits_grad_triton.py)."""
    n_real = _real_columns(logits.shape[1], vocab_start, real_vocab_size)
    log_p = logits[:, :n_real].float() - lse[:, None]
    coef = scale[:, None]
    if entropy_coef is not None:
        coef = coef - entropy_coef[:, None] * (log_p + entropy[:, None])
    grad = log_p.exp() * coef
    column, owned = _owned_label_columns(labels, vocab_start, logits.shape[1])
    rows = torch.nonzero(owned).squeeze(1)
    grad[rows, column[rows]] -= scale[rows]
    logits[:, :n_real] = grad
    logits[:, n_real:] = 0
    return logits


def _chunk_steps(device: torch.device):
    """(stats, grad_) for logits on `device`: the Triton kernels on CUDA where triton is
    installed, the torch versions otherwise."""
    if device.type == "cuda" and triton_installed():
        from kernels.logits_grad_triton import logits_grad_
        from kernels.logits_stats_triton import logits_stats

        return logits_stats, logits_grad_
    return torch_logits_stats, torch_logits_grad_


# -- chunk-level pieces shared by both losses ------------------------------------------------------

def _chunks(tokens: int, chunk_tokens: int):
    return (slice(start, min(start + chunk_tokens, tokens))
            for start in range(0, tokens, chunk_tokens))


def _reduce_row_stats(row_max, sum_exp, target, sum_exp_dev, tp_group):
    """Combine the per-rank statistics of a chunk over the vocabulary: (lse, target logit,
    entropy), each [rows] fp32. Each rank's sums are rescaled to the global max first."""
    global_max = row_max
    if tp_group is not None:
        global_max = row_max.clone()
        dist.all_reduce(global_max, op=dist.ReduceOp.MAX, group=tp_group)
    shift = row_max - global_max
    rescale = shift.exp()
    packed = torch.stack([rescale * sum_exp, rescale * (sum_exp_dev + shift * sum_exp), target])
    if tp_group is not None:
        dist.all_reduce(packed, group=tp_group)
    sum_exp, sum_exp_dev, target = packed
    log_sum_exp = sum_exp.log()
    return global_max + log_sum_exp, target, log_sum_exp - sum_exp_dev / sum_exp


def _chunk_logits_and_stats(hidden, weight, labels, head: _Head, stats):
    """The chunk's logits (input dtype) and its globally reduced (lse, target, entropy)."""
    logits = hidden @ weight.t()
    reduced = _reduce_row_stats(*stats(logits, labels, head.start, head.real_size),
                                head.tp_group)
    return logits, reduced


def _weight_grad_accumulator(weight: torch.Tensor) -> torch.Tensor:
    return torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)


@functools.cache
def _addmm_into_fp32(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether torch.addmm accumulates a `dtype` product into an fp32 tensor in place on
    `device` (out_dtype: CUDA, recent torch; older builds refuse an fp32 `self` beside
    low-precision matrices), tried on a 2 × 2 product and its value checked: one host read,
    once per device and dtype in a process."""
    if "dtype_out" not in torch.ops.aten.addmm.overloads():
        return False
    acc, ones = torch.ones(2, 2, device=device), torch.ones(2, 2, device=device, dtype=dtype)
    try:
        torch.addmm(acc, ones, ones, out_dtype=torch.float32, out=acc)
    except RuntimeError:  # NotImplementedError included (no kernel on this device)
        return False
    return bool((acc == 3).all())


def _accumulate_weight_grad(d_weight_fp32, grad_logits, hidden):
    """d_weight_fp32 += dZ.T @ hidden; straight into fp32 where torch can (on CUDA), sparing a
    [V_local, h] low-precision copy of the product."""
    if grad_logits.dtype == torch.float32:
        d_weight_fp32.addmm_(grad_logits.t(), hidden)
    elif _addmm_into_fp32(grad_logits.device, grad_logits.dtype):
        torch.addmm(d_weight_fp32, grad_logits.t(), hidden, out_dtype=torch.float32,
                    out=d_weight_fp32)
    else:
        d_weight_fp32.add_(grad_logits.t() @ hidden)


def _backprop_chunk(grad_logits, hidden, weight, d_hidden, d_weight_fp32):
    """d_hidden (the chunk's rows, written) = dZ @ W; d_weight_fp32 += dZ.T @ hidden."""
    if d_hidden is not None:
        torch.mm(grad_logits, weight, out=d_hidden)
    if d_weight_fp32 is not None:
        _accumulate_weight_grad(d_weight_fp32, grad_logits, hidden)


# -- input checks ---------------------------------------------------------------------------------

def _check_inputs(hidden, weight, labels, weights, head: _Head, check_labels: bool):
    """Shapes, dtypes and devices (host-side); the label range too when asked (a host sync)."""
    if hidden.dim() != 2 or weight.dim() != 2:
        raise ValueError(f"hidden must be [tokens, hidden] and weight [vocab, hidden]; got "
                         f"{tuple(hidden.shape)} and {tuple(weight.shape)}")
    if hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"hidden size mismatch: hidden {tuple(hidden.shape)}, weight "
                         f"{tuple(weight.shape)}")
    if not hidden.is_floating_point() or hidden.dtype != weight.dtype:
        raise ValueError(f"hidden and weight must share a floating dtype; got {hidden.dtype} "
                         f"and {weight.dtype}")
    if labels.shape != hidden.shape[:1]:
        raise ValueError(f"labels must be [{hidden.shape[0]}]; got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer token ids; got {labels.dtype}")
    if weights is not None and weights.shape != hidden.shape[:1]:
        raise ValueError(f"weights must be [{hidden.shape[0]}]; got {tuple(weights.shape)}")
    devices = {t.device for t in (hidden, weight, labels, weights) if t is not None}
    if len(devices) != 1:
        raise ValueError(f"all inputs must be on one device; got {sorted(map(str, devices))}")
    if head.chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be positive; got {head.chunk_tokens}")
    if not 0 <= head.start < head.real_size:
        raise ValueError(f"vocab_start must lie in [0, real_vocab_size={head.real_size}) so "
                         f"that this rank holds real vocabulary rows; got {head.start}")
    if check_labels:
        _check_label_range(labels, head.real_size)


def _check_label_range(labels: torch.Tensor, real_vocab_size: int):
    """Labels are -100 or global ids below real_vocab_size (one host sync)."""
    bad = (labels != IGNORE_INDEX) & ((labels < 0) | (labels >= real_vocab_size))
    if bad.any():
        raise ValueError(f"labels must be {IGNORE_INDEX} or in [0, {real_vocab_size}); got "
                         f"{labels[bad][:5].tolist()}")


# -- log-probabilities (and entropy) of the labels ------------------------------------------------

class _LinearLogprobs(torch.autograd.Function):
    """Forward keeps the row statistics; backward recomputes each chunk's logits."""

    @staticmethod
    def forward(ctx, hidden, weight, labels, head: _Head, with_entropy: bool):
        stats, _ = _chunk_steps(hidden.device)
        labelled = labels != IGNORE_INDEX
        lse, target, entropy = (torch.empty(labels.shape[0], dtype=torch.float32,
                                            device=hidden.device) for _ in range(3))
        for rows in _chunks(hidden.shape[0], head.chunk_tokens):
            _, reduced = _chunk_logits_and_stats(hidden[rows], weight, labels[rows], head, stats)
            lse[rows], target[rows], entropy[rows] = reduced
        logprobs = torch.where(labelled, target - lse, 0.0)
        entropy = torch.where(labelled, entropy, 0.0)
        ctx.save_for_backward(hidden, weight, labels, lse, entropy)
        ctx.head = head
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None: no work
        return (logprobs, entropy) if with_entropy else logprobs

    @staticmethod
    def backward(ctx, grad_logprobs, grad_entropy=None):
        hidden, weight, labels, lse, entropy = ctx.saved_tensors
        head = ctx.head
        _, grad_ = _chunk_steps(hidden.device)
        labelled = labels != IGNORE_INDEX
        scale = torch.zeros_like(lse) if grad_logprobs is None else \
            torch.where(labelled, -grad_logprobs.float(), 0.0)
        entropy_coef = None
        if grad_entropy is not None:
            entropy_coef = torch.where(labelled, grad_entropy.float(), 0.0)
        d_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        d_weight = _weight_grad_accumulator(weight) if ctx.needs_input_grad[1] else None
        for rows in _chunks(hidden.shape[0], head.chunk_tokens):
            logits = hidden[rows] @ weight.t()
            entropy_term = () if entropy_coef is None else (entropy_coef[rows], entropy[rows])
            grad_(logits, labels[rows], head.start, head.real_size, lse[rows], scale[rows],
                  *entropy_term)
            _backprop_chunk(logits, hidden[rows], weight,
                            None if d_hidden is None else d_hidden[rows], d_weight)
            del logits  # freed before the next chunk's GEMM, not after it
        return (d_hidden, None if d_weight is None else d_weight.to(weight.dtype),
                None, None, None)


def linear_logprobs(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, *,
                    real_vocab_size: int, vocab_start: int = 0, tp_group=None,
                    chunk_tokens: int = CHUNK_TOKENS, with_entropy: bool = False,
                    check_labels: bool = True):
    """(log p(label) [t] fp32, entropy of p [t] fp32 or None) of the logits hidden @ weight.T,
    without materializing them; labels -100 give 0 for both and no gradient. See the module for
    hidden/weight/labels and the tensor-parallel arguments."""
    head = _Head(real_vocab_size, vocab_start, tp_group, chunk_tokens)
    _check_inputs(hidden, weight, labels, None, head, check_labels)
    out = _LinearLogprobs.apply(hidden, weight, labels.long(), head, with_entropy)
    return out if with_entropy else (out, None)


# -- the weighted cross-entropy loss --------------------------------------------------------------

class _LinearCrossEntropyLoss(torch.autograd.Function):
    """Forward computes the loss and, chunk by chunk, its gradients; backward scales them."""

    @staticmethod
    def forward(ctx, hidden, weight, labels, weights, head: _Head, wanted: tuple[bool, bool]):
        stats, grad_ = _chunk_steps(hidden.device)
        scale = torch.where(labels != IGNORE_INDEX, weights.float(), 0.0)
        d_hidden = torch.empty_like(hidden) if wanted[0] else None
        d_weight = _weight_grad_accumulator(weight) if wanted[1] else None
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for rows in _chunks(hidden.shape[0], head.chunk_tokens):
            logits, (lse, target, _) = _chunk_logits_and_stats(hidden[rows], weight, labels[rows],
                                                               head, stats)
            loss += (scale[rows] * (lse - target)).sum()
            if d_hidden is not None or d_weight is not None:
                grad_(logits, labels[rows], head.start, head.real_size, lse, scale[rows])
                _backprop_chunk(logits, hidden[rows], weight,
                                None if d_hidden is None else d_hidden[rows], d_weight)
            del logits  # freed before the next chunk's GEMM, not after it
        ctx.grads = (d_hidden, None if d_weight is None else d_weight.to(weight.dtype))
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        if ctx.grads is None:
            raise RuntimeError("linear_cross_entropy_loss supports one backward per forward")
        grads, ctx.grads = ctx.grads, None
        return (*(None if g is None else g.mul_(grad_loss) for g in grads), None, None, None,
                None)


def linear_cross_entropy_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                              weights: torch.Tensor, *, real_vocab_size: int,
                              vocab_start: int = 0, tp_group=None,
                              chunk_tokens: int = CHUNK_TOKENS,
                              check_labels: bool = True) -> torch.Tensor:
    """Σ_t weights_t · CE_t (fp32 scalar) of the logits hidden @ weight.T, without materializing
    them; labels -100 contribute 0, `weights` [t] get no gradient. See the module for the other
    arguments."""
    head = _Head(real_vocab_size, vocab_start, tp_group, chunk_tokens)
    _check_inputs(hidden, weight, labels, weights, head, check_labels)
    # Which gradients the forward computes: none under no_grad (evaluation) or for frozen inputs.
    wanted = tuple(torch.is_grad_enabled() and t.requires_grad for t in (hidden, weight))
    return _LinearCrossEntropyLoss.apply(hidden, weight, labels.long(), weights, head, wanted)
