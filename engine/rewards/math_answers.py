"""MATH answer verifiers of the Tülu 3 RLVR recipe: AI2's flex rule (candidate answers taken from
the response, the MATH benchmark's string normalization, a time-bounded sympy equivalence) and
the same question put to the maintained math-verify library. Both read only the answer's tail,
return 1.0 or 0.0, and raise nothing but BadGroundTruth.

Time bound: sympy and math-verify run under a real-time timer (`engine.rewards.time_limit`),
which only the main thread can receive. Called from any other thread no bound is possible, so
there both verifiers compare normalized strings only (no symbolic comparison, no math-verify).
The candidates and their normalization are `engine.rewards.math_normalize`'s."""

from __future__ import annotations

import logging
import math
import re

import sympy
from sympy.functions.combinatorial.factorials import CombinatorialFunction
from latex2sympy2_extended import latex2sympy
from math_verify import parse as math_verify_parse
from math_verify import verify as math_verify_verify

from engine.rewards.base import MAX_ANSWER_CHARS, BadGroundTruth, answer_tail
from engine.rewards.math_normalize import math_candidates, normalize_math
from engine.rewards.time_limit import on_main_thread, within

# Real-time budget of one flex score's symbolic work (all its candidates together), in seconds.
SYMBOLIC_SECONDS = 0.5
# Real-time budget of one math-verify score (parsing both sides and comparing), in seconds.
MATH_VERIFY_SECONDS = 0.4
# Strings longer than this, or holding a number with more digits, are compared as strings only.
MAX_SYMPY_CHARS = 300
MAX_SYMPY_DIGITS = 100
# Parsed answers whose exact arithmetic could build numbers of more digits are not compared.
MAX_EXACT_DIGITS = 100_000
_WORD = re.compile(r"[A-Za-z]{2,}")
_LONG_NUMBER = re.compile(r"\d{%d}" % (MAX_SYMPY_DIGITS + 1))


# ---------------------------------------------------------------- size bound


def _is_tame(parsed) -> bool:
    """Whether exact arithmetic on a parsed answer stays below MAX_EXACT_DIGITS digits. The
    timer cannot interrupt one huge integer multiplication, so a power tower like 9^{9^{9}} or
    the factorial of 10^8 must never reach sympy's simplify or math-verify's verify."""
    return _exact_digits(parsed) <= MAX_EXACT_DIGITS


def _exact_digits(node) -> float:
    """A rough bound on the decimal digits of the numbers that evaluating `node` exactly can
    build: powers multiply by their exponent, everything else adds up; infinite where no bound
    is known (a numeric exponent or factorial argument that is not a plain number). Anything
    not sympy (math-verify's answer strings) counts 0."""
    if not isinstance(node, sympy.Basic):
        return 0.0
    if node.is_Rational:
        return _decimal_digits(node.p) + _decimal_digits(node.q)
    if node.is_Pow:
        base, exponent = node.args
        if exponent.is_Number:
            return float(abs(exponent)) * max(1.0, _exact_digits(base))
        if not exponent.free_symbols:
            return math.inf
    if isinstance(node, CombinatorialFunction) and not node.args[0].free_symbols:
        count = node.args[0]
        return float(abs(count)) * _decimal_digits(count.p) if count.is_Integer else math.inf
    return sum(_exact_digits(arg) for arg in node.args)


def _decimal_digits(integer: int) -> float:
    return abs(int(integer)).bit_length() * math.log10(2) + 1


# ---------------------------------------------------------------- flex


def score_math_flex(response: str, ground_truth: str) -> float:
    """AI2's flex rule: 1.0 if any candidate equals the ground truth after normalization, or
    their difference simplifies to 0 with sympy within SYMBOLIC_SECONDS; else 0.0."""
    truth = _normalized_truth(ground_truth)
    answers = _normalized_candidates(response)
    if truth in answers or _any_symbolically_equal(answers, truth):
        return 1.0
    return 0.0


def _normalized_truth(ground_truth) -> str:
    """The ground truth normalized; BadGroundTruth for one that is not a non-empty string of
    at most MAX_ANSWER_CHARS characters, or that normalizes to nothing."""
    if not isinstance(ground_truth, str) or not ground_truth.strip():
        raise BadGroundTruth(f"MATH ground truth must be a non-empty string, got {ground_truth!r}")
    if len(ground_truth) > MAX_ANSWER_CHARS:
        raise BadGroundTruth(
            f"MATH ground truth has {len(ground_truth)} characters, more than {MAX_ANSWER_CHARS}")
    truth = normalize_math(ground_truth)
    if not truth:
        raise BadGroundTruth(f"MATH ground truth {ground_truth!r} normalizes to nothing")
    return truth


def _normalized_candidates(response) -> list[str]:
    if not isinstance(response, str):
        return []
    return [a for a in map(normalize_math, math_candidates(response)) if a]


def _any_symbolically_equal(answers: list[str], truth: str) -> bool:
    """Whether sympy finds any answer equal to the truth, all within one SYMBOLIC_SECONDS."""
    answers = [a for a in answers if _fits_sympy(a)]
    if not answers or not _fits_sympy(truth):
        return False
    return within(SYMBOLIC_SECONDS, lambda: _any_difference_zero(answers, truth), False)


def _fits_sympy(text: str) -> bool:
    """Short, no huge number, and not a bare word (sympy reads "Devon" as a product of
    letters, so its anagrams would match)."""
    return (len(text) <= MAX_SYMPY_CHARS and not _LONG_NUMBER.search(text)
            and not _WORD.fullmatch(text))


def _any_difference_zero(answers: list[str], truth: str) -> bool:
    expected = _to_expression(truth)
    return expected is not None and any(
        _difference_is_zero(_to_expression(a), expected) for a in answers)


def _to_expression(latex: str) -> sympy.Expr | None:
    """The LaTeX as a sympy expression; None when it does not parse, is not an expression
    (equations, sets, intervals, tuples and matrices are compared as strings), or is too big
    for exact arithmetic (see _is_tame)."""
    try:
        parsed = latex2sympy(latex, normalization_config=None)
    except Exception:
        return None
    return parsed if isinstance(parsed, sympy.Expr) and _is_tame(parsed) else None


def _difference_is_zero(answer: sympy.Expr | None, expected: sympy.Expr) -> bool:
    if answer is None:
        return False
    try:
        return bool(sympy.simplify(answer - expected) == 0)
    except Exception:
        return False


# ---------------------------------------------------------------- math-verify


def score_math_verify(response: str, ground_truth: str) -> float:
    """math-verify's answer: the ground truth parsed as `\\boxed{truth}`, the response's tail
    parsed by its default extraction, then verify(); 0.0 when either side does not parse or it
    runs past MATH_VERIFY_SECONDS. Its own timeouts are switched off (they share the one
    ITIMER_REAL, and count whole seconds); ours bounds it. Off the main thread: the flex rule's
    normalized string comparison."""
    truth = _normalized_truth(ground_truth)
    if not isinstance(response, str):
        return 0.0
    if not on_main_thread():
        return 1.0 if truth in _normalized_candidates(response) else 0.0
    agree = within(MATH_VERIFY_SECONDS,
                    lambda: _math_verify_agrees(answer_tail(response), ground_truth), False)
    return 1.0 if agree else 0.0


def _math_verify_agrees(answer: str, ground_truth: str) -> bool:
    gold = _tame_parse("\\boxed{" + ground_truth + "}")
    predicted = _tame_parse(answer) if gold else []
    return bool(predicted) and math_verify_verify(gold, predicted, timeout_seconds=None)


def _tame_parse(text: str) -> list:
    """math-verify's parse of `text`, empty when any parsed answer is not tame."""
    parsed = math_verify_parse(text, parsing_timeout=None)
    return parsed if all(_is_tame(p) for p in parsed) else []


def _warm_up() -> None:
    """sympy, the LaTeX parser and math-verify load much of what they need on first use (about
    a second): done once at import, on fixed small inputs, so that no score's time budget pays
    for it. math-verify's one-time warning that its own timeouts are off is not shown (ours
    bound it)."""
    library_log = logging.getLogger("math_verify")
    level = library_log.level
    library_log.setLevel(logging.ERROR)
    try:
        _any_difference_zero(["2x+2"], "2(x+1)")
        _math_verify_agrees("$\\frac{1}{2}$", "0.5")
    finally:
        library_log.setLevel(level)


_warm_up()
