"""The reward pool: scores in order, and no answer can hang it, crash it or exhaust its memory."""

import time

from engine.rewards.pool import RewardPool
from tests.unit.rewards import misbehaving


def test_misbehaving_answers_score_zero_and_the_pool_goes_on():
    rows = [("x", "a", "a"), ("x", "hang", "a"), ("x", "b", "b"), ("x", "crash", "a"),
            ("x", "c", "d"), ("x", "hog", "a"), ("x", "bug", "a"), ("x", "e", None),
            ("x", "f", "f")]
    with RewardPool(workers=2, timeout_s=1.0, memory_gib=1.0,
                    score_fn=misbehaving.score) as pool:
        start = time.perf_counter()
        result = pool.score(rows)
        assert time.perf_counter() - start < 20
        assert result.scores == [1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
        assert dict(result.counts) == {"timeout": 1, "crashed": 1, "memory": 1, "error": 1,
                                       "bad_input": 1}
        assert result.errors[1] == "timeout: no score within 1s"
        assert result.errors[7] == "bad_input: ground truth is null"
        assert result.errors[6] == "error: KeyError: 'oops'"
        again = pool.score([("x", str(i), str(i % 2)) for i in range(20)])
        assert again.scores == [float(i < 2 and i % 2 == i) for i in range(20)]
        assert not again.errors


def test_real_verifiers_by_dataset():
    rows = [("gsm8k", "<|user|>\nWhat is 2+2?\n<|assistant|>\nIt is 4", "4"),
            ("gsm8k", "It is 5", "4"), ("gsm8k", "4", ""), ("sudoku", "4", "4")]
    with RewardPool(workers=1) as pool:
        result = pool.score(rows)
    assert result.scores == [1.0, 0.0, 0.0, 0.0]
    assert result.errors[2].startswith("bad_input: a gsm8k ground truth must be")
    assert result.errors[3] == "bad_input: dataset 'sudoku' has no verifier (expected " \
                               "one of gsm8k, math, ifeval)"
