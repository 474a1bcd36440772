"""GSM8K's verifier, Tülu's rule: thousands separators removed, the last number of the answer
compared with the ground truth as a string (so `72.0` is not `72`, as in Tülu's reward)."""

from __future__ import annotations

import re

from engine.rewards.base import BadGroundTruth, answer_tail

_SEPARATOR = re.compile(r"(?<=\d),(?=\d)")
_NUMBER = re.compile(r"[-+]?(?:\d*\.\d+|\d+)")


def last_number(text: str) -> str | None:
    numbers = _NUMBER.findall(_SEPARATOR.sub("", answer_tail(text)))
    return numbers[-1] if numbers else None


def score_gsm8k(response: str, ground_truth: str) -> float:
    if not isinstance(ground_truth, str) or not ground_truth.strip():
        raise BadGroundTruth(f"a gsm8k ground truth must be a non-empty string, got "
                             f"{ground_truth!r:.80}")
    return float(last_number(response) == _SEPARATOR.sub("", ground_truth.strip()))
