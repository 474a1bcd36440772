"""IFEval's 25 instruction checks, `check(response, **kwargs) -> bool`, in the benchmark's
registry order (`INSTRUCTIONS`: instruction id -> check), with the counting they share. Scored
by `engine.evaluation.ifeval`, which also checks their arguments.

Where this differs from the benchmark's code, and why:
- Sentences are counted by a self-contained splitter (`text_units.count_sentences`) instead of
  nltk's punkt model: it follows punkt's rules on ordinary English (breaks after `.?!` and
  closing marks before the next word; none after Mr./e.g.-style abbreviations, initials, or a
  number before a lowercase word), not every abbreviation or word statistic punkt learned.
- Capital words are counted over a self-contained imitation of nltk's `word_tokenize`
  (`text_units.word_tokens`), which splits words where that tokenizer splits them into cased
  parts.
- A keyword, forbidden word, section splitter or other postscript marker is matched as literal
  text, where the benchmark reads it as a regular expression: the same for every value in the
  published data (plain words), and no argument can make a check slow.
- The benchmark's regular expressions for placeholders, bullets, titles and postscripts are
  matched by scans that find the same matches without rescanning a line.
- Language detection is langdetect's, seeded with 0 as the benchmark's current code seeds it,
  and given at most the first LANGUAGE_TEXT_CHARS characters (it reads 10,000 of them).
- JSON nested too deeply for Python's parser counts as not JSON instead of crashing.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Callable, Iterator

from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
from langdetect.lang_detect_exception import LangDetectException

from engine.evaluation.text_units import count_sentences, word_tokens

LESS_THAN = "less than"
AT_LEAST = "at least"
RELATIONS = (LESS_THAN, AT_LEAST)
CONSTRAINED_RESPONSES = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
TWO_RESPONSES_SEPARATOR = "******"
# langdetect reads the first 10,000 characters left after it drops URLs and e-mail addresses;
# handing it a bounded prefix keeps that dropping step fast on any response.
LANGUAGE_TEXT_CHARS = 100_000

_DIVIDER = re.compile(r"\s?\*\*\*\s?")
_WORD = re.compile(r"\w+")
_HIGHLIGHT = re.compile(r"\*([^\n*]*)\*")
_DOUBLE_HIGHLIGHT = re.compile(r"\*\*([^\n*]*)\*\*")
# A line whose first non-blank character is `*` then a character other than `*`; a lone `*` at
# a line's end takes the next line with it, as the benchmark's `^\s*\*[^\*].*$` does.
_STAR_BULLET = re.compile(r"^[^\S\n]*\*(?:[^*\n].*|\n.*)$", re.MULTILINE)
_DASH_BULLET = re.compile(r"^[^\S\n]*-", re.MULTILINE)
_FIRST_WORD = re.compile(r"[^.,?!'\"]*")
_PPS_MARKER = re.compile(r"p\.\s?p\.\s?s")
_PS_MARKER = re.compile(r"p\.\s?s\.")

Check = Callable[..., bool]


# Counting helpers.

def _compare(count: int, relation: str, threshold: int) -> bool:
    """The benchmark's two relations: "less than" is count < threshold, "at least" count >= it."""
    return count < threshold if relation == LESS_THAN else count >= threshold


def _count_matches(pattern: re.Pattern[str], text: str) -> int:
    return sum(1 for _ in pattern.finditer(text))


@functools.lru_cache(maxsize=4096)
def _literal(text: str, template: str = "{}", flags: int = re.IGNORECASE) -> re.Pattern[str]:
    """A compiled pattern: `template` with the escaped literal text in its `{}`."""
    return re.compile(template.replace("{}", re.escape(text)), flags)


@functools.lru_cache(maxsize=None)
def _language_detectors() -> DetectorFactory:
    """langdetect's profiles, loaded once and seeded so that a text always gets one answer."""
    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.set_seed(0)
    return factory


def detected_language(text: str) -> str | None:
    """langdetect's language code for the text, or None when it finds nothing to go by."""
    detector = _language_detectors().create()
    detector.append(text[:LANGUAGE_TEXT_CHARS])
    try:
        return detector.detect()
    except LangDetectException:
        return None


def _count_placeholders(text: str) -> int:
    """Matches of the benchmark's `\\[.*?\\]`: from a `[` to the next `]` on the same line, left
    to right without overlap; found with `str.find` so that no line is scanned twice."""
    count = 0
    close = -1
    start = text.find("[")
    while start != -1:
        if close < start:
            close = text.find("]", start + 1)
            if close == -1:
                break
        newline = text.find("\n", start, close)
        if newline == -1:
            count += 1
            start = text.find("[", close + 1)
        else:
            start = text.find("[", newline + 1)
    return count


def _titles(text: str) -> Iterator[str]:
    """Matches of the benchmark's `<<[^\\n]+>>`: on each line, from its first `<<` to its last
    `>>` when at least one character lies between."""
    start = text.find("<<")
    while start != -1:
        line_end = text.find("\n", start)
        line_end = len(text) if line_end == -1 else line_end
        close = text.rfind(">>", start, line_end)
        if close >= start + 3:
            yield text[start:close + 2]
        start = text.find("<<", line_end)


# The checks: check(response, **kwargs) -> bool, in the benchmark's registry order.

def includes_keywords(response: str, *, keywords: list[str]) -> bool:
    """Every keyword occurs, case-insensitively, anywhere (inside words too)."""
    return all(_literal(keyword).search(response) for keyword in keywords)


def keyword_frequency(response: str, *, keyword: str, frequency: int, relation: str) -> bool:
    """Case-insensitive, non-overlapping occurrences of the keyword (inside words too)."""
    occurrences = _count_matches(_literal(keyword.strip()), response)
    return _compare(occurrences, relation, frequency)


def avoids_forbidden_words(response: str, *, forbidden_words: list[str]) -> bool:
    """No forbidden word occurs between word boundaries, case-insensitively."""
    return not any(_literal(word, r"\b{}\b").search(response) for word in forbidden_words)


def letter_frequency(response: str, *, letter: str, let_frequency: int,
                     let_relation: str) -> bool:
    """Occurrences of the lowercased character in the lowercased response (a character whose
    lowercase form is two characters never counts, as in the benchmark's per-character tally)."""
    target = letter.lower()
    occurrences = response.lower().count(target) if len(target) == 1 else 0
    return _compare(occurrences, let_relation, let_frequency)


def in_language(response: str, *, language: str) -> bool:
    """langdetect names the language; a text it cannot read counts as followed."""
    detected = detected_language(response)
    return detected is None or detected == language


def sentence_count(response: str, *, num_sentences: int, relation: str) -> bool:
    return _compare(count_sentences(response), relation, num_sentences)


def divider_paragraph_count(response: str, *, num_paragraphs: int) -> bool:
    """Exactly that many paragraphs between `***` dividers (with one optional whitespace
    character each side); a blank first or last part is not a paragraph, a blank inner one fails
    the check."""
    parts = _DIVIDER.split(response)
    blank = [not part.strip() for part in parts]
    if any(blank[1:-1]):
        return False
    paragraphs = len(parts) - blank[0] - (len(parts) > 1 and blank[-1])
    return paragraphs == num_paragraphs


def word_count(response: str, *, num_words: int, relation: str) -> bool:
    """Words are runs of word characters (`\\w+`)."""
    return _compare(_count_matches(_WORD, response), relation, num_words)


def nth_paragraph_first_word(response: str, *, num_paragraphs: int, nth_paragraph: int,
                             first_word: str) -> bool:
    """Paragraphs are the non-blank parts between `\\n\\n`; their count must be num_paragraphs,
    and the nth part (counted among all parts, blank ones too) must be non-blank and start with
    first_word: its first whitespace-separated word, leading `'` then `"` removed, cut at the
    first of . , ? ! ' " and compared lowercased."""
    parts = response.split("\n\n")
    count = sum(1 for part in parts if part.strip())
    if nth_paragraph > count:
        return False
    paragraph = parts[nth_paragraph - 1].strip()
    if not paragraph:
        return False
    word = paragraph.split()[0].lstrip("'").lstrip('"')
    cut = _FIRST_WORD.match(word).group()
    lowered = "".join(character.lower() for character in cut)  # one at a time, as there
    return count == num_paragraphs and lowered == first_word.lower()


def placeholder_count(response: str, *, num_placeholders: int) -> bool:
    """At least that many `[...]` on one line (an empty `[]` counts too)."""
    return _count_placeholders(response) >= num_placeholders


def has_postscript(response: str, *, postscript_marker: str) -> bool:
    """The marker occurs anywhere, case-insensitively: P.P.S as `p.p.s` and P.S. as `p.s.`, each
    allowing one whitespace character after a period; any other marker as itself."""
    marker = postscript_marker.strip()
    lowered = response.lower()
    if marker == "P.P.S":
        return _PPS_MARKER.search(lowered) is not None
    if marker == "P.S.":
        return _PS_MARKER.search(lowered) is not None
    return _literal(marker.lower(), "{}", 0).search(lowered) is not None


def bullet_count(response: str, *, num_bullets: int) -> bool:
    """Exactly that many bullet lines: first non-blank characters `*` and not `**`, or `-`
    (horizontal rules and negative numbers included, as in the benchmark)."""
    bullets = _count_matches(_STAR_BULLET, response) + _count_matches(_DASH_BULLET, response)
    return bullets == num_bullets


def constrained_response(response: str) -> bool:
    """One of the three options occurs anywhere, case-sensitively."""
    return any(option in response for option in CONSTRAINED_RESPONSES)


def highlight_count(response: str, *, num_highlights: int) -> bool:
    """At least that many highlights: `*text*` on one line, plus (counted again) `**text**`,
    each only when the text between is not blank."""
    singles = sum(1 for match in _HIGHLIGHT.finditer(response) if match[1].strip())
    doubles = sum(1 for match in _DOUBLE_HIGHLIGHT.finditer(response) if match[1].strip())
    return singles + doubles >= num_highlights


def section_count(response: str, *, section_spliter: str, num_sections: int) -> bool:
    """At least that many section headers: the splitter (case-sensitive, anywhere) then one
    optional whitespace character and digits."""
    header = _literal(section_spliter.strip(), r"\s?{}\s?\d+\s?", 0)
    return _count_matches(header, response) >= num_sections


def is_json(response: str) -> bool:
    """The stripped response, less a leading ```json / ```Json / ```JSON / ``` fence and a
    trailing ```, parses with Python's `json.loads`."""
    text = response.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        text = text.removeprefix(fence)
    try:
        json.loads(text.removesuffix("```").strip())
    except (ValueError, RecursionError):
        return False
    return True


def has_title(response: str) -> bool:
    """Some line holds `<<...>>` with non-blank text once the `<` and `>` are trimmed."""
    return any(title.lstrip("<").rstrip(">").strip() for title in _titles(response))


def two_responses(response: str) -> bool:
    """Exactly two non-blank parts around `******`, different once stripped; a blank part is
    allowed only first or last."""
    parts = response.split(TWO_RESPONSES_SEPARATOR)
    if any(not part.strip() for part in parts[1:-1]):
        return False
    answers = [part.strip() for part in parts if part.strip()]
    return len(answers) == 2 and answers[0] != answers[1]


def repeats_prompt(response: str, *, prompt_to_repeat: str) -> bool:
    """The stripped response starts with the stripped request, case-insensitively."""
    return response.strip().lower().startswith(prompt_to_repeat.strip().lower())


def ends_with_phrase(response: str, *, end_phrase: str) -> bool:
    """The response, stripped of whitespace and then of double quotes, ends with the phrase,
    case-insensitively."""
    return response.strip().strip('"').lower().endswith(end_phrase.strip().lower())


def capital_word_frequency(response: str, *, capital_frequency: int,
                           capital_relation: str) -> bool:
    """Tokens (see `word_tokens`) whose cased characters are all uppercase, "I" included."""
    capitals = sum(map(str.isupper, word_tokens(response)))
    return _compare(capitals, capital_relation, capital_frequency)


def english_capital(response: str) -> bool:
    """All cased characters uppercase, and English by langdetect (or undetectable)."""
    return response.isupper() and detected_language(response) in ("en", None)


def english_lowercase(response: str) -> bool:
    """All cased characters lowercase, and English by langdetect (or undetectable)."""
    return response.islower() and detected_language(response) in ("en", None)


def no_comma(response: str) -> bool:
    return "," not in response


def wrapped_in_quotes(response: str) -> bool:
    """The stripped response is at least two characters and starts and ends with `"`."""
    text = response.strip()
    return len(text) > 1 and text[0] == '"' and text[-1] == '"'


INSTRUCTIONS: dict[str, Check] = {
    "keywords:existence": includes_keywords,
    "keywords:frequency": keyword_frequency,
    "keywords:forbidden_words": avoids_forbidden_words,
    "keywords:letter_frequency": letter_frequency,
    "language:response_language": in_language,
    "length_constraints:number_sentences": sentence_count,
    "length_constraints:number_paragraphs": divider_paragraph_count,
    "length_constraints:number_words": word_count,
    "length_constraints:nth_paragraph_first_word": nth_paragraph_first_word,
    "detectable_content:number_placeholders": placeholder_count,
    "detectable_content:postscript": has_postscript,
    "detectable_format:number_bullet_lists": bullet_count,
    "detectable_format:constrained_response": constrained_response,
    "detectable_format:number_highlighted_sections": highlight_count,
    "detectable_format:multiple_sections": section_count,
    "detectable_format:json_format": is_json,
    "detectable_format:title": has_title,
    "combination:two_responses": two_responses,
    "combination:repeat_prompt": repeats_prompt,
    "startend:end_checker": ends_with_phrase,
    "change_case:capital_word_frequency": capital_word_frequency,
    "change_case:english_capital": english_capital,
    "change_case:english_lowercase": english_lowercase,
    "punctuation:no_comma": no_comma,
    "startend:quotation": wrapped_in_quotes,
}


def language_codes() -> list[str]:
    """The language codes langdetect knows (what `in_language` accepts)."""
    return _language_detectors().get_lang_list()
