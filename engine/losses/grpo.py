"""GRPO (group relative policy optimization) for RLVR, as pure functions of per-token log-probs.

    advantages = group_advantages(rewards, group_size=16)            # one per sampled answer
    per_token, clipped = clipped_surrogate(logp, old_logp, advantages_per_token, 0.2, 0.2)
    kl = kl_estimate(logp, ref_logp, "k3")
    loss = Σ_t w_t · (per_token + β · kl)                            # w: the reduction weights

- Advantages are group-relative: an answer's reward minus the mean reward of the answers to the
  same prompt, divided by the group's standard deviation (population std, + 1e-8) with
  `standard` normalization (AI2's open-instruct, Tülu 3.1), or not divided with `centered`.
- The surrogate is PPO's clipped one on the importance ratio r = exp(logp − old_logp):
  −min(r·A, clip(r, 1 − ε_low, 1 + ε_high)·A) per token.
- The KL to the frozen reference policy is estimated per token from the sampled tokens' log-probs,
  with d = ref_logp − logp: k1 = −d, k2 = d²/2, k3 = exp(d) − d − 1 (Tülu 3.1: k3, β 0.01).
- The reduction is the engine's: the micro-batch's loss weights carry it (token_mean over every
  answer token of the global batch, or sequence_mean), so any split sums to the same loss.

The registered loss `grpo` reads per-token values of the micro-batch (`MicroBatch.token_data`,
laid out like the labels): `advantages`; `old_logprobs`, unless `on_policy` (one optimizer step
per rollout batch: the policy that trains is the one that sampled, so the old log-probs are its
own, detached, and the ratio is 1); `ref_logprobs`, or without them (no reference model) the old
log-probs stand in and the KL is measured to the policy before the step; `vllm_logprobs`, the
sampler's, and `gap_weights`, each answer token's weight in the mean vLLM–trainer gap
|old − vllm| (`logprob_gap_mean`; `logprob_gap_max`, a maximum, over the answer tokens).
"""

from __future__ import annotations

import torch

from engine.config import ADVANTAGE_NORMALIZATIONS as NORMALIZATIONS, KL_ESTIMATORS
from engine.losses.cross_entropy import label_logprobs_and_entropy, tempered
from engine.losses.registry import register, token_count

GRPO_METRICS = ("loss", "policy_loss", "kl", "clip_fraction", "ratio", "entropy",
                "logprob_gap_mean")
GRPO_MAXIMA = ("logprob_gap_max",)


def group_advantages(rewards: torch.Tensor, group_size: int,
                     normalization: str = "standard") -> torch.Tensor:
    """Rewards [groups × group_size] (each prompt's answers adjacent) → advantages, same shape."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"advantage normalization {normalization!r} is not one of "
                         f"{', '.join(NORMALIZATIONS)}")
    if group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not form groups of {group_size}")
    grouped = rewards.double().reshape(-1, group_size)
    centered = grouped - grouped.mean(dim=1, keepdim=True)
    if normalization == "standard":
        centered = centered / (grouped.std(dim=1, unbiased=False, keepdim=True) + 1e-8)
    return centered.reshape(rewards.shape).to(rewards.dtype if rewards.is_floating_point()
                                              else torch.float32)


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                      clip_low: float, clip_high: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(−min(r·A, clip(r)·A) per token, whether the clipped term was the smaller: a bool per
    token), r = exp(logp − old_logp)."""
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip_low, 1.0 + clip_high) * advantages
    return -torch.minimum(unclipped, clipped), clipped < unclipped


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token estimate of KL(policy ‖ reference) from the sampled tokens' log-probs."""
    d = ref_logp - logp
    if estimator == "k1":
        return -d
    if estimator == "k2":
        return 0.5 * d * d
    if estimator == "k3":
        return torch.exp(d) - d - 1.0
    raise ValueError(f"KL estimator {estimator!r} is not one of {', '.join(KL_ESTIMATORS)}")


@register("grpo", metrics=GRPO_METRICS, maxima=GRPO_MAXIMA)
def grpo(mb, logits, *, real_vocab_size: int, kernel: str = "auto", clip_low: float = 0.2,
         clip_high: float = 0.2, kl_coef: float = 0.01, kl_estimator: str = "k3",
         temperature: float = 1.0, on_policy: bool = False):
    """The GRPO loss over the answer tokens of a packed micro-batch (weights: the reduction),
    on the distribution the answers were sampled from (logits / temperature)."""
    logp, entropy = label_logprobs_and_entropy(tempered(logits, temperature), mb.labels,
                                               real_vocab_size, kernel)
    data, weights, logp = mb.token_data, mb.loss_weights.double(), logp.double()
    old = logp.detach() if on_policy else data["old_logprobs"].double()
    ref = data["ref_logprobs"].double() if "ref_logprobs" in data else old
    policy, clipped = clipped_surrogate(logp, old, data["advantages"].double(), clip_low,
                                        clip_high)
    kl = kl_estimate(logp, ref, kl_estimator)
    loss = (weights * (policy + kl_coef * kl)).sum()

    def mean(values):
        return (weights * values.detach()).sum().float()

    gap_weights = data["gap_weights"].double()
    gap = (old - data["vllm_logprobs"].double()).abs()
    metrics = {"loss": loss.detach().float(), "policy_loss": mean(policy), "kl": mean(kl),
               "clip_fraction": mean(clipped.double()),
               "ratio": mean(torch.exp(logp - old)), "entropy": mean(entropy.double()),
               "logprob_gap_mean": (gap_weights * gap).sum().float(),
               "logprob_gap_max": torch.where(gap_weights > 0, gap, 0.0).max().float()}
    count = token_count(mb, loss.device)
    return loss.float(), count, metrics
