"""PPO for RLVR as Tülu 3 ran it, as pure functions on answers laid out [answers × tokens]
(answer tokens first in each row, `mask` 1 on them, 0 on the padding after):

    rewards = token_rewards(answer_rewards(scores, truncated), logp, ref_logp, mask, 0.05)
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=0.95)
    advantages = masked_whiten(advantages, mask)
    policy, clipped = clipped_surrogate(logp, old_logp, advantages, 0.2, 0.2)   # engine.losses.grpo
    value, value_clipped = clipped_value_loss(new_values, values, returns, 0.2)
    loss = mean over answer tokens of (policy + value_coef · value)               # 0.1 in Tülu 3

- **Rewards**: per answer, `verifiable_reward` × the verifier's score (0 or 1), or
  `truncation_penalty` instead of it when the answer never stopped (Tülu 3: 10 and −10; None
  keeps the score of a truncated answer); per token, −β · (logp − ref_logp) on every answer
  token (the k1 estimate of the KL to the frozen reference), plus the answer's reward on its
  last token.
- **GAE**: δ_t = r_t + γ·V_{t+1} − V_t with V = 0 after an answer's last token,
  A_t = δ_t + γλ·A_{t+1}; the returns, the value model's targets, are A + V.
- **Whitening**: (x − mean) / sqrt(var + 1e-8) over the answer tokens of the whole rollout
  batch, the variance with Bessel's correction (AI2's and TRL's `masked_whiten`).
- **Value loss**: ½ · max((V − R)², (clip(V, V_old ± ε) − R)²) per token, ε = 0.2.

The registered loss `value` trains a value model (`model.head=value`, column 0 of its output):
`value_coef` × the clipped value loss over the answer tokens of a packed micro-batch, reduced by
its loss weights, reading the per-token `old_values` and `returns` of `MicroBatch.token_data`.
The policy's PPO loss is `grpo` with β = 0 (the KL is in the rewards) and these advantages.
"""

from __future__ import annotations

import torch

from engine.losses.registry import register, token_count
from engine.model.build import vocab_logits

VALUE_METRICS = ("loss", "value_loss", "value_clip_fraction", "value_mean", "return_mean")


def _last_token_index(mask: torch.Tensor) -> torch.Tensor:
    lengths = mask.sum(dim=1).long()
    if (lengths == 0).any():
        raise ValueError(f"answer {int((lengths == 0).nonzero()[0])} has no tokens")
    return lengths - 1


def answer_rewards(scores: torch.Tensor, truncated: torch.Tensor,
                   verifiable_reward: float = 10.0,
                   truncation_penalty: float | None = -10.0) -> torch.Tensor:
    """Each answer's reward: `verifiable_reward` × its verifier score, or `truncation_penalty`
    instead when it never stopped (None: no penalty)."""
    rewards = verifiable_reward * scores.double()
    if truncation_penalty is None:
        return rewards
    return torch.where(truncated.bool(), torch.full_like(rewards, truncation_penalty), rewards)


def token_rewards(rewards: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor,
                  mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """Per-token rewards [answers × tokens]: the KL penalty on every answer token, each
    answer's reward (`answer_rewards`) added on its last token; 0 on padding."""
    mask = mask.to(logp.dtype)
    out = -kl_coef * (logp - ref_logp) * mask
    rows = torch.arange(len(out), device=out.device)
    out[rows, _last_token_index(mask)] += rewards.to(out.dtype)
    return out


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) [answers × tokens] by generalized advantage estimation, the value
    after an answer's last token taken as 0; both 0 on padding."""
    mask = mask.to(rewards.dtype)
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def masked_whiten(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance over the masked entries (variance with Bessel's correction);
    0 where the mask is 0."""
    mask = mask.to(values.dtype)
    count = mask.sum()
    if count < 2:
        raise ValueError(f"whitening needs at least 2 values, got {int(count)}")
    mean = (values * mask).sum() / count
    variance = ((values - mean) ** 2 * mask).sum() / (count - 1)
    return (values - mean) * torch.rsqrt(variance + 1e-8) * mask


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                       clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(½ · max((V − R)², (clip(V, V_old ± clip) − R)²) per token, whether the clipped term was
    the larger: a bool per token)."""
    unclipped = (values - returns) ** 2
    clipped = (torch.clamp(values, old_values - clip, old_values + clip) - returns) ** 2
    return 0.5 * torch.maximum(unclipped, clipped), clipped > unclipped


@register("value", metrics=VALUE_METRICS)
def value(mb, logits, *, real_vocab_size: int, kernel: str = "auto", value_clip: float = 0.2,
          value_coef: float = 0.1):
    """The value model's loss on a packed micro-batch; `logits` [t, rows/TP] of its output
    layer (`real_vocab_size` and `kernel` are the language losses' options, unused here)."""
    values = vocab_logits(logits, 1)[:, 0].double()
    data, weights = mb.token_data, mb.loss_weights.double()
    per_token, clipped = clipped_value_loss(values, data["old_values"].double(),
                                            data["returns"].double(), value_clip)
    loss = value_coef * (weights * per_token).sum()

    def mean(x):
        return (weights * x.detach()).sum().float()

    metrics = {"loss": loss.detach().float(), "value_loss": mean(per_token),
               "value_clip_fraction": mean(clipped.double()), "value_mean": mean(values),
               "return_mean": mean(data["returns"].double())}
    count = token_count(mb, loss.device)
    return loss.float(), count, metrics
