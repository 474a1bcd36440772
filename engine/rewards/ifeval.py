"""Instruction-following (IF) verifiers of Tülu 3's RLVR data: the 25 IFEval-style constraint
checks of AI2's definition, and the reward that reads an `ifeval` row's ground truth — a JSON
object naming `func_name` plus that check's keyword arguments (absent or null ones dropped).

    score_ifeval("hello world", '{"func_name": "validate_lowercase"}')          # 1.0
    score_ifeval(text, {"func_name": "validate_word_constraint", "N": 50, "quantifier": "around"})

Every check reads the whole response in linear time (no regular expression here can backtrack
far), so no answer can make one slow; a ground truth no check can use raises `BadGroundTruth`.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import json
import re
import reprlib
from typing import Callable

from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
from langdetect.lang_detect_exception import LangDetectException

from engine.rewards.base import BadGroundTruth

# Counts in a ground truth are bounded so that every comparison (and the "around" tolerance,
# computed in floating point as in AI2's definition) stays exact.
MAX_COUNT = 10**9
# Language detection reads the response's first this many characters: plenty to tell the
# language, and it keeps detection fast on any answer.
LANGUAGE_SAMPLE_CHARS = 5_000

_WORD = re.compile(r"\w+")
_SENTENCE_BREAK = re.compile(r"(?<=[.?!])\s+")
_DIVIDER_LINE = re.compile(r"^[^\S\n]*\* \* \*[^\S\n]*$", re.MULTILINE)
_BLANK_LINES = re.compile(r"\n\s*\n")
_PLACEHOLDER = re.compile(r"\[[^\[\]\n]*\]")
_ITALIC = re.compile(r"\*([^\n*]*)\*")
_BOLD = re.compile(r"\*\*([^\n*]*)\*\*")
_TWO_RESPONSES_SEPARATOR = "******"

_COMPARISONS: dict[str, Callable[[int, int, int], bool]] = {
    "at least": lambda count, n, tolerance: count >= n,
    "at most": lambda count, n, tolerance: count <= n,
    "around": lambda count, n, tolerance: abs(count - n) <= tolerance,
}


def _meets(count: int, n: int, quantifier: str, tolerance: int) -> bool:
    return _COMPARISONS[quantifier](count, n, tolerance)


def _ten_percent(n: int) -> int:
    """The "around" tolerance of word and capital-word counts: max(round(0.1·N), 1)."""
    return max(round(n * 0.1), 1)


@functools.cache
def _language_detectors() -> DetectorFactory:
    """langdetect's profiles, loaded once, seeded so that a text always gets the same code."""
    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.set_seed(0)
    return factory


def _bad(problem: str) -> BadGroundTruth:
    return BadGroundTruth(f"ifeval ground truth: {problem}")


# The checks: check(text, **arguments) -> bool.

def verify_keywords(text: str, keyword_list: list[str]) -> bool:
    """Every keyword occurs (case-insensitive substring)."""
    lowered = text.lower()
    return all(keyword.lower() in lowered for keyword in keyword_list)


def verify_keyword_frequency(text: str, word: str, N: int) -> bool:
    """The word occurs exactly N times as a whole word (case-insensitive)."""
    return _WORD.findall(text.lower()).count(word.lower()) == N


def validate_forbidden_words(text: str, forbidden_words: list[str]) -> bool:
    """No forbidden word occurs (case-insensitive substring)."""
    lowered = text.lower()
    return not any(word.lower() in lowered for word in forbidden_words)


def verify_letter_frequency(text: str, letter: str, N: int) -> bool:
    """The letter occurs exactly N times (case-sensitive)."""
    return text.count(letter) == N


def validate_response_language(text: str, language: str) -> bool:
    """langdetect's code for the text's first LANGUAGE_SAMPLE_CHARS characters is `language`."""
    detector = _language_detectors().create()
    try:
        detector.append(text[:LANGUAGE_SAMPLE_CHARS])
        return detector.detect() == language
    except LangDetectException:  # nothing to detect from, e.g. only digits or punctuation
        return False


def verify_paragraph_count(text: str, N: int) -> bool:
    """Exactly N paragraphs, none empty, separated by `* * *` lines."""
    paragraphs = _DIVIDER_LINE.split(text)
    return len(paragraphs) == N and all(paragraph.strip() for paragraph in paragraphs)


def validate_word_constraint(text: str, N: int, quantifier: str) -> bool:
    """The whitespace-separated word count is at least / at most / around N."""
    return _meets(len(text.split()), N, quantifier, _ten_percent(N))


def verify_sentence_constraint(text: str, N: int, quantifier: str) -> bool:
    """The sentence count (a sentence ends at . ? ! before whitespace) is at least / at most N,
    or around N within 1."""
    sentences = sum(1 for sentence in _SENTENCE_BREAK.split(text) if sentence.strip())
    return _meets(sentences, N, quantifier, 1)


def validate_paragraphs(text: str, N: int, first_word: str, i: int) -> bool:
    """Exactly N paragraphs separated by blank lines, the i-th (from 1) starting with
    first_word."""
    if i > N:
        raise _bad(f"validate_paragraphs: i={i} is past the last of N={N} paragraphs")
    paragraphs = _BLANK_LINES.split(text.strip())
    return len(paragraphs) == N and paragraphs[i - 1].lstrip().startswith(first_word)


def verify_postscript(text: str, postscript_marker: str) -> bool:
    """The marker occurs and some text follows its first occurrence."""
    at = text.find(postscript_marker)
    return at >= 0 and bool(text[at + len(postscript_marker):].strip())


def validate_placeholders(text: str, N: int) -> bool:
    """At least N placeholders in square brackets, such as [address]."""
    return len(_PLACEHOLDER.findall(text)) >= N


def verify_bullet_points(text: str, N: int) -> bool:
    """Exactly N lines start with `*` or `-` (after indentation)."""
    bullets = sum(1 for line in text.splitlines() if line.lstrip().startswith(("*", "-")))
    return bullets == N


def _has_title(line: str) -> bool:
    start, end = line.find("<<"), line.rfind(">>")
    return 0 <= start and start + 2 <= end and bool(line[start + 2:end].strip())


def validate_title(text: str) -> bool:
    """A non-blank title in double angular brackets on one line, such as <<poem of joy>>."""
    return "<<" in text and any(_has_title(line) for line in text.splitlines())


def validate_choice(text: str, options: list[str]) -> bool:
    """One of the options occurs in the text."""
    return any(option in text for option in options)


def validate_highlighted_sections(text: str, N: int) -> bool:
    """At least N non-blank markdown highlights on one line: *section* or **section**."""
    italic = sum(1 for inside in _ITALIC.findall(text) if inside.strip())
    bold = sum(1 for inside in _BOLD.findall(text) if inside.strip())
    return italic + bold >= N


def validate_sections(text: str, N: int, section_splitter: str) -> bool:
    """At least N section headers: the splitter (any case), a number, at most one whitespace
    character between them."""
    header = re.compile(re.escape(section_splitter.lower()) + r"\s?\d+")
    return len(header.findall(text.lower())) >= N


def validate_json_format(text: str) -> bool:
    """The whole response is one JSON value."""
    try:  # integers kept as their digits: no digit limit, no quadratic conversion
        json.loads(text, parse_int=str)
    except (ValueError, RecursionError):
        return False
    return True


def validate_repeat_prompt(text: str, original_prompt: str) -> bool:
    """The response starts with the prompt, unchanged (surrounding whitespace aside)."""
    return text.lstrip().startswith(original_prompt.strip())


def validate_two_responses(text: str) -> bool:
    """Exactly one `******` separator between two different, non-blank responses."""
    if text.count(_TWO_RESPONSES_SEPARATOR) != 1:
        return False
    first, second = (half.strip() for half in text.split(_TWO_RESPONSES_SEPARATOR))
    return bool(first) and bool(second) and first != second


def validate_uppercase(text: str) -> bool:
    """No lowercase letter: the text equals its upper case."""
    return text == text.upper()


def validate_lowercase(text: str) -> bool:
    """No capital letter: the text equals its lower case."""
    return text == text.lower()


def validate_frequency_capital_words(text: str, N: int, quantifier: str) -> bool:
    """The number of all-capital words (runs of word characters with a letter and no lowercase
    one) is at least / at most / around N."""
    capitals = sum(1 for word in _WORD.findall(text) if word.isupper())
    return _meets(capitals, N, quantifier, _ten_percent(N))


def validate_end(text: str, end_phrase: str) -> bool:
    """The response ends with the phrase (surrounding whitespace aside)."""
    return text.rstrip().endswith(end_phrase.strip())


def validate_quotation(text: str) -> bool:
    """The whole response is wrapped in double quotation marks."""
    stripped = text.strip()
    return len(stripped) >= 2 and stripped[0] == stripped[-1] == '"'


def validate_no_commas(text: str) -> bool:
    """No comma."""
    return "," not in text


IF_FUNCTIONS: dict[str, Callable[..., bool]] = {check.__name__: check for check in (
    verify_keywords, verify_keyword_frequency, validate_forbidden_words, verify_letter_frequency,
    validate_response_language, verify_paragraph_count, validate_word_constraint,
    verify_sentence_constraint, validate_paragraphs, verify_postscript, validate_placeholders,
    verify_bullet_points, validate_title, validate_choice, validate_highlighted_sections,
    validate_sections, validate_json_format, validate_repeat_prompt, validate_two_responses,
    validate_uppercase, validate_lowercase, validate_frequency_capital_words, validate_end,
    validate_quotation, validate_no_commas)}

# Each check's keyword arguments, in order: its parameters after the text.
_PARAMETERS = {name: tuple(inspect.signature(check).parameters)[1:]
               for name, check in IF_FUNCTIONS.items()}


# Reading a ground truth.

class _Invalid(Exception):
    """An argument value of the wrong kind; the message says what was expected."""


def _integer_from(low: int) -> Callable[[object], int]:
    def integer(value: object) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_COUNT:
            raise _Invalid(f"an integer from {low} to {MAX_COUNT:,}")
        return value
    return integer


def _quantifier(value: object) -> str:
    if not isinstance(value, str) or value not in _COMPARISONS:
        raise _Invalid("one of " + ", ".join(map(repr, _COMPARISONS)))
    return value


def _phrase(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid("a non-blank string")
    return value


def _phrases(value: object) -> list[str]:
    if not isinstance(value, list) or not value or not all(
            isinstance(item, str) and item.strip() for item in value):
        raise _Invalid("a non-empty list of non-blank strings")
    return value


def _word(value: object) -> str:
    if not isinstance(value, str) or not _WORD.fullmatch(value):
        raise _Invalid("one word (a run of letters, digits or _)")
    return value


def _letter(value: object) -> str:
    if not isinstance(value, str) or len(value) != 1:
        raise _Invalid("a single character")
    return value


def _language(value: object) -> str:
    codes = sorted(_language_detectors().get_lang_list())
    if value not in codes:
        raise _Invalid("a langdetect language code (" + ", ".join(codes) + ")")
    return value


_ARGUMENT_KINDS: dict[str, Callable[[object], object]] = {
    "N": _integer_from(0), "i": _integer_from(1), "quantifier": _quantifier,
    "keyword_list": _phrases, "forbidden_words": _phrases, "options": _phrases,
    "word": _word, "letter": _letter, "language": _language, "first_word": _phrase,
    "postscript_marker": _phrase, "section_splitter": _phrase, "original_prompt": _phrase,
    "end_phrase": _phrase,
}


def _shown(value: object) -> str:
    """A short repr for messages (an integer too long to print is described instead)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    return reprlib.repr(value)


def _parsed(ground_truth: object) -> object:
    if not isinstance(ground_truth, str):
        return ground_truth
    try:
        return json.loads(ground_truth)
    except (ValueError, RecursionError) as e:
        raise _bad(f"not valid JSON ({e})") from None


def _constraint_object(value: object) -> dict:
    if isinstance(value, list):
        if len(value) != 1:
            raise _bad(f"a list must hold exactly one constraint object, got {len(value)} items")
        value = value[0]
    if not isinstance(value, dict):
        raise _bad(f"expected a JSON object with func_name, got {type(value).__name__} "
                   f"{_shown(value)}")
    return value


def _func_name(constraint: dict) -> str:
    name = constraint.get("func_name")
    if name is None:
        raise _bad("no func_name")
    if not isinstance(name, str):
        raise _bad(f"func_name must be a string, got {_shown(name)}")
    if name not in IF_FUNCTIONS:
        close = difflib.get_close_matches(name[:100], IF_FUNCTIONS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise _bad(f"unknown func_name {_shown(name)}{hint}")
    return name


def _checked_arguments(name: str, arguments: dict) -> dict:
    parameters = _PARAMETERS[name]
    unknown = [_shown(key) for key in arguments if key not in parameters]
    if unknown:
        takes = ", ".join(parameters) or "no arguments"
        raise _bad(f"{name} does not take {', '.join(unknown)} (it takes {takes})")
    missing = [parameter for parameter in parameters if parameter not in arguments]
    if missing:
        raise _bad(f"{name} needs {', '.join(missing)}")
    checked = {}
    for parameter in parameters:
        value = arguments[parameter]
        try:
            checked[parameter] = _ARGUMENT_KINDS[parameter](value)
        except _Invalid as e:
            raise _bad(f"{name}: {parameter} must be {e}, got {_shown(value)}") from None
    return checked


def score_ifeval(response: str, ground_truth: str | dict) -> float:
    """1.0 if the response passes the check its ground truth names, else 0.0."""
    constraint = _constraint_object(_parsed(ground_truth))
    name = _func_name(constraint)
    arguments = {key: value for key, value in constraint.items()
                 if key != "func_name" and value is not None}
    return float(IF_FUNCTIONS[name](response, **_checked_arguments(name, arguments)))


_language_detectors()  # loaded at import (about a second), so no answer's time budget pays for it
