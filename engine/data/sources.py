"""Data sources and mixtures.

A source is a JSONL file, a JSON file (a list of records), a Parquet file, or a dataset saved
with the Hugging Face `datasets` library (`save_to_disk`; a DatasetDict uses `split`, default
train). `read_source` yields (location, record) pairs, locations being `file:line` or
`path[record i]`; a JSONL line that is not UTF-8 or not JSON is a bad record of its own. `take` takes from each source a `fraction` of its records (>1 repeats them) or a
`count`, chosen by a permutation seeded by (seed, source index), so a mixture is reproducible.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from engine.config import SourceConfig
from engine.data.records import BadRecord, SkipReport
from engine.errors import DataError


def read_source(source: SourceConfig) -> Iterator[tuple[str, object]]:
    """(location, record) for every record; a line of invalid JSON yields a BadRecord."""
    path = Path(source.path)
    if path.is_dir():
        yield from _read_saved_dataset(path, source.split)
    elif not path.is_file():
        raise DataError(f"{path}: data source not found")
    elif path.suffix == ".jsonl":
        with path.open("rb") as f:  # decoded line by line: a bad byte spoils one record
            for number, raw in enumerate(f, start=1):
                yield from _jsonl_record(f"{path}:{number}", raw)
    elif path.suffix == ".json":
        raw = path.read_bytes()
        try:
            records = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1
            raise DataError(f"{path}:{line}: invalid UTF-8 (byte {raw[e.start]:#04x} at offset "
                            f"{e.start})") from None
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
        if not isinstance(records, list):
            raise DataError(f"{path}: a .json source must hold a list of records")
        for i, record in enumerate(records):
            yield f"{path}[record {i}]", record
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for i, record in enumerate(pq.read_table(path).to_pylist()):
            yield f"{path}[row {i}]", record
    else:
        raise DataError(f"{path}: unknown source format (expected .jsonl, .json, .parquet or a "
                        f"dataset directory saved with datasets.save_to_disk)")


def _jsonl_record(location: str, raw: bytes) -> Iterator[tuple[str, object]]:
    """The record of one JSONL line (none for a blank line), or a BadRecord naming the fault."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        yield location, BadRecord("invalid_utf8", f"invalid UTF-8 (byte {raw[e.start]:#04x} at "
                                                  f"column {e.start + 1})")
        return
    if not line.strip():
        return
    try:
        yield location, json.loads(line)
    except json.JSONDecodeError as e:
        yield location, BadRecord("invalid_json", f"invalid JSON ({e.msg})")


def _read_saved_dataset(path: Path, split: str | None) -> Iterator[tuple[str, object]]:
    from datasets import DatasetDict, load_from_disk

    try:
        data = load_from_disk(str(path))
    except FileNotFoundError as e:
        raise DataError(f"{path}: not a dataset saved with datasets.save_to_disk ({e})") from None
    if isinstance(data, DatasetDict):
        name = split or "train"
        if name not in data:
            raise DataError(f"{path}: no split {name!r} (has {', '.join(data)}); set "
                            f"the source's split")
        data = data[name]
    for i, record in enumerate(data):
        yield f"{path}[row {i}]", record


def load_checked(source: SourceConfig, check: Callable, report: SkipReport) -> list:
    """(location, checked value) of every good record of a source; bad ones to the report."""
    good = []
    for location, record in read_source(source):
        try:
            if isinstance(record, BadRecord):
                raise record
            good.append((location, check(record)))
        except BadRecord as bad:
            report.bad(location, bad)
    if not good:
        raise DataError(f"{source.path}: no usable records")
    return good


def take(items: list, source: SourceConfig, index: int, seed: int) -> list:
    """The source's share of a mixture: a fraction (repeating when > 1) or a count."""
    n = len(items)
    if source.count is not None:
        want = source.count
    else:
        want = round(n * (1.0 if source.fraction is None else source.fraction))
    order = np.random.default_rng([seed, index]).permutation(n)
    picks = np.concatenate([order] * (want // n) + [order[:want % n]]) if want else order[:0]
    return [items[i] for i in picks]
