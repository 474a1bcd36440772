"""Atomic file writes: the new content goes to a temporary sibling, is flushed to disk, and
replaces the file by rename, so a kill or a full disk leaves the old file or the new one, never
half of either."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
