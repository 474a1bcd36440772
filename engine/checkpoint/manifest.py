"""What a complete checkpoint holds: every file's size and CRC32, recorded at save in
`manifest.json` and checked before the checkpoint is trusted.

    digests = file_digests(directory, names)        # {name: {"size", "crc32"}}
    write_manifest(directory, digests)
    verify_share(directory, rank, world)            # [] if intact; what is wrong otherwise

A file truncated, zeroed, missing or replaced after the save is found before any tensor is
read, so a damaged newest checkpoint is skipped (the run falls back to an older one) instead of
failing deep inside the loader. Ranks split the files between them to hash them
(`engine.checkpoint.train_state`). A checkpoint saved without a manifest is reported as such.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

from engine.atomic import write_atomic

MANIFEST = "manifest.json"
_CHUNK = 16 << 20


def checkpoint_files(directory: Path) -> list[str]:
    """Every file of a checkpoint but the manifest, as paths relative to it, sorted."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                  if p.is_file() and p.name != MANIFEST)


def _crc32(path: Path) -> int:
    crc = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


def file_digests(directory: Path, names: list[str]) -> dict:
    return {name: {"size": (directory / name).stat().st_size, "crc32": _crc32(directory / name)}
            for name in names}


def write_manifest(directory: Path, digests: dict) -> None:
    write_atomic(directory / MANIFEST, json.dumps({"files": digests}, indent=1, sort_keys=True))


def has_manifest(directory: Path) -> bool:
    return (directory / MANIFEST).is_file()


def verify_share(directory: Path, rank: int = 0, world: int = 1,
                 checksums: bool = True) -> list[str]:
    """What is wrong with share `rank` of `world` of the files the manifest lists (all of them
    for one process); [] if they are intact. Without `checksums`, only presence and sizes (no
    file is read). Call only where `has_manifest`."""
    try:
        expected = json.loads((directory / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return [f"{MANIFEST} is unreadable"]
    found = []
    for name in sorted(expected)[rank::world]:
        path, want = directory / name, expected[name]
        if not path.is_file():
            found.append(f"{name} is missing")
        elif path.stat().st_size != want["size"]:
            found.append(f"{name} has {path.stat().st_size} bytes, expected {want['size']}")
        elif checksums and _crc32(path) != want["crc32"]:
            found.append(f"{name} does not match its checksum")
    return found
