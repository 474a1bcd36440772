"""Sentences and words as IFEval's nltk-based checks see them, without nltk: a sentence counter
that follows punkt's rules on ordinary English, and a word splitter that cuts where nltk's
`word_tokenize` cuts words into cased parts (engine.evaluation.ifeval says where they differ).

    count_sentences("Mr. Smith came. He left!")   # 2
    word_tokens("I'm here, DON'T go")              # ['I', "'m", 'here', 'DO', "N'T", 'go']
"""

from __future__ import annotations

import functools
import itertools
import re

# Sentence counting. A word's "core" is the word less any closing marks after its last `.?!`;
# its "body" is the core less that final period and any opening marks before it.
_OPENING_MARKS = "\"'([{*‘“«"
_CLOSING_MARKS = "\"')]}*’”»"
# The closers punkt moves back onto the sentence they follow.
_REALIGNED = "\"')]}‘’“”«»"
# A next word starting with one of these (or in lowercase) does not start a sentence.
_INNER_PUNCTUATION = ";:,!?"
# Bodies whose period may not end a sentence: an ellipsis, a known abbreviation, an initial, a
# number (punkt's number type).
_SPECIAL_BODY = re.compile(
    r"(?P<ellipsis>.*\.)"
    r"|(?P<abbreviation>(?i:(?:\S*-)?(?:dr|jr|mr|mrs|ms|prof|sr|st|vs))"
    r"|(?:[^\W\d_]+\.)+[^\W\d_]+)"
    r"|(?P<initial>[^\W\d])"
    r"|(?P<number>-?[.,]?\d[\d,.-]*)", re.DOTALL)
# A sentence end inside a word: its last `.?!` followed by what punkt lets follow one there.
_AFTER_END = re.escape(")\";}]*:@'({[‘’“”«»?!")
_END_THEN_MARKS = re.compile(rf"(\S*)([.?!])([{_AFTER_END}]\S*)")


def count_sentences(text: str) -> int:
    """Sentences as nltk's punkt counts them in ordinary English: one more than the words
    (whitespace-separated) after which a sentence ends, when the text has any word.

    A sentence ends after a word ending in `?` or `!`, or in `.` (either optionally followed by
    closing quotes, brackets or `*`), unless the period closes a known abbreviation (Mr., Dr.,
    e.g., U.S.), an ellipsis before a word not in uppercase, or an initial or a number before a
    word in lowercase or starting with `;:,!?` (an initial before an uppercase word too, as in
    J. Smith). As in punkt, one of those does end a sentence when the next word holds a sentence
    end followed by more punctuation (`it."`, `(aside.)`, `Really?!`), and marks after the last
    sentence end that are not closing quotes or brackets (`**Done.**`, `Really?!`) make a
    sentence of their own. Newlines alone end nothing. Not reproduced: punkt's learned
    abbreviations and word statistics beyond these rules, and its breaks inside a word
    (`end.*word`)."""
    words = text.split()
    if not words:
        return 0
    # Words repeat: each distinct question is answered once for the text.
    period_ends = functools.cache(_period_ends_sentence)
    inner_break = functools.cache(_inner_break)
    breaks = 0
    for word, next_word in zip(words, itertools.islice(words, 1, None)):
        core = word.rstrip(_CLOSING_MARKS)
        end = core[-1:]
        if end == "?" or end == "!" or end == "." and (
                period_ends(core[:-1], next_word[0]) or inner_break(next_word) is not None):
            breaks += 1
    tail = _inner_break(words[-1])
    return 1 + breaks + bool(tail and tail.strip(_REALIGNED))


def _period_ends_sentence(before: str, following: str) -> bool:
    """Whether a period after `before` ends a sentence, by the character that follows it (the
    next word's first, or the punctuation right after the period)."""
    special = _SPECIAL_BODY.fullmatch(before.lstrip(_OPENING_MARKS))
    kind = special and special.lastgroup
    if kind == "ellipsis":
        return following.isupper()
    if kind == "abbreviation":
        return False
    inner = following.islower() or following in _INNER_PUNCTUATION
    if kind == "initial":
        return not (inner or following.isupper())
    return not inner if kind == "number" else True


def _inner_break(word: str) -> str | None:
    """Where punkt ends a sentence inside the word, at its last `.?!` that punctuation follows:
    the rest of the word after that mark, or None when it does not."""
    match = _END_THEN_MARKS.fullmatch(word)
    if match is None:
        return None
    before, end, after = match.groups()
    return after if end != "." or _period_ends_sentence(before, after[0]) else None


# Capital words: the text's tokens as nltk's word_tokenize cuts them, as far as case can tell.
_SEPARATOR_CHARACTERS = str.maketrans(
    dict.fromkeys(";@#$%&?!*()[]{}<>\"`«»“”‘’„\u2012\u2013\u2014\u2015", " "))
_SEPARATOR_SEQUENCES = re.compile(r"(?:--|\.{2,}|\.(?=\s|$)|[:,](?!\d))+")
# A contraction ending after a character other than an apostrophe or whitespace.
_CLITIC = re.compile(r"'(?<=[^'\s]')(?:[sSmMdD]|ll|LL|re|RE|ve|VE)(?!\S)"
                     r"|n(?<=[^'\s]n)'t(?!\S)|N(?<=[^'\s]N)'T(?!\S)")
# Words nltk splits in two (its fused contractions), with where the second part starts; the
# pattern finds them (and a few look-alikes, left whole) from their first letter.
_FUSED_WORDS = {"cannot": 3, "d'ye": 1, "gimme": 3, "gonna": 3, "gotta": 3, "lemme": 3,
                "more'n": 4, "wanna": 3}
_FUSED_WORD = re.compile(r"[cdglmCDGLM](?<!\w.)(?i:annot|'ye|imme|onna|otta|emme|ore'n)\b"
                         r"|[wW](?<!\w.)(?i:anna)(?=\s|$)")


def word_tokens(text: str) -> list[str]:
    """Words split at the punctuation nltk's tokenizer separates and before contraction endings
    (I'm -> I 'm, DON'T -> DO N'T, CANNOT -> CAN NOT). Punctuation it keeps inside a word
    (hyphens, slashes, apostrophes, single periods) stays inside here too."""
    spaced = _SEPARATOR_SEQUENCES.sub(" ", text.translate(_SEPARATOR_CHARACTERS))
    spaced = _CLITIC.sub(_space_before, spaced)
    return _FUSED_WORD.sub(_split_fused_word, spaced).split()


def _space_before(match: re.Match[str]) -> str:
    return " " + match[0]


def _split_fused_word(match: re.Match[str]) -> str:
    word = match[0]
    split_at = _FUSED_WORDS.get(word.lower())
    return f" {word[:split_at]} {word[split_at:]} " if split_at else word
