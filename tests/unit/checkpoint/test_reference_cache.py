"""The reference log-prob cache: keyed by example content, merged across runs, one file per model
identity, and never used when its record disagrees or cannot be read."""

import json

import numpy as np
import pytest

from engine.checkpoint.reference_cache import ReferenceCache, example_key, files_fingerprint
from engine.errors import CheckpointError

IDENTITY = {"weights": {"random_init_seed": 1}, "precision": "fp32"}


def test_example_keys_follow_tokens_and_mask_only():
    ids, mask = np.array([1, 2, 3], dtype=np.int32), np.array([False, True])
    assert example_key(ids, mask) == example_key(ids.astype(np.int64), mask.astype(int))
    assert example_key(ids, mask) != example_key(ids, np.array([True, True]))
    assert example_key(ids, mask) != example_key(np.array([1, 2, 4]), mask)


def test_store_lookup_merge_and_reload(tmp_path):
    cache = ReferenceCache(tmp_path, IDENTITY)
    assert cache.lookup(["a", "b"]) == {}
    cache.store(["a", "b"], np.array([-1.5, -2.25]))
    cache.store(["c"], np.array([-3.0]))
    again = ReferenceCache(tmp_path, IDENTITY)
    assert again.lookup(["a", "c", "z"]) == {"a": -1.5, "c": -3.0}
    other = ReferenceCache(tmp_path, {**IDENTITY, "precision": "bf16"})  # another file
    assert other.values != cache.values and other.lookup(["a"]) == {}


def test_disagreeing_or_unreadable_cache_is_an_error(tmp_path):
    cache = ReferenceCache(tmp_path, IDENTITY)
    cache.store(["a"], np.array([-1.0]))
    cache.record.write_text(json.dumps({**IDENTITY, "precision": "bf16"}))
    with pytest.raises(CheckpointError, match="computed for another model"):
        ReferenceCache(tmp_path, IDENTITY)
    cache.record.write_text(json.dumps(IDENTITY))
    cache.values.write_bytes(b"not an npz")
    with pytest.raises(CheckpointError, match="cannot be read"):
        ReferenceCache(tmp_path, IDENTITY)


def test_files_fingerprint_sees_content(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\1\2\3")
    (tmp_path / "notes.txt").write_text("ignored")
    before = files_fingerprint(tmp_path, ("*.safetensors",))
    (tmp_path / "notes.txt").write_text("still ignored")
    assert files_fingerprint(tmp_path, ("*.safetensors",)) == before
    (tmp_path / "model.safetensors").write_bytes(b"\1\2\4")
    assert files_fingerprint(tmp_path, ("*.safetensors",)) != before
