"""MATH answers as strings: the candidate answers a response offers (the last `\\boxed{}`,
Minerva's "Final Answer: The final answer is ...", the text between the last dollars) and the
MATH benchmark's string normalization of an answer (markup, units, spacing, shorthand, numbers),
as AI2's flex rule reads them. Pure string work: no sympy."""

from __future__ import annotations

import re

from engine.rewards.base import answer_tail

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
