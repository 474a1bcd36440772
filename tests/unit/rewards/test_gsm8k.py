"""GSM8K verifier cases written from Tülu's rule: the last number, separators removed, compared
as a string."""

import time

import pytest

from engine.rewards.base import BadGroundTruth
from engine.rewards.gsm8k import score_gsm8k


@pytest.mark.parametrize("response, truth, score", [
    ("She pays 3 * 24 = 72 dollars. The answer is 72", "72", 1.0),
    ("So the total is 1,250 apples.", "1250", 1.0),
    ("So the total is 1,250,000.", "1,250,000", 1.0),     # separators go on both sides
    ("The answer is -5.", "-5", 1.0),
    ("It costs 0.5 dollars", "0.5", 1.0),
    ("72 was my first guess, but it is 70.", "72", 0.0),   # the last number counts
    ("The answer is 72.0", "72", 0.0),                     # strings, not values (Tülu)
    ("I do not know.", "72", 0.0),
    ("", "72", 0.0),
    ("12, 13", "13", 1.0),                                 # a comma and a space is a list
])
def test_last_number_rule(response, truth, score):
    assert score_gsm8k(response, truth) == score


@pytest.mark.parametrize("truth", ["", "  ", None, 72])
def test_bad_ground_truth_is_one_clear_error(truth):
    with pytest.raises(BadGroundTruth, match="a gsm8k ground truth must be a non-empty string"):
        score_gsm8k("72", truth)


@pytest.mark.parametrize("response", ["9" * 50_000, "1," * 500_000, "\ud800 7 \udfff",
                                      "(" * 100_000 + "5"])
def test_hostile_answers_are_fast(response):
    start = time.perf_counter()
    assert score_gsm8k(response, "5") in (0.0, 1.0)
    assert time.perf_counter() - start < 1.0
