"""Which verifier scores a row of Tülu's RLVR data: chosen by its `dataset` column (gsm8k, math,
ifeval), the MATH rule chosen per recipe (`flex`: Tülu's; `math_verify`: the math-verify
library), applied to the answer text — what follows the last generation prompt.

    score("gsm8k", response, "72")                    # 1.0 or 0.0
    score("math", response, "\\frac{1}{2}", math_rule="math_verify")
"""

from __future__ import annotations

from typing import Callable

from engine.config import MATH_RULES
from engine.errors import DataError

DATASETS = ("gsm8k", "math", "ifeval")
TULU_GENERATION_PROMPT = "<|assistant|>\n"


def verifier(dataset: str, math_rule: str = "flex") -> Callable[[str, object], float]:
    if math_rule not in MATH_RULES:
        raise DataError(f"math rule {math_rule!r} is not one of {', '.join(MATH_RULES)}")
    if dataset == "gsm8k":
        from engine.rewards.gsm8k import score_gsm8k
        return score_gsm8k
    if dataset == "math":
        from engine.rewards import math_answers
        return math_answers.score_math_flex if math_rule == "flex" else \
            math_answers.score_math_verify
    if dataset == "ifeval":
        from engine.rewards.ifeval import score_ifeval
        return score_ifeval
    raise DataError(f"dataset {dataset!r} has no verifier (expected one of "
                    f"{', '.join(DATASETS)})")


def answer_text(response: str, generation_prompt: str | None = TULU_GENERATION_PROMPT) -> str:
    """What follows the last generation prompt (all of it when there is none)."""
    if generation_prompt and generation_prompt in response:
        return response.rsplit(generation_prompt, 1)[1]
    return response


def score(dataset: str, response: str, ground_truth, math_rule: str = "flex",
          generation_prompt: str | None = TULU_GENERATION_PROMPT) -> float:
    if not isinstance(response, str):
        raise DataError(f"a response must be a string, got {type(response).__name__}")
    return verifier(dataset, math_rule)(answer_text(response, generation_prompt), ground_truth)
