"""Rollouts become training sequences: answer tokens trained with their group's advantage and
vLLM's log-probs placed on the targets that predict them, by hand."""

import math

import numpy as np
import pytest

from engine.rollout.batch import ppo_advantages, rollout_batch
from engine.rollout.vllm_engine import Completion


def test_sequences_targets_and_advantages_by_hand():
    prompts = [np.array([1, 2, 3]), np.array([4, 5])]
    completions = [
        [Completion([7, 8], [-0.5, -0.25], truncated=False), Completion([9], [-1.0], True)],
        [Completion([6, 6, 2], [-0.1, -0.2, -0.3], False), Completion([2], [-2.0], False)],
    ]
    batch = rollout_batch(prompts, ["gsm8k", "math"], completions, [[1.0, 0.0], [0.0, 0.0]])
    assert [s.tolist() for s in batch.sequences] == [[1, 2, 3, 7, 8], [1, 2, 3, 9],
                                                    [4, 5, 6, 6, 2], [4, 5, 2]]
    # targets predict tokens 1..end: the answer starts at the prompt's last target
    assert batch.answer_masks[0].tolist() == [0, 0, 1, 1]
    assert batch.vllm_logprobs[0].tolist() == [0, 0, -0.5, -0.25]
    assert batch.answer_masks[3].tolist() == [0, 1]
    # group 1: rewards {1, 0}, mean 0.5, population std 0.5 -> advantages +1, -1; group 2: 0
    assert batch.advantages[0].tolist() == pytest.approx([0, 0, 1, 1], abs=1e-6)
    assert batch.advantages[1].tolist() == pytest.approx([0, 0, -1], abs=1e-6)
    assert all(not a.any() for a in batch.advantages[2:])
    assert batch.truncated.tolist() == [False, True, False, False]
    assert batch.datasets == ["gsm8k", "gsm8k", "math", "math"]
    assert batch.rewards.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert all(len(m) == len(s) - 1 for m, s in zip(batch.answer_masks, batch.sequences))
    assert math.isclose(sum(m.sum() for m in batch.answer_masks), 2 + 1 + 3 + 1)


def test_uneven_groups_and_empty_answers_are_refused():
    one = Completion([5], [-1.0], False)
    with pytest.raises(ValueError, match="same number of completions"):
        rollout_batch([np.array([1, 2])] * 2, ["gsm8k"] * 2, [[one, one], [one]],
                      [[1.0, 0.0], [1.0]])
    with pytest.raises(ValueError, match="answer 0 is empty"):
        rollout_batch([np.array([1, 2])], ["gsm8k"], [[Completion([], [], False)]], [[1.0]])


def test_ppo_advantages_and_returns_by_hand():
    prompts = [np.array([1, 2])]
    completions = [[Completion([7, 8], [-1.0, -2.0], False), Completion([9], [-1.0], True)]]
    # Tülu 3's shaping: the first answer is right (+10), the second never stopped (−10)
    batch = rollout_batch(prompts, ["gsm8k"], completions, [[10.0, -10.0]], normalization=None)
    assert all(not a.any() for a in batch.advantages)  # no group advantages for PPO
    old = [np.array([0, -1.0, -2.0]), np.array([0, -1.0])]
    ref = [np.array([0, -1.5, -2.0]), np.array([0, -0.8])]
    values = [np.array([0, 0.5, 0.6]), np.array([0, 0.2])]
    advantages, returns, metrics = ppo_advantages(batch, old, ref, values, kl_coef=0.1,
                                                  gamma=1.0, lam=0.95)
    # token rewards: A = [−0.1·0.5, 10] = [−0.05, 10]; B = [−0.1·(−0.2) − 10] = [−9.98]
    # GAE (γ 1, λ 0.95): A_1 = 10 − 0.6 = 9.4, A_0 = −0.05 + 0.6 − 0.5 + 0.95·9.4 = 8.98;
    # B_0 = −9.98 − 0.2 = −10.18. Returns = A + V.
    raw = np.array([8.98, 9.4, -10.18])
    white = (raw - raw.mean()) / np.sqrt(raw.var(ddof=1) + 1e-8)
    np.testing.assert_allclose(advantages[0], [0, white[0], white[1]], atol=1e-12)
    np.testing.assert_allclose(advantages[1], [0, white[2]], atol=1e-12)
    np.testing.assert_allclose(returns[0], [0, 9.48, 10.0], atol=1e-12)
    np.testing.assert_allclose(returns[1], [0, -9.98], atol=1e-12)
    assert metrics["kl_penalty"] == pytest.approx((-0.05 + 0.02) / 2)
    assert metrics["advantage_raw_std"] == pytest.approx(raw.std(ddof=1))
    residual = np.array([9.48, 10.0, -9.98]) - np.array([0.5, 0.6, 0.2])
    assert metrics["value_explained_variance"] == pytest.approx(
        1 - residual.var(ddof=1) / np.array([9.48, 10.0, -9.98]).var(ddof=1))
