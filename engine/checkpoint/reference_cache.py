"""On-disk cache of reference log-probs, keyed by example and by the model that computed them.

    cache = ReferenceCache(directory, identity)        # identity: model, weights, tokenizer, ...
    known = cache.lookup(keys)                          # {example key: log-prob} already cached
    cache.store(new_keys, new_values)                   # merged and written atomically

`identity` is a JSON-able description of everything that decides the values (the initial
weights' content fingerprint, the model config, precision, tokenizer, template); its digest names
the cache file, so a run from other weights or data reads another file and computes afresh. The
file records its identity: one whose record disagrees with the identity its name claims, or that
cannot be read, is an error naming it — a cache is never used silently when it might be stale.
Example keys digest a sequence's token ids and loss mask, so they do not depend on order,
mixture or layout.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from engine.errors import CheckpointError

_CHUNK = 16 * 2**20


def example_key(ids: np.ndarray, mask: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(np.asarray(ids, dtype=np.int64).tobytes())
    h.update(np.asarray(mask, dtype=bool).tobytes())
    return h.hexdigest()


def files_fingerprint(directory: str | Path, patterns: tuple[str, ...]) -> str:
    """A digest of the names and bytes of the files matching `patterns` in `directory`."""
    h = hashlib.blake2b(digest_size=16)
    paths = sorted({p for pattern in patterns for p in Path(directory).glob(pattern)})
    for path in paths:
        h.update(path.name.encode())
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


class ReferenceCache:
    def __init__(self, directory: str | Path, identity: dict):
        self.identity = identity
        self.digest = hashlib.blake2b(json.dumps(identity, sort_keys=True).encode(),
                                      digest_size=12).hexdigest()
        self.dir = Path(directory)
        self.values = self.dir / f"{self.digest}.npz"
        self.record = self.dir / f"{self.digest}.json"
        self.cached: dict[str, float] = self._read()

    def _read(self) -> dict[str, float]:
        """What the cache holds; its record is written before its values, so a record without
        values is an empty cache, and values without a record are not to be trusted."""
        if not self.record.exists() and not self.values.exists():
            return {}
        try:
            recorded = json.loads(self.record.read_text())
            if recorded != self.identity:
                raise CheckpointError(f"{self.record}: the cache was computed for another model "
                                      f"than its name says; delete it to recompute")
            if not self.values.exists():
                return {}
            with np.load(self.values) as stored:
                keys, logps = stored["keys"], stored["logps"]
        except (OSError, ValueError, KeyError) as e:
            raise CheckpointError(f"{self.dir}: reference cache {self.digest} cannot be read "
                                  f"({e}); delete it to recompute") from None
        return dict(zip(keys.tolist(), logps.tolist()))

    def lookup(self, keys: list[str]) -> dict[str, float]:
        return {k: self.cached[k] for k in keys if k in self.cached}

    def store(self, keys: list[str], logps: np.ndarray) -> None:
        """Merge and write (call on one rank)."""
        self.cached.update(zip(keys, np.asarray(logps, dtype=np.float64).tolist()))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.record.write_text(json.dumps(self.identity, indent=1, sort_keys=True))
        tmp = self.dir / f"{self.digest}.tmp.npz"
        np.savez(tmp, keys=np.asarray(list(self.cached)), logps=np.asarray(
            list(self.cached.values()), dtype=np.float64))
        os.replace(tmp, self.values)
