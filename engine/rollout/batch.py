"""Rollouts as training sequences: each prompt's sampled answers, scored, turned into packed-ready
sequences with their per-target fields for the policy loss.

    batch = rollout_batch(prompts, completions, rewards, normalization="standard")

A sequence is the prompt's tokens followed by the answer's; targets (one per token but the last,
as the labels shift) are trained on the answer tokens only. Per target: the answer mask, the
answer's group-relative advantage (engine.losses.grpo) and vLLM's log-prob of the token (kept to
measure its gap to the trainer's own). Per answer: the reward, whether it was truncated, its
dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.losses.grpo import group_advantages
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
                  normalization: str = "standard") -> RolloutBatch:
    """Prompts with their groups of completions (the same number each) and their rewards."""
    group = len(completions[0])
    if any(len(c) != group for c in completions) or \
            [len(r) for r in rewards] != [len(c) for c in completions]:
        raise ValueError("every prompt needs the same number of completions and one reward each")
    flat_rewards = torch.tensor([r for group_rewards in rewards for r in group_rewards],
                                dtype=torch.float64)
    advantages = group_advantages(flat_rewards, group, normalization).tolist()
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
