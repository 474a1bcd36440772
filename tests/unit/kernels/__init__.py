"""The fused language-model head's shared test problem and its full-logits reference, used by the
CPU tests here, the tensor-parallel script (tests/scripts/linear_cross_entropy_tp.py) and the GPU
tests."""

from __future__ import annotations

from typing import NamedTuple

import torch

IGNORE_INDEX = -100


class Problem(NamedTuple):
    hidden: torch.Tensor  # [t, h]
    weight: torch.Tensor  # [V, h], all vocabulary rows, padding (ids >= real_vocab_size) last
    labels: torch.Tensor  # [t] int64, some -100
    weights: torch.Tensor  # [t] fp32, some 0
    real_vocab_size: int


def make_problem(tokens: int = 37, hidden_size: int = 16, vocab: int = 40,
                 real_vocab_size: int = 35, dtype: torch.dtype = torch.float32,
                 seed: int = 0) -> Problem:
    """A seeded random head with padded vocabulary rows and labels at both ends of the real
    vocabulary and -100 every fourth token."""
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(tokens, hidden_size, generator=gen)
    weight = torch.randn(vocab, hidden_size, generator=gen) * 0.5
    labels = torch.randint(0, real_vocab_size, (tokens,), generator=gen)
    labels[1], labels[2] = 0, real_vocab_size - 1
    labels[::4] = IGNORE_INDEX
    weights = torch.rand(tokens, generator=gen)
    weights[3::5] = 0
    return Problem(hidden.to(dtype), weight.to(dtype), labels, weights, real_vocab_size)


def logprobs_of_logits(logits: torch.Tensor, labels: torch.Tensor, dtype: torch.dtype):
    """(log p(label), entropy) [t] of full logits [t, real vocabulary], softmax in `dtype`;
    0 on -100 rows."""
    log_p = torch.log_softmax(logits.to(dtype), dim=-1)
    labelled = labels != IGNORE_INDEX
    logprobs = log_p.gather(1, labels.clamp(min=0)[:, None]).squeeze(1)
    entropy = -(log_p.exp() * log_p).sum(dim=-1)
    return torch.where(labelled, logprobs, 0.0), torch.where(labelled, entropy, 0.0)


def reference_logprobs(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                       real_vocab_size: int, dtype: torch.dtype = torch.float64):
    """(log p(label), entropy) [t] from the full logits, all in `dtype`, over the real
    vocabulary rows of `weight` (all of them); differentiable w.r.t. hidden and weight."""
    logits = hidden.to(dtype) @ weight[:real_vocab_size].to(dtype).T
    return logprobs_of_logits(logits, labels, dtype)


def reference_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                   weights: torch.Tensor, real_vocab_size: int,
                   dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Σ weights · CE from the full logits in `dtype`."""
    logprobs, _ = reference_logprobs(hidden, weight, labels, real_vocab_size, dtype)
    return -(weights.to(dtype) * logprobs).sum()
