"""The DPO family against its formulas on hand-made log-probs, the per-sequence sums of a
packed batch, and the registered losses on a packed micro-batch of pairs."""

import math

import numpy as np
import pytest
import torch

from engine.data.packing import collate
from engine.config import PREFERENCE_LOSSES
from engine.losses.preference import PairLogprobs, preference_loss, sequence_sums
from engine.losses.registry import get_loss

PC, PR, RC, RR, NC, NR = -12.0, -20.0, -14.0, -19.0, 4.0, 5.0  # one hand-made pair


def _pair(pc=PC, pr=PR, rc=RC, rr=RR, nc=NC, nr=NR):
    def t(x):
        return None if x is None else torch.tensor([x], dtype=torch.float64)

    return PairLogprobs(t(pc), t(pr), t(rc), t(rr), t(nc), t(nr))


def _logsig(x):
    return -math.log1p(math.exp(-x))


@pytest.mark.parametrize("kind, beta, gamma, expected", [
    ("dpo", 0.1, 0.0, -_logsig(0.1 * ((PC - RC) - (PR - RR)))),
    ("dpo_norm", 5.0, 0.0, -_logsig(5.0 * ((PC / NC - RC / NC) - (PR / NR - RR / NR)))),
    ("ipo", 0.5, 0.0, ((PC / NC - RC / NC) - (PR / NR - RR / NR) - 1 / (2 * 0.5)) ** 2),
    ("simpo", 2.0, 0.5, -_logsig(2.0 * (PC / NC - PR / NR) - 0.5)),
    ("hinge", 0.1, 0.0, max(0.0, 1 - 0.1 * ((PC - RC) - (PR - RR)))),
])
def test_losses_equal_their_formulas(kind, beta, gamma, expected):
    out = preference_loss(kind, _pair(), beta, gamma)
    assert out.loss.item() == pytest.approx(expected, abs=1e-6)


def test_rewards_label_smoothing_and_nll_term():
    h = 0.1 * ((PC - RC) - (PR - RR))
    out = preference_loss("dpo", _pair(), 0.1, label_smoothing=0.2, nll_alpha=0.5)
    expected = -0.8 * _logsig(h) - 0.2 * _logsig(-h) + 0.5 * (-PC / NC)
    assert out.loss.item() == pytest.approx(expected, abs=1e-6)
    assert out.reward_chosen.item() == pytest.approx(0.1 * (PC - RC))
    assert out.reward_rejected.item() == pytest.approx(0.1 * (PR - RR))
    norm = preference_loss("dpo_norm", _pair(), 5.0)
    assert norm.reward_chosen.item() == pytest.approx(5.0 * (PC - RC) / NC)
    simpo = preference_loss("simpo", _pair(rc=None, rr=None), 2.0)
    assert simpo.reward_rejected.item() == pytest.approx(2.0 * PR / NR)


def test_policy_equal_to_reference():
    same = _pair(rc=PC, rr=PR)
    for kind in ("dpo", "dpo_norm"):
        assert preference_loss(kind, same, 5.0).loss.item() == pytest.approx(math.log(2), abs=1e-9)
    assert preference_loss("ipo", same, 5.0).loss.item() == pytest.approx((1 / 10) ** 2)
    assert preference_loss("hinge", same, 5.0).loss.item() == pytest.approx(1.0)


def test_sequence_sums_follow_the_packed_segments():
    values = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    weights = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0])  # the last token: padding
    sums, counts = sequence_sums(values, weights, torch.tensor([0, 3, 6, 7]), num_sequences=2)
    assert sums.tolist() == [3.0, 11.0] and counts.tolist() == [2.0, 2.0]


@pytest.mark.parametrize("kind", PREFERENCE_LOSSES)
def test_registered_loss_on_packed_pairs(kind, single_process):
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 6, size=n) for n in (5, 4, 6, 3)]  # (chosen, rejected) × 2
    masks = [np.array([0, 1, 1, 1.0]), np.array([0, 0, 1.0]), np.array([0, 1, 1, 1, 1.0]),
             np.array([1, 1.0])]
    reference = [-3.0, -2.5, -4.0, -1.0]
    mb = collate(seqs, masks, pad_id=0, pad_multiple=4,
                 sequence_data={"reference_logps": reference, "item_weights": [0.25] * 4})
    logits = torch.randn(1, len(mb.tokens), 8, dtype=torch.float32, requires_grad=True)
    loss = get_loss(kind, real_vocab_size=6, beta=0.5, gamma=0.1)  # 4 pairs in the batch
    value, count, metrics = loss(mb, logits[0] * 1.0)
    logps = torch.log_softmax(logits.detach()[0, :, :6].double(), -1)
    bounds = mb.cu_seqlens.tolist()
    sums, counts = [], []
    for i, mask in enumerate(masks):
        start = bounds[i]
        sums.append(sum(logps[start + k, seqs[i][k + 1]].item() * m for k, m in enumerate(mask)))
        counts.append(float(mask.sum()))
    def t(values, first):  # the chosen (first=0) or rejected (first=1) side of both pairs
        return torch.tensor(values[first::2], dtype=torch.float64)

    pairs = PairLogprobs(t(sums, 0), t(sums, 1), t(reference, 0), t(reference, 1),
                         t(counts, 0), t(counts, 1))
    expected = preference_loss(kind, pairs, 0.5, 0.1)
    assert value.item() == pytest.approx(expected.loss.sum().item() / 4, abs=1e-6)
    margin = (expected.reward_chosen - expected.reward_rejected).sum().item() / 4
    assert metrics["rewards/margin"].item() == pytest.approx(margin, abs=1e-5)
    assert metrics["logps/chosen"].item() == pytest.approx((sums[0] + sums[2]) / 4, abs=1e-5)
    assert count.item() == sum(len(s) for s in seqs)
    value.backward()
    assert logits.grad.abs().sum() > 0 and torch.all(logits.grad[0, :, 6:] == 0)
