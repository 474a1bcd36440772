"""The IFEval benchmark (instruction-following evaluation, 2023) scored by the benchmark's
definition: its 25 instruction checks, each read with the row's `kwargs`, and its four
accuracies (Tülu 3 reports prompt-level loose accuracy).

    result = score_ifeval_benchmark(rows, responses)   # rows as in the input_data.jsonl
    result.prompt_loose, result.instruction_strict, result.per_example[0]["loose"]

- strict: an instruction is followed when the response is not blank and the check passes on it;
- loose: the check passes on any non-blank one of eight variants: the response; it without its
  first line, its last line, or both (those three stripped of surrounding whitespace); and each
  of those four with every `*` removed;
- prompt-level accuracy is the share of rows whose every instruction is followed,
  instruction-level accuracy the share of all instructions followed.

The RLVR reward's checks (engine.rewards.ifeval, AI2's 25 functions) are a separate set by design.

The checks, and where they differ from the benchmark's code, are in
`engine.evaluation.ifeval_checks`; arguments a check cannot take raise `DataError` (the
benchmark fills an absent, blank or out-of-range argument with a random value), as do unknown
instruction ids.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Callable

from engine.errors import DataError
from engine.evaluation.ifeval_checks import INSTRUCTIONS, RELATIONS, Check, language_codes

# Arguments: what each named argument must be (a problem, or None when it is fine).

def _count_problem(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return None
    return "must be a whole number >= 0"


def _position_problem(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return None
    return "must be a whole number >= 1"


def _relation_problem(value: object) -> str | None:
    return None if value in RELATIONS else f"must be one of {RELATIONS}"


def _text_problem(value: object) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must be non-blank text"


def _texts_problem(value: object) -> str | None:
    if isinstance(value, (list, tuple)) and value and not any(map(_text_problem, value)):
        return None
    return "must be a non-empty list of non-blank texts"


def _letter_problem(value: object) -> str | None:
    if isinstance(value, str) and len(value) == 1 and not value.isspace():
        return None
    return "must be a single non-blank character"


def _language_problem(value: object) -> str | None:
    return None if value in language_codes() else "must be one of langdetect's language codes"


_ARGUMENT_RULES: dict[str, Callable[[object], str | None]] = {
    "keywords": _texts_problem, "forbidden_words": _texts_problem,
    "keyword": _text_problem, "first_word": _text_problem, "prompt_to_repeat": _text_problem,
    "end_phrase": _text_problem, "postscript_marker": _text_problem,
    "section_spliter": _text_problem,
    "letter": _letter_problem, "language": _language_problem,
    "relation": _relation_problem, "let_relation": _relation_problem,
    "capital_relation": _relation_problem,
    "frequency": _count_problem, "let_frequency": _count_problem,
    "capital_frequency": _count_problem, "num_sentences": _count_problem,
    "num_paragraphs": _count_problem, "num_words": _count_problem,
    "num_placeholders": _count_problem, "num_bullets": _count_problem,
    "num_highlights": _count_problem, "num_sections": _count_problem,
    "nth_paragraph": _position_problem,
}


@functools.lru_cache(maxsize=None)
def _argument_names(check: Check) -> frozenset[str]:
    parameters = inspect.signature(check).parameters.values()
    return frozenset(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)


def _arguments_problem(check: Check, arguments: dict) -> str | None:
    expected = _argument_names(check)
    unexpected = sorted(set(arguments) - expected, key=str)
    missing = sorted(expected - set(arguments))
    if unexpected:
        return f"unexpected argument(s) {unexpected} (it takes {sorted(expected) or 'none'})"
    if missing:
        return f"missing argument(s) {missing}"
    for name, value in arguments.items():
        problem = _ARGUMENT_RULES[name](value)
        if problem:
            return f"argument {name}={value!r} {problem}"
    if "nth_paragraph" in arguments and arguments["nth_paragraph"] > arguments["num_paragraphs"]:
        return "nth_paragraph is past num_paragraphs"
    return None


def _bound_check(instruction_id: str, kwargs: dict) -> tuple[Check, dict]:
    """The instruction's check and its arguments (None values dropped), or DataError."""
    check = INSTRUCTIONS.get(instruction_id) if isinstance(instruction_id, str) else None
    if check is None:
        raise DataError(f"instruction {instruction_id!r}: not one of the benchmark's "
                        f"{len(INSTRUCTIONS)} instruction ids")
    if not isinstance(kwargs, dict):
        raise DataError(f"instruction {instruction_id!r}: kwargs must be an object, "
                        f"got {type(kwargs).__name__}")
    arguments = {name: value for name, value in kwargs.items() if value is not None}
    problem = _arguments_problem(check, arguments)
    if problem:
        raise DataError(f"instruction {instruction_id!r}: {problem}")
    return check, arguments


def _passes(check: Check, arguments: dict, text: str) -> bool:
    """The benchmark counts a blank text as not following any instruction."""
    return bool(text.strip()) and check(text, **arguments)


def loose_variants(response: str) -> list[str]:
    """The benchmark's eight loose readings of a response, in its order."""
    lines = response.split("\n")
    without_first = "\n".join(lines[1:]).strip()
    without_last = "\n".join(lines[:-1]).strip()
    without_both = "\n".join(lines[1:-1]).strip()
    unstarred = [text.replace("*", "")
                 for text in (response, without_first, without_last, without_both)]
    return [response, unstarred[0], without_first, without_last, without_both, *unstarred[1:]]


def follows(instruction_id: str, kwargs: dict, response: str, prompt: str) -> bool:
    """Strict: the instruction's check passes on the response as it is.

    `prompt` is the row's prompt. The benchmark's driver hands it to a check whose arguments
    name `prompt`; none of the 25 does (repeat_prompt reads its request from
    `prompt_to_repeat`), so every check reads the response and its kwargs alone."""
    check, arguments = _bound_check(instruction_id, kwargs)
    return _passes(check, arguments, response)


def follows_loose(instruction_id: str, kwargs: dict, response: str, prompt: str) -> bool:
    """Loose: the check passes on any of the response's `loose_variants`."""
    check, arguments = _bound_check(instruction_id, kwargs)
    return any(_passes(check, arguments, text) for text in _distinct(loose_variants(response)))


def _distinct(variants: list[str]) -> list[str]:
    """The variants without repeats (a check gives a text one answer however often it is
    read): a response with no `*`, or of one line, is read once or twice instead of eight
    times."""
    return list(dict.fromkeys(variants))


@dataclass
class IFEvalResult:
    prompt_strict: float
    prompt_loose: float
    instruction_strict: float
    instruction_loose: float
    # One dict a row: key, instruction_id_list, strict and loose (a bool an instruction),
    # prompt_strict and prompt_loose (every instruction followed).
    per_example: list[dict]


def score_ifeval_benchmark(rows: list[dict], responses: list[str]) -> IFEvalResult:
    """The benchmark's four accuracies over rows ({"key", "prompt", "instruction_id_list",
    "kwargs"}, as in its input_data.jsonl) and one response each, in the same order."""
    if len(rows) != len(responses):
        raise DataError(f"IFEval: {len(rows)} rows but {len(responses)} responses")
    if not rows:
        raise DataError("IFEval: no rows to score")
    examples = [_score_row(index, row, response)
                for index, (row, response) in enumerate(zip(rows, responses))]
    strict = [flag for example in examples for flag in example["strict"]]
    loose = [flag for example in examples for flag in example["loose"]]
    return IFEvalResult(
        prompt_strict=_share([example["prompt_strict"] for example in examples]),
        prompt_loose=_share([example["prompt_loose"] for example in examples]),
        instruction_strict=_share(strict),
        instruction_loose=_share(loose),
        per_example=examples,
    )


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags)


def _score_row(index: int, row: object, response: object) -> dict:
    key, instruction_ids, all_kwargs = _row_fields(index, row, response)
    variants = _distinct(loose_variants(response))
    strict, loose = [], []
    for instruction_id, kwargs in zip(instruction_ids, all_kwargs):
        try:
            check, arguments = _bound_check(instruction_id, kwargs)
        except DataError as error:
            raise DataError(f"IFEval row key {key!r}: {error}") from error
        strict.append(_passes(check, arguments, response))
        loose.append(strict[-1] or any(_passes(check, arguments, text) for text in variants))
    return {"key": key, "instruction_id_list": list(instruction_ids),
            "strict": strict, "loose": loose,
            "prompt_strict": all(strict), "prompt_loose": all(loose)}


def _row_fields(index: int, row: object, response: object) -> tuple[object, list, list]:
    """The row's key, instruction ids and kwargs, or DataError naming the row and field."""
    if not isinstance(row, dict):
        raise DataError(f"IFEval row {index}: must be an object, got {type(row).__name__}")
    key = row.get("key", f"#{index}")
    where = f"IFEval row key {key!r}"
    for field in ("key", "prompt", "instruction_id_list", "kwargs"):
        if field not in row:
            raise DataError(f"{where}: missing field {field!r}")
    instruction_ids, all_kwargs = row["instruction_id_list"], row["kwargs"]
    if not isinstance(instruction_ids, list) or not instruction_ids:
        raise DataError(f"{where}: instruction_id_list must be a non-empty list")
    if not isinstance(all_kwargs, list) or len(all_kwargs) != len(instruction_ids):
        raise DataError(f"{where}: kwargs must be a list as long as instruction_id_list "
                        f"({len(instruction_ids)})")
    if not isinstance(response, str):
        raise DataError(f"{where}: the response must be text, got {type(response).__name__}")
    return key, instruction_ids, all_kwargs
