"""Record checks and the skip report.

Every bad record either stops preparation with `location: reason` (location = file:line or
file[record i]) or, where the recipe allows skipping (`data.on_bad_record: skip`), is counted under
its reason and reported at the end of preparation, with the first location of each reason.
Nothing is dropped silently.
"""

from __future__ import annotations

from collections import Counter

from engine.errors import DataError

ROLES = ("system", "user", "assistant")


class BadRecord(Exception):
    """One record that cannot be used; `reason` is the key it is counted under."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


def check_messages(record, field: str = "messages") -> list[dict]:
    """The conversation of a Tülu-format record, or BadRecord saying what is wrong with it."""
    if not isinstance(record, dict):
        raise BadRecord("not_an_object", f"record is {type(record).__name__}, expected an object")
    if field not in record:
        raise BadRecord("missing_messages", f"missing field {field!r}")
    messages = record[field]
    if not isinstance(messages, list):
        raise BadRecord("wrong_type", f"{field} is {type(messages).__name__}, expected a list")
    if not messages:
        raise BadRecord("empty_messages", f"{field} is empty")
    out = []
    for i, m in enumerate(messages):
        where = f"{field}[{i}]"
        if not isinstance(m, dict):
            raise BadRecord("wrong_type", f"{where} is {type(m).__name__}, expected an object")
        role, content = m.get("role"), m.get("content")
        if not isinstance(role, str):
            raise BadRecord("wrong_type", f"{where}.role is missing or not a string")
        if role not in ROLES:
            raise BadRecord("unknown_role", f"{where}.role {role!r} is not one of "
                                            f"{', '.join(ROLES)}")
        if not isinstance(content, str):
            raise BadRecord("wrong_type", f"{where}.content is "
                                          f"{type(content).__name__}, expected a string")
        if not content.strip():
            raise BadRecord("empty_content", f"{where}.content is empty")
        out.append({"role": role, "content": content})
    return out


def check_text(record, field: str = "text") -> str:
    if not isinstance(record, dict):
        raise BadRecord("not_an_object", f"record is {type(record).__name__}, expected an object")
    if field not in record:
        raise BadRecord("missing_text", f"missing field {field!r}")
    text = record[field]
    if not isinstance(text, str) or not text:
        raise BadRecord("wrong_type", f"field {field!r} must be a non-empty string")
    return text


class SkipReport:
    """Counts of skipped records by reason, with the first location of each."""

    def __init__(self, skip: bool):
        self.skip = skip
        self.counts: Counter = Counter()
        self.first: dict[str, str] = {}

    def bad(self, location: str, error: BadRecord) -> None:
        if not self.skip:
            raise DataError(f"{location}: {error.message}")
        self.counts[error.reason] += 1
        self.first.setdefault(error.reason, f"{location}: {error.message}")

    def count(self, reason: str, location: str, message: str) -> None:
        """A record dropped by rule (too long, nothing to train on), counted, never an error."""
        self.counts[reason] += 1
        self.first.setdefault(reason, f"{location}: {message}")
