"""MATH answer verifiers of the Tülu 3 RLVR recipe: AI2's flex rule (candidate answers taken from
the response, the MATH benchmark's string normalization, a time-bounded sympy equivalence) and
the same question put to the maintained math-verify library. Both read only the answer's tail,
return 1.0 or 0.0, and raise nothing but BadGroundTruth.

Time bound: sympy and math-verify run under a real-time timer (`signal.setitimer`), which only
the main thread can receive. Called from any other thread no bound is possible, so there both
verifiers compare normalized strings only (no symbolic comparison, no math-verify)."""

from __future__ import annotations

import logging
import math
import re
import signal
import threading
import time

import sympy
from sympy.functions.combinatorial.factorials import CombinatorialFunction
from latex2sympy2_extended import latex2sympy
from math_verify import parse as math_verify_parse
from math_verify import verify as math_verify_verify

from engine.rewards.base import MAX_ANSWER_CHARS, BadGroundTruth, answer_tail

# Real-time budget of one flex score's symbolic work (all its candidates together), in seconds.
SYMBOLIC_SECONDS = 0.5
# Real-time budget of one math-verify score (parsing both sides and comparing), in seconds.
MATH_VERIFY_SECONDS = 0.4
# Strings longer than this, or holding a number with more digits, are compared as strings only.
MAX_SYMPY_CHARS = 300
MAX_SYMPY_DIGITS = 100
# Parsed answers whose exact arithmetic could build numbers of more digits are not compared.
MAX_EXACT_DIGITS = 100_000

MINERVA_OPENING = "Final Answer: The final answer is"
MINERVA_CLOSING = "I hope it is correct"

# Unit words dropped after a number (after the MATH benchmark's and Minerva's unit lists).
UNIT_WORDS = frozenset("""
    unit units square sq cubic cm mm km meter meters metre metres centimeter centimeters
    inch inches ft foot feet yard yards mile miles mph kg gram grams gm pound pounds lb lbs
    ounce ounces oz liter liters gallon gallons hour hours hr hrs minute minutes min mins
    second seconds sec day days week weeks month months year years degree degrees dollar
    dollars cent cents point points way ways integer integers digit digits edge edges
    student students meal meals people percent
""".split())
# Inside \text{...} single letters are units too ("5\text{ m}", "10\text{s}").
TEXT_ONLY_UNITS = frozenset("m s g h l".split())
# Bare unit words are looked for in this many last characters only.
UNITS_WINDOW = 80

_BOX_MACROS = ("\\boxed", "\\fbox")
_BRACE = re.compile(r"\\[{}]|[{}]")
_DOLLARS = re.compile(r"(?<!\\)\$+")
_LINE_OR_DOLLAR = re.compile(r"[$\n]")
_LEFT_RIGHT = re.compile(r"\\(?:left|right|displaystyle)(?![a-zA-Z])")
_THIN_SPACES = re.compile(r"(?<!\\)\\[!,;: ]")
_SMALL_FRAC = re.compile(r"\\[dt]frac(?![a-zA-Z])")
_DEGREES = re.compile(r"\^\s*(?:\{\s*\\circ\s*\}|\\circ)|°")
_TEXT_MACROS = re.compile(r"\\(?:mbox|textrm|textbf|textit|mathrm|mathbf)(?![a-zA-Z])")
_TEXT_AND = re.compile(r",?\s*\\text\s*\{\s*and\s*\}\s*")
_EXPONENT = r"(?:\s*\^\s*(?:\{\s*\d\s*\}|\d))?"
_TEXT_GROUP = re.compile(r"\\text\s*\{([^{}]*)\}(" + _EXPONENT + ")")
_ONLY_EXPONENT = re.compile(_EXPONENT + r"\s*\.?\s*")
_BARE_UNITS = re.compile(
    r"(?<=[0-9}])\s*(?:(?:" + "|".join(sorted(UNIT_WORDS, key=len, reverse=True)) + r")\b"
    + _EXPONENT + r"\s*)+\.?\s*$")
_SPACES = re.compile(r"(\\[a-zA-Z]+)\s+(?=[a-zA-Z])|\s+")
_BARE_SQRT = re.compile(r"(?<![\\a-zA-Z])sqrt")
_SQRT_PARENS = re.compile(r"\\sqrt\(([^()]*)\)")
_SQRT_SHORT = re.compile(r"\\sqrt([0-9a-zA-Z])")
_FRAC_ARGUMENT = r"(\{(?:[^{}]|\{[^{}]*\})*\}|[0-9a-zA-Z])"  # a group (one level nested) or a char
_FRAC_SHORT = re.compile(r"\\frac" + _FRAC_ARGUMENT + _FRAC_ARGUMENT)
_SLASH_FRACTION = re.compile(r"(-?)(\d+)/(\d+)")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_BARE_POINT = re.compile(r"(?<![0-9a-zA-Z}])\.(?=\d)")
_DECIMAL = re.compile(r"-?\d+\.\d*")
_WORD = re.compile(r"[A-Za-z]{2,}")
_LONG_NUMBER = re.compile(r"\d{%d}" % (MAX_SYMPY_DIGITS + 1))


# ---------------------------------------------------------------- candidates


def math_candidates(response: str) -> list[str]:
    """The response's candidate answers, unnormalized, by AI2's flex rule: the last \\boxed{...}
    (or \\fbox, or `\\boxed 5`) and the Minerva "Final Answer: The final answer is X. I hope it
    is correct." form; when neither is there, the text between the last two `$`; when that is
    missing too, the whole response. Only the response's tail is read."""
    text = answer_tail(response)
    found = [c for c in (last_boxed(text), _minerva_answer(text)) if c]
    if found:
        return found
    between_dollars = _between_last_dollars(text)
    if between_dollars:
        return [between_dollars]
    return [text.strip()] if text.strip() else []


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed or \\fbox: its balanced {...} group, or (`\\boxed 5`) the
    text after it up to the next `$` or line end; None when absent or never closed."""
    start = max(text.rfind(macro) for macro in _BOX_MACROS)
    if start < 0:
        return None
    macro = next(m for m in _BOX_MACROS if text.startswith(m, start))
    rest = text[start + len(macro):].lstrip()
    if rest.startswith("{"):
        return _braced_group(rest)
    return _LINE_OR_DOLLAR.split(rest, maxsplit=1)[0].strip() or None


def _braced_group(text: str) -> str | None:
    """Content of the {...} group that `text` opens (escaped \\{ \\} not counted); None when
    it is never closed."""
    depth = 0
    for brace in _BRACE.finditer(text):
        if brace.group() == "{":
            depth += 1
        elif brace.group() == "}":
            depth -= 1
            if depth == 0:
                return text[1:brace.start()]
    return None


def _minerva_answer(text: str) -> str | None:
    """X of the last "Final Answer: The final answer is X. I hope it is correct.", up to the
    closing sentence or, without one, to the line end."""
    start = text.rfind(MINERVA_OPENING)
    if start < 0:
        return None
    rest = text[start + len(MINERVA_OPENING):]
    end = rest.find(MINERVA_CLOSING)
    answer = rest[:end] if end >= 0 else rest.split("\n", 1)[0]
    return answer.strip() or None


def _between_last_dollars(text: str) -> str | None:
    """The text between the last two runs of unescaped `$` (so `$$x$$` gives x)."""
    runs = list(_DOLLARS.finditer(text))
    if len(runs) < 2:
        return None
    return text[runs[-2].end():runs[-1].start()].strip() or None


# ---------------------------------------------------------------- normalization


def normalize_math(answer: str) -> str:
    """The string normalization of the MATH benchmark's answer checker and of Minerva's
    final-answer rule, in our version: unwrap $...$ and \\boxed{...}; drop \\left \\right,
    thin spaces, degrees, percent and dollar signs, units and \\text{}; remove spaces; keep
    the right side of an assignment; expand \\frac12, \\sqrt2 and 1/2; canonical decimals; no
    trailing period."""
    text = _unwrap_math(answer)
    text = _drop_markup(text)
    text = _drop_units(text)
    text = _remove_spaces(text)
    text = _right_of_assignment(text)
    text = _expand_shorthand(text)
    return _canonical_number(text.rstrip("."))


def _unwrap_math(text: str) -> str:
    """The first $...$ segment when there is one, and the inside of a \\boxed{...} or \\fbox{...}
    that is the whole answer; escaped dollars (money) and stray `$` dropped."""
    text = text.replace("\\$", "").strip()
    runs = list(_DOLLARS.finditer(text))
    if len(runs) >= 2:
        text = text[runs[0].end():runs[1].start()]
    text = text.replace("$", "").strip()
    for macro in _BOX_MACROS:
        if text.startswith(macro):
            inside = _braced_group(text[len(macro):].lstrip())
            if inside is not None and _is_whole_group(text, macro, inside):
                return inside.strip()
    return text


def _is_whole_group(text: str, macro: str, inside: str) -> bool:
    """Whether `macro{inside}` spans all of `text`."""
    return len(text[len(macro):].lstrip()) == len(inside) + 2


def _drop_markup(text: str) -> str:
    """Remove what does not change the value: \\left \\right \\displaystyle, thin spaces,
    degree signs, percent signs, LaTeX thousands braces; \\dfrac and \\tfrac become \\frac and
    the other text macros \\text."""
    text = _LEFT_RIGHT.sub("", text)
    text = _THIN_SPACES.sub("", text)
    text = _SMALL_FRAC.sub(r"\\frac", text)
    text = _DEGREES.sub("", text)
    text = text.replace("\\%", "").replace("%", "").replace("{,}", "")
    return _TEXT_MACROS.sub(r"\\text", text)


def _drop_units(text: str) -> str:
    """\\text{and} becomes a comma; \\text{...} holding units (or, by the MATH benchmark's
    convention, starting with a space at the end of the answer) is dropped, any other
    \\text{...} unwrapped; unit words after the final number are dropped."""
    text = _TEXT_AND.sub(",", text)
    text = _TEXT_GROUP.sub(_text_group_replacement, text)
    units = _BARE_UNITS.search(text, max(0, len(text) - UNITS_WINDOW))
    return text[:units.start()] if units else text


def _text_group_replacement(group: re.Match) -> str:
    """What one \\text{...} (with any ^2 after it) becomes, see _drop_units."""
    content, exponent = group.group(1), group.group(2)
    if _is_unit_phrase(content):
        return ""
    trailing = _ONLY_EXPONENT.fullmatch(group.string, group.end()) is not None
    if content[:1].isspace() and group.start() > 0 and trailing:
        return ""
    return content + exponent


def _is_unit_phrase(content: str) -> bool:
    """Whether a \\text{...} content is made of unit words only ("cm", " square feet")."""
    words = content.replace("^2", " ").replace("^3", " ").split()
    return bool(words) and all(w in UNIT_WORDS or w in TEXT_ONLY_UNITS for w in words)


def _remove_spaces(text: str) -> str:
    """All whitespace goes, but for one space between a command and a letter (`\\sin x`)."""
    return _SPACES.sub(lambda space: space.group(1) + " " if space.group(1) else "", text)


def _right_of_assignment(text: str) -> str:
    """`x=3` -> `3`, `f(x)=x^2` -> `x^2`: the part after the last `=`, unless a comma comes
    before it (`x=1,y=2` is kept whole)."""
    head, equals, tail = text.rpartition("=")
    if equals and tail and "," not in head:
        return tail
    return text


def _expand_shorthand(text: str) -> str:
    """`sqrt(2)` and `\\sqrt2` -> `\\sqrt{2}`, `\\frac12` -> `\\frac{1}{2}`, and a whole answer
    `1/2` -> `\\frac{1}{2}`."""
    text = _BARE_SQRT.sub(r"\\sqrt", text)
    text = _SQRT_PARENS.sub(r"\\sqrt{\1}", text)
    text = _SQRT_SHORT.sub(r"\\sqrt{\1}", text)
    text = _FRAC_SHORT.sub(lambda m: "\\frac" + _braced(m.group(1)) + _braced(m.group(2)), text)
    whole_fraction = _SLASH_FRACTION.fullmatch(text)
    return whole_fraction.expand(r"\1\\frac{\2}{\3}") if whole_fraction else text


def _braced(argument: str) -> str:
    return argument if argument.startswith("{") else "{" + argument + "}"


def _canonical_number(text: str) -> str:
    """`1,000` -> `1000`, `.5` -> `0.5`, `2.50` -> `2.5`, `3.0` -> `3`, and (the MATH benchmark's
    rule) `0.5` -> `\\frac{1}{2}`."""
    if _THOUSANDS.fullmatch(text):
        text = text.replace(",", "")
    text = _BARE_POINT.sub("0.", text)
    if _DECIMAL.fullmatch(text):
        text = text.rstrip("0").rstrip(".")
    return "\\frac{1}{2}" if text == "0.5" else text


# ---------------------------------------------------------------- time bound


class _OutOfTime(BaseException):
    """Raised by the timer inside bounded work; a BaseException so that the libraries'
    `except Exception` blocks let it through."""


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class _Timer:
    """A one-shot ITIMER_REAL that raises _OutOfTime; stop() restores the SIGALRM handler and
    any outer timer found at start (with its remaining time), and may be called twice."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.running = False

    def start(self) -> None:
        self.started = time.monotonic()
        self.outer_handler = signal.signal(signal.SIGALRM, _raise_out_of_time)
        self.running = True
        self.outer_delay, self.outer_interval = signal.setitimer(
            signal.ITIMER_REAL, self.seconds)
        if 0 < self.outer_delay < self.seconds:
            signal.setitimer(signal.ITIMER_REAL, self.outer_delay)

    def stop(self) -> None:
        if not self.running:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        self.running = False
        handler = self.outer_handler
        signal.signal(signal.SIGALRM, signal.SIG_DFL if handler is None else handler)
        if self.outer_delay > 0:
            left = self.outer_delay - (time.monotonic() - self.started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-6), self.outer_interval)


def _raise_out_of_time(signum, frame):
    raise _OutOfTime


def _within(seconds: float, work, fallback):
    """work() if it returns within `seconds` of real time, else `fallback` (also when it raises
    an Exception). Off the main thread the timer cannot reach it: `fallback`, work not run."""
    if not _on_main_thread():
        return fallback
    timer = _Timer(seconds)
    try:
        try:
            timer.start()
            return work()
        finally:
            timer.stop()
    except _OutOfTime:
        timer.stop()  # when the timer fired inside the first stop()
        return fallback
    except Exception:
        return fallback


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
    return _within(SYMBOLIC_SECONDS, lambda: _any_difference_zero(answers, truth), False)


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
    if not _on_main_thread():
        return 1.0 if truth in _normalized_candidates(response) else 0.0
    agree = _within(MATH_VERIFY_SECONDS,
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
