"""How an RLVR step's updates make its metrics: the vLLM–trainer gap's weights give the plain
mean over the rollout batch's answer tokens once averaged over the step's optimizer steps (each
summing over one mini-batch), and the maxima are the largest of the updates', the rest their
mean."""

import numpy as np
import pytest

from engine.train.rlvr_loop import _mean_result, gap_weights
from engine.train.step import StepResult


@pytest.mark.parametrize("epochs, mini_batches", [(1, 1), (1, 2), (2, 2), (3, 1)])
def test_gap_weights_average_to_the_mean_over_answer_tokens(epochs, mini_batches):
    rng = np.random.default_rng(0)
    masks = [np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1]), np.array([0, 0, 0, 1, 1, 1, 1]),
             np.array([0, 1])]
    gaps = [rng.random(len(m)) for m in masks]
    weights = gap_weights(masks, mini_batches)
    assert all((w[m == 0] == 0).all() for w, m in zip(weights, masks))  # prompts: no weight
    per_update = []
    for epoch in range(epochs):
        order = rng.permutation(len(masks))  # each epoch's mini-batches: another split
        for part in np.array_split(order, mini_batches):
            per_update.append(sum(float((weights[i] * gaps[i]).sum()) for i in part))
    answers = np.concatenate([g[m > 0] for g, m in zip(gaps, masks)])
    assert np.mean(per_update) == pytest.approx(answers.mean(), rel=1e-12)


def test_updates_average_their_metrics_but_keep_the_largest_maximum():
    results = [StepResult({"loss": 1.0, "logprob_gap_max": 0.5}, 2.0, 1e-4, False),
               StepResult({"loss": 3.0, "logprob_gap_max": 0.25}, 4.0, 5e-5, True)]
    joined = _mean_result(results, maxima=("logprob_gap_max",))
    assert joined.metrics == {"loss": 2.0, "logprob_gap_max": 0.5}
    assert (joined.grad_norm, joined.lr, joined.skipped) == (3.0, 1e-4, True)
    assert _mean_result(results).metrics["logprob_gap_max"] == 0.375  # no maxima declared
