"""Preference losses (the DPO family) as pure functions of per-sequence log-probabilities.

For a pair (chosen c, rejected r), with policy log-probs π and reference log-probs ρ summed over
the response tokens, and n the number of those tokens:

- `dpo`:      h = β·[(π_c − ρ_c) − (π_r − ρ_r)],             loss = −log σ(h)
- `dpo_norm`: the same on per-token averages π/n and ρ/n (Tülu 3, β = 5)
- `ipo`:      h = (π_c/n_c − ρ_c/n_c) − (π_r/n_r − ρ_r/n_r),  loss = (h − 1/(2β))²
- `simpo`:    h = β·(π_c/n_c − π_r/n_r) − γ (no reference),  loss = −log σ(h)
- `hinge`:    h = β·[(π_c − ρ_c) − (π_r − ρ_r)],             loss = max(0, 1 − h)

Label smoothing ε (conservative DPO; sigmoid losses only): loss = −(1 − ε)·log σ(h) − ε·log σ(−h).
An NLL term α·(−π_c/n_c) (the chosen response's mean token loss) is added when α > 0.
The implicit rewards are β·(π − ρ) (on averages for `dpo_norm` and `ipo`; β·π/n for `simpo`);
accuracy is the share of pairs whose chosen reward exceeds the rejected one. Registered under
each name for packed micro-batches whose items are (chosen, rejected) pairs; the loss and every
metric are means over the global batch's pairs (each pair weighted by its item's share of the
global batch, `sequence_data["item_weights"]`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.config import PREFERENCE_LOSSES
from engine.losses.cross_entropy import label_logprobs
from engine.losses.registry import register, token_count

_AVERAGED = ("dpo_norm", "ipo", "simpo")  # on per-token average log-probs
_SIGMOID = ("dpo", "dpo_norm", "simpo")


@dataclass
class PairLogprobs:
    """Per pair [pairs]: log-prob sums of the response tokens and their counts."""

    policy_chosen: torch.Tensor
    policy_rejected: torch.Tensor
    reference_chosen: torch.Tensor | None  # None for reference-free losses
    reference_rejected: torch.Tensor | None
    chosen_tokens: torch.Tensor
    rejected_tokens: torch.Tensor


@dataclass
class PairLosses:
    """Per pair [pairs]: the loss and the implicit rewards."""

    loss: torch.Tensor
    reward_chosen: torch.Tensor
    reward_rejected: torch.Tensor


def preference_loss(kind: str, lp: PairLogprobs, beta: float, gamma: float = 0.0,
                    label_smoothing: float = 0.0, nll_alpha: float = 0.0) -> PairLosses:
    if kind not in PREFERENCE_LOSSES:
        raise ValueError(f"unknown preference loss {kind!r}; expected one of {PREFERENCE_LOSSES}")
    pc, pr = lp.policy_chosen.double(), lp.policy_rejected.double()
    nc, nr = lp.chosen_tokens.double().clamp(min=1), lp.rejected_tokens.double().clamp(min=1)
    if kind in _AVERAGED:
        pc, pr = pc / nc, pr / nr
    if kind == "simpo":
        chosen, rejected = beta * pc, beta * pr
        h = chosen - rejected - gamma
    else:
        rc, rr = lp.reference_chosen.double(), lp.reference_rejected.double()
        if kind in _AVERAGED:
            rc, rr = rc / nc, rr / nr
        delta = (pc - rc) - (pr - rr)
        chosen, rejected = beta * (pc - rc), beta * (pr - rr)
        h = delta if kind == "ipo" else beta * delta
    if kind in _SIGMOID:
        loss = -(1 - label_smoothing) * F.logsigmoid(h) - label_smoothing * F.logsigmoid(-h)
    elif kind == "ipo":
        loss = (h - 1 / (2 * beta)) ** 2
    else:  # hinge
        loss = torch.relu(1 - h)
    if nll_alpha:
        loss = loss + nll_alpha * (-lp.policy_chosen.double() / nc)
    return PairLosses(loss, chosen.detach(), rejected.detach())


def sequence_sums(token_values: torch.Tensor, weights: torch.Tensor, cu_seqlens: torch.Tensor,
                  num_sequences: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per packed sequence: Σ weights·values over its tokens, and Σ weights (THD segments)."""
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).long()
    segment = torch.repeat_interleave(torch.arange(len(lengths), device=lengths.device), lengths)
    sums = torch.zeros(len(lengths), dtype=torch.float64, device=token_values.device)
    counts = torch.zeros_like(sums)
    sums = sums.index_add(0, segment, (token_values * weights).double())
    counts = counts.index_add(0, segment, weights.double())
    return sums[:num_sequences], counts[:num_sequences]


PREFERENCE_METRICS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margin",
                      "rewards/accuracy", "logps/chosen", "logps/rejected")


def packed_pair_logprobs(mb, logits, real_vocab_size: int,
                         reference: bool, kernel: str = "auto") -> PairLogprobs:
    """Pairs of a packed micro-batch: each item is (chosen, rejected), adjacent in the pack; the
    response tokens are those with a loss weight; the reference sums and counts come with the
    micro-batch (`sequence_data["reference_logps"]`) when the loss uses them."""
    token_logps = label_logprobs(logits, mb.labels, real_vocab_size, kernel)
    sums, counts = sequence_sums(token_logps, (mb.loss_weights > 0).float(), mb.cu_seqlens,
                                 mb.num_sequences)
    ref = mb.sequence_data["reference_logps"].double() if reference else None
    return PairLogprobs(sums[0::2], sums[1::2], ref[0::2] if reference else None,
                        ref[1::2] if reference else None, counts[0::2], counts[1::2])


def _registered(kind: str):
    def loss_fn(mb, logits, *, real_vocab_size: int, beta: float, gamma: float = 0.0,
                label_smoothing: float = 0.0, nll_alpha: float = 0.0, kernel: str = "auto"):
        lp = packed_pair_logprobs(mb, logits, real_vocab_size, reference=kind != "simpo",
                                  kernel=kernel)
        out = preference_loss(kind, lp, beta, gamma, label_smoothing, nll_alpha)
        w = mb.sequence_data["item_weights"][0::2].double()  # 1 / pairs in the global batch

        def mean(values):
            return (w * values).sum()

        loss = mean(out.loss)
        metrics = {
            "loss": loss.detach(),
            "rewards/chosen": mean(out.reward_chosen),
            "rewards/rejected": mean(out.reward_rejected),
            "rewards/margin": mean(out.reward_chosen - out.reward_rejected),
            "rewards/accuracy": mean((out.reward_chosen > out.reward_rejected).double()),
            "logps/chosen": mean(lp.policy_chosen.detach()),
            "logps/rejected": mean(lp.policy_rejected.detach()),
        }
        count = token_count(mb, loss.device)
        return loss.float(), count, {k: v.float() for k, v in metrics.items()}

    loss_fn.__name__ = kind
    loss_fn.__doc__ = f"`{kind}` over the pairs of a packed micro-batch, mean over the batch."
    return register(kind, metrics=PREFERENCE_METRICS)(loss_fn)


for _kind in PREFERENCE_LOSSES:
    _registered(_kind)
