"""What every command line of the engine shares: `key=value` overrides anywhere on the line, and
one error path — bad input (a recipe, data, a checkpoint) exits with status 2 and one
`error: ...` line that names the file, key or record, never a traceback.

    def main(argv=None) -> int:
        args, overrides = parse(parser, argv)
        ...
    if __name__ == "__main__":
        sys.exit(run_main(main))
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from engine.errors import UserError

EXIT_BAD_INPUT = 2


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """(other arguments, `key=value` overrides): an override is any argument that is not a flag
    and whose part before `=` is a dotted key, wherever it stands on the line."""
    rest, overrides = [], []
    for arg in argv:
        key, sep, _ = arg.partition("=")
        is_override = sep and not arg.startswith("-") and key and \
            all(part.isidentifier() for part in key.split("."))
        (overrides if is_override else rest).append(arg)
    return rest, overrides


def parse(parser: argparse.ArgumentParser, argv: list[str] | None = None):
    """argparse on the arguments that are not overrides; (namespace, overrides)."""
    rest, overrides = split_overrides(sys.argv[1:] if argv is None else argv)
    return parser.parse_args(rest), overrides


def run_main(main: Callable[[], int | None]) -> int:
    """Call `main`; bad input becomes `error: ...` on stderr and exit status 2."""
    try:
        return main() or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
