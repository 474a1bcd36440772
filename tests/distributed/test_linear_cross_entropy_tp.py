"""The fused language-model head with its vocabulary split over TP=2 ranks (gloo; the second
slice holds the padding) gives the log-probs, entropies and loss of the full-logits fp64
reference, its hidden-state gradients sum over the ranks to the reference's, and each rank's
weight gradient is the reference's rows (fp32)."""

from tests.util import script_json


def test_vocabulary_parallel_head_matches_the_reference():
    result = script_json(["tests.scripts.linear_cross_entropy_tp"], 2, '{"tp"')
    assert result["tp"] == 2
    assert len(result["errors"]) == 7
    assert max(result["errors"].values()) <= 1e-5, result["errors"]
