"""Loss reductions against hand computations; weighted cross-entropy against its formula."""

import math

import numpy as np
import pytest
import torch

from engine.losses import reduction_weights, weighted_cross_entropy


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
