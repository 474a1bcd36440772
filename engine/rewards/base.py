"""What every verifier shares: the error for a ground truth it cannot read, and the size bound
on the answers it looks at."""

from engine.errors import DataError

# Longer answers are cut to their last this many characters before any parsing: final answers
# sit at the end, and no regular expression or parser then sees more than this.
MAX_ANSWER_CHARS = 20_000


class BadGroundTruth(DataError):
    """A ground truth the verifier cannot use; the message says what is wrong with it."""


def answer_tail(response: str) -> str:
    """The part of an answer a verifier reads: its last MAX_ANSWER_CHARS characters."""
    return response[-MAX_ANSWER_CHARS:]
