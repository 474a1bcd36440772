"""The errors a user can fix: a bad recipe, bad data, a bad checkpoint or model directory, a run
that diverged.

Every command line tool catches `UserError` in one place (`engine.cli`) and exits with status 2
and one `error: ...` line; the message itself names the key, file, line/record or tensor.
"""


class UserError(ValueError):
    """Bad input that the user can fix; the message says where."""


class ConfigError(UserError):
    """A recipe or override that cannot run; the message names the key."""


class DataError(UserError):
    """Bad input data; the message names the file, the line or record, and the field."""


class CheckpointError(UserError):
    """A checkpoint or Hugging Face model directory that cannot be read; names file and tensor."""


class DivergenceError(UserError):
    """Training that cannot go on (non-finite gradients step after step); names the steps."""
