"""The engine's logger: console on every rank at WARNING, and on the logging rank INFO to the
console and to `train.log` in the run dir."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

log = logging.getLogger("engine")


def setup_logging(output_dir: Path | None) -> None:
    """Console (and, on the logging rank, `train.log` in the run dir) at INFO."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(output_dir / "train.log"))
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    for h in handlers:
        h.setFormatter(fmt)
    log.handlers[:] = handlers
    log.setLevel(logging.INFO if output_dir is not None else logging.WARNING)
    log.propagate = False
