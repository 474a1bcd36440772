"""Rollouts as training sequences: each prompt's sampled answers, scored, turned into packed-ready
sequences with their per-target fields for the policy loss.

    batch = rollout_batch(prompts, datasets, completions, rewards, normalization="standard")
    advantages, returns, metrics = ppo_advantages(batch, old, ref, values, kl_coef, gamma, lam)

A sequence is the prompt's tokens followed by the answer's; targets (one per token but the last,
as the labels shift) are trained on the answer tokens only. Per target: the answer mask, the
answer's group-relative advantage (engine.losses.grpo; GRPO) and vLLM's log-prob of the token
(kept to measure its gap to the trainer's own). Per answer: the reward, whether it was truncated,
its dataset. For PPO (`normalization=None`: no group advantages), `ppo_advantages` gives the
per-token advantages and returns from the value model's values (engine.losses.ppo: the rewards
with the KL per token, GAE, whitening over the batch's answer tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.losses.grpo import group_advantages
from engine.losses.ppo import gae, masked_whiten, token_rewards
from engine.rollout.vllm_engine import Completion


@dataclass
class RolloutBatch:
    sequences: list[np.ndarray]  # prompt + answer token ids
    answer_masks: list[np.ndarray]  # per target: 1 where the target is an answer token
    advantages: list[np.ndarray]  # per target: the answer's advantage on its tokens, else 0
    vllm_logprobs: list[np.ndarray]  # per target: vLLM's log p of the answer token, else 0
    rewards: np.ndarray  # per answer
    truncated: np.ndarray  # per answer
    datasets: list[str]  # per answer


def rollout_batch(prompt_ids: list[np.ndarray], datasets: list[str],
                  completions: list[list[Completion]], rewards: list[list[float]],
                  normalization: str | None = "standard") -> RolloutBatch:
    """Prompts with their groups of completions (the same number each) and their rewards; the
    advantages are group-relative, or 0 with `normalization=None`."""
    group = len(completions[0])
    if any(len(c) != group for c in completions) or \
            [len(r) for r in rewards] != [len(c) for c in completions]:
        raise ValueError("every prompt needs the same number of completions and one reward each")
    flat_rewards = torch.tensor([r for group_rewards in rewards for r in group_rewards],
                                dtype=torch.float64)
    advantages = [0.0] * len(flat_rewards) if normalization is None else \
        group_advantages(flat_rewards, group, normalization).tolist()
    out = RolloutBatch([], [], [], [], flat_rewards.numpy(), np.zeros(len(flat_rewards), bool),
                       [])
    answer_index = 0
    for prompt, dataset, group_completions in zip(prompt_ids, datasets, completions):
        for completion in group_completions:
            answer = np.asarray(completion.token_ids, dtype=np.int64)
            if answer.size == 0:
                raise ValueError(f"answer {answer_index} is empty")
            targets = np.zeros(len(prompt) + len(answer) - 1)
            on_answer = slice(len(prompt) - 1, None)
            mask = targets.copy()
            mask[on_answer] = 1.0
            advantage = targets.copy()
            advantage[on_answer] = advantages[answer_index]
            logprobs = targets.copy()
            logprobs[on_answer] = completion.logprobs
            out.sequences.append(np.concatenate([np.asarray(prompt, dtype=np.int64), answer]))
            out.answer_masks.append(mask)
            out.advantages.append(advantage)
            out.vllm_logprobs.append(logprobs)
            out.truncated[answer_index] = completion.truncated
            out.datasets.append(dataset)
            answer_index += 1
    return out


def _answer_rows(per_target: list[np.ndarray], masks: list[np.ndarray]) -> torch.Tensor:
    """[answers × longest answer] float64: each sequence's answer-token values, left-aligned."""
    rows = [np.asarray(values, dtype=np.float64)[mask > 0]
            for values, mask in zip(per_target, masks)]
    out = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.float64)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.from_numpy(row)
    return out


def _per_target(rows: torch.Tensor, masks: list[np.ndarray]) -> list[np.ndarray]:
    """The inverse of `_answer_rows`: per target, the row's values on the answer tokens, else 0."""
    out = []
    for row, mask in zip(rows.numpy(), masks):
        values = np.zeros(len(mask))
        values[mask > 0] = row[:int((mask > 0).sum())]
        out.append(values)
    return out


def ppo_advantages(batch: RolloutBatch, old: list[np.ndarray], ref: list[np.ndarray],
                   values: list[np.ndarray], kl_coef: float, gamma: float,
                   lam: float) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    """PPO's per-target (advantages, returns) for the batch's answers from the policy's old
    log-probs, the reference's and the value model's values (all per target), with the batch's
    answer rewards on the last tokens; and metrics of them: the KL penalty summed over an
    answer (mean), the advantages' std before whitening, and how much of the returns' variance
    the values explain."""
    masks = batch.answer_masks
    mask_rows = _answer_rows(masks, masks)
    value_rows = _answer_rows(values, masks)
    rewards = token_rewards(torch.from_numpy(batch.rewards), _answer_rows(old, masks),
                            _answer_rows(ref, masks), mask_rows, kl_coef)
    advantages, returns = gae(rewards, value_rows, mask_rows, gamma, lam)
    on = mask_rows > 0
    spread = returns[on].var()
    metrics = {"kl_penalty": float(rewards.sum() / len(rewards) - batch.rewards.mean()),
               "advantage_raw_std": float(advantages[on].std()),
               "value_explained_variance":
                   float(1 - (returns - value_rows)[on].var() / spread) if spread > 0 else 0.0}
    whitened = masked_whiten(advantages, mask_rows)
    return _per_target(whitened, masks), _per_target(returns, masks), metrics
