"""Loss reductions against hand computations; weighted cross-entropy against its formula."""

import math

import numpy as np
import pytest
import torch

from engine.data.packing import collate
from engine.errors import ConfigError
from engine.losses.cross_entropy import label_logprobs, weighted_cross_entropy
from engine.losses.reduction import reduction_weights
from engine.losses.registry import get_loss


def test_reductions_match_hand_computation():
    masks = [np.array([1, 1, 0, 1]), np.array([0, 0]), np.array([1, 1])]
    losses = [np.array([1.0, 2.0, 100.0, 3.0]), np.array([50.0, 60.0]), np.array([4.0, 6.0])]

    def total(reduction):
        return sum(float((w * l).sum()) for w, l in zip(reduction_weights(masks, reduction),
                                                          losses))

    assert total("sum") == pytest.approx(1 + 2 + 3 + 4 + 6)
    assert total("token_mean") == pytest.approx((1 + 2 + 3 + 4 + 6) / 5)
    # sequences with a trainable token: (1+2+3)/3 and (4+6)/2, averaged
    assert total("sequence_mean") == pytest.approx(((1 + 2 + 3) / 3 + (4 + 6) / 2) / 2)
    with pytest.raises(ValueError, match="unknown loss reduction"):
        reduction_weights(masks, "mean")


def test_reduction_is_split_invariant():
    rng = np.random.default_rng(1)
    masks = [rng.integers(0, 2, size=int(n)) for n in rng.integers(1, 30, size=12)]
    losses = [rng.random(len(m)) for m in masks]
    weights = reduction_weights(masks, "token_mean")
    whole = sum(float((w * l).sum()) for w, l in zip(weights, losses))
    parts = [sum(float((w * l).sum()) for w, l in zip(weights[a:b], losses[a:b]))
             for a, b in ((0, 5), (5, 6), (6, 12))]
    assert sum(parts) == pytest.approx(whole)


def test_weighted_cross_entropy_matches_formula_and_hides_padded_vocab(single_process):
    torch.manual_seed(0)
    real, padded = 5, 8
    logits = torch.randn(4, padded, dtype=torch.float64)
    logits[:, real:] = 50.0  # padded columns must not take probability mass
    labels = torch.tensor([0, 4, -100, 2])
    weights = torch.tensor([0.5, 1.0, 0.0, 2.0], dtype=torch.float64)
    leaf = logits.clone().requires_grad_()
    got = weighted_cross_entropy(leaf * 1.0, labels, weights, real)
    expected = 0.0
    for row, label, w in zip(logits[:, :real], labels.tolist(), weights.tolist()):
        if label >= 0:
            expected += w * (math.log(row.exp().sum().item()) - row[label].item())
    assert got.item() == pytest.approx(expected, rel=1e-6)
    got.backward()
    assert torch.all(leaf.grad[:, real:] == 0)
    probs = torch.softmax(logits[0, :real], -1)
    assert torch.allclose(leaf.grad[0, :real], 0.5 * (probs - torch.eye(real)[0].double()))


def test_label_logprobs_match_log_softmax_and_skip_missing_labels(single_process):
    torch.manual_seed(1)
    real, padded = 6, 8
    logits = torch.randn(5, padded)
    labels = torch.tensor([3, -100, 0, 5, 1])
    got = label_logprobs(logits.clone(), labels, real)
    expected = torch.log_softmax(logits[:, :real], -1)
    for i, label in enumerate(labels.tolist()):
        want = 0.0 if label < 0 else expected[i, label].item()
        assert got[i].item() == pytest.approx(want, abs=1e-6)


def test_registered_cross_entropy_is_the_weighted_formula(single_process):
    loss = get_loss("cross_entropy", real_vocab_size=6)
    assert loss.metrics == ("loss",)
    seqs = [np.array([1, 2, 3]), np.array([4, 5])]
    mb = collate(seqs, [np.array([0.5, 1.0]), np.array([2.0])], pad_id=0, pad_multiple=1)
    torch.manual_seed(2)
    logits = torch.randn(1, 5, 8)
    value, count, metrics = loss(mb, logits[0].clone())
    expected = weighted_cross_entropy(logits[0].clone(), mb.labels, mb.loss_weights, 6)
    assert value.item() == pytest.approx(expected.item()) and count.item() == 5
    assert metrics["loss"].item() == value.item()
    with pytest.raises(ConfigError, match="unknown loss 'dpo_norm2'"):
        get_loss("dpo_norm2")

