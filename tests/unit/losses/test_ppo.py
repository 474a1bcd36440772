"""PPO's pieces against hand computations: Tülu 3's reward shaping (verifier score × 10 on the
last token, −10 in its place for a truncated answer, −β·k1 per token), GAE, masked whitening,
the clipped value loss, and the registered `value` loss on a packed micro-batch."""

import math

import numpy as np
import pytest
import torch

from engine.data.packing import collate
from engine.losses.ppo import (answer_rewards, clipped_value_loss, gae, masked_whiten,
                               token_rewards)
from engine.losses.registry import get_loss

F64 = torch.float64


def _t(rows):
    return torch.tensor(rows, dtype=F64)


def _close(got: torch.Tensor, rows) -> None:
    torch.testing.assert_close(got, _t(rows), rtol=1e-12, atol=1e-12)


def test_answer_rewards_scale_the_score_and_penalize_truncation():
    scores, truncated = _t([1, 0, 1, 0]), torch.tensor([False, False, True, True])
    _close(answer_rewards(scores, truncated), [10, 0, -10, -10])  # Tülu 3: ×10, −10 replaces
    _close(answer_rewards(scores, truncated, 2.0, None), [2, 0, 2, 0])  # no penalty: kept


def test_token_rewards_put_the_kl_on_every_token_and_the_reward_on_the_last():
    mask = _t([[1, 1, 1], [1, 1, 0]])
    logp, ref = _t([[-1, -2, -0.5], [-1, -1, 0]]), _t([[-1.5, -2, -1], [-0.5, -1, 0]])
    # k1 = logp − ref = [[0.5, 0, 0.5], [−0.5, 0, ·]]; −0.1 · k1 on answer tokens
    got = token_rewards(_t([10, -10]), logp, ref, mask, kl_coef=0.1)
    _close(got, [[-0.05, 0, -0.05 + 10], [0.05, -10, 0]])
    wrong = token_rewards(_t([0, 0]), logp, ref, mask, 0.0)
    assert wrong.abs().sum().item() == 0.0
    with pytest.raises(ValueError, match="answer 1 has no tokens"):
        token_rewards(_t([10, -10]), logp, ref, _t([[1, 1, 1], [0, 0, 0]]), 0.1)


def test_gae_by_hand():
    # γ = 1, λ = 0.95: δ = [0.1, 0.1, 0.3]; A_2 = 0.3, A_1 = 0.1 + 0.95·0.3, A_0 = 0.1 + 0.95·A_1
    advantages, returns = gae(_t([[0, 0, 1]]), _t([[0.5, 0.6, 0.7]]), _t([[1, 1, 1]]), 1.0, 0.95)
    _close(advantages, [[0.46575, 0.385, 0.3]])
    _close(returns, [[0.96575, 0.985, 1.0]])
    # γ = 0.9, λ = 0.5; the second answer is one token long: its padding is ignored
    rewards, values = _t([[1, 2, 0], [2, 9, 9]]), _t([[0.5, 1.0, 0], [1, 5, 5]])
    advantages, returns = gae(rewards, values, _t([[1, 1, 0], [1, 0, 0]]), 0.9, 0.5)
    # row 0: δ_1 = 2 − 1 = 1; δ_0 = 1 + 0.9·1 − 0.5 = 1.4, A_0 = 1.4 + 0.45·1
    _close(advantages, [[1.85, 1.0, 0], [1.0, 0, 0]])
    _close(returns, [[2.35, 2.0, 0], [2.0, 0, 0]])


def test_gae_with_lambda_and_gamma_one_is_the_return_minus_the_value():
    generator = torch.Generator().manual_seed(0)
    rewards, values = torch.randn(3, 6, generator=generator, dtype=F64), \
        torch.randn(3, 6, generator=generator, dtype=F64)
    mask = _t([[1] * 6, [1] * 4 + [0] * 2, [1] + [0] * 5])
    advantages, returns = gae(rewards, values, mask, 1.0, 1.0)
    to_go = torch.flip(torch.cumsum(torch.flip(rewards * mask, [1]), 1), [1]) * mask
    torch.testing.assert_close(advantages, to_go - values * mask)
    torch.testing.assert_close(returns, to_go)


def test_masked_whiten_over_answer_tokens_with_bessel():
    values, mask = _t([[1, 2, 3], [4, 100, -100]]), _t([[1, 1, 1], [1, 0, 0]])
    std = math.sqrt((2.25 + 0.25 + 0.25 + 2.25) / 3 + 1e-8)  # mean 2.5, n − 1 = 3
    expected = [[-1.5 / std, -0.5 / std, 0.5 / std], [1.5 / std, 0, 0]]
    _close(masked_whiten(values, mask), expected)
    with pytest.raises(ValueError, match="at least 2 values, got 1"):
        masked_whiten(values, _t([[1, 0, 0], [0, 0, 0]]))


@pytest.mark.parametrize("value, ret, loss, clipped, grad", [
    (1.5, 2.0, 0.32, True, 0.0),     # clamped to 1.2: (0.8)² is the larger; no gradient
    (1.1, 2.0, 0.405, False, -0.9),  # inside the band: ½(V − R)², gradient V − R
    (0.5, 0.0, 0.32, True, 0.0),     # clamped to 0.8
    (0.5, 2.0, 1.125, False, -1.5),  # outside the band, but the unclipped term is larger
])
def test_clipped_value_loss(value, ret, loss, clipped, grad):
    v = torch.tensor([value], dtype=F64, requires_grad=True)
    got, was_clipped = clipped_value_loss(v, _t([1.0]), _t([ret]), 0.2)
    assert got.item() == pytest.approx(loss) and was_clipped.item() is clipped
    got.sum().backward()
    assert v.grad.item() == pytest.approx(grad)


def test_registered_value_loss_reads_column_0_and_equals_its_formula(single_process):
    seqs = [np.array([1, 2, 3, 4]), np.array([5, 6, 1])]
    weights = [np.array([0.0, 0.25, 0.25]), np.array([0.25, 0.25])]  # prompt token untrained
    old = [np.array([0.0, 1.0, 1.0]), np.array([-1.0, 0.5])]
    returns = [np.array([0.0, 2.0, 1.1]), np.array([-1.5, 0.0])]
    mb = collate(seqs, weights, 0, 1, token_data={"old_values": old, "returns": returns})
    output = torch.randn(1, len(mb.tokens), 128, dtype=torch.float64)  # one row, padded
    values = torch.tensor([9.0, 1.5, 1.1, 9.0, -1.1, 0.5, 9.0], dtype=torch.float64)
    output[0, :7, 0] = values  # positions whose targets are answer tokens: 1, 2, 4, 5
    loss, _, metrics = get_loss("value", real_vocab_size=1, value_coef=0.1)(mb, output[0])
    # per answer token: ½·max((V − R)², (clip(V, V_old ± 0.2) − R)²)
    expected = 0.25 * (0.5 * 0.8 ** 2 + 0.5 * 0.0 + 0.5 * 0.4 ** 2 + 0.5 * 0.5 ** 2)
    assert loss.item() == pytest.approx(0.1 * expected)
    assert metrics["value_loss"].item() == pytest.approx(expected)
    assert metrics["value_clip_fraction"].item() == pytest.approx(0.25)  # the first only
    assert metrics["value_mean"].item() == pytest.approx(0.25 * (1.5 + 1.1 - 1.1 + 0.5))
