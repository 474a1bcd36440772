"""tools/prepare_data.py: counts of what happened to every example, and packing efficiency on a
Tülu-like long-tailed length distribution (50-4,000 tokens)."""

import json

import numpy as np

from tests.util import ROOT, launch

TINY_SFT = ROOT / "recipes" / "tiny" / "sft.yaml"


def _long_tailed_chats(path, n, seed=0):
    """Conversations whose lengths follow a clipped log-normal (median ~500 tokens, tail to 4k)."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(500), 0.9, size=n), 50, 4000).astype(int)
    with path.open("w") as f:
        for i, total in enumerate(lengths):
            prompt = max(5, int(total * rng.uniform(0.1, 0.5)))
            messages = [{"role": "user", "content": "q" * prompt},
                        {"role": "assistant", "content": "a" * max(1, total - prompt - 30)}]
            f.write(json.dumps({"messages": messages}) + "\n")
    return lengths


def _prepare(tmp_path, *args):
    out = tmp_path / "stats.json"
    proc = launch(["tools.prepare_data", str(TINY_SFT), *args, "--out", str(out)], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc


def test_packing_efficiency_on_tulu_like_lengths(tmp_path):
    _long_tailed_chats(tmp_path / "chats.jsonl", 2048)
    stats, _ = _prepare(tmp_path, f"data.sources=[{{path: {tmp_path / 'chats.jsonl'}}}]",
                        "data.max_seq_len=4096", "data.max_tokens_per_micro_batch=4096",
                        "data.global_batch_size=128", "model.max_position_embeddings=4096",
                        "--world-size", "8")
    assert stats["examples_kept"] == 2048 and stats["truncated"] == 0
    packing = stats["packing"]
    assert packing["steps"] == 16 and stats["data_parallel_size"] == 8
    assert packing["packing_efficiency"] >= 0.95, packing
    assert packing["dp_balance"] > 0.8, packing


def test_counts_skips_truncation_and_drops(tmp_path):
    lines = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        {"messages": [{"role": "user", "content": "x" * 300},
                      {"role": "assistant", "content": "long"}]},  # prompt fills max_seq_len
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a" * 300}]},
        {"messages": [{"role": "user", "content": "only a question"}]},  # nothing to train on
        {"messages": [{"role": "robot", "content": "?"}]},
        {"id": 7},
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n{broken\n")
    stats, proc = _prepare(tmp_path, f"data.sources=[{{path: {path}}}]", "data.max_seq_len=64",
                           "data.on_bad_record=skip")
    assert stats["examples_read"] == 7
    assert stats["skipped"] == {"unknown_role": 1, "missing_messages": 1, "invalid_json": 1,
                                "no_trainable_tokens": 2}
    assert stats["skipped_first"]["invalid_json"].startswith(f"{path}:7: invalid JSON")
    assert stats["truncated"] == 2 and stats["examples_kept"] == 2
    assert json.loads(proc.stdout) == stats
    stats, _ = _prepare(tmp_path, f"data.sources=[{{path: {path}}}]", "data.max_seq_len=64",
                        "data.on_bad_record=skip", "data.overflow=drop")
    assert stats["skipped"]["too_long"] == 2 and stats["examples_kept"] == 1


def test_bad_record_stops_preparation_by_default(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": ""}]}\n')
    proc = launch(["tools.prepare_data", str(TINY_SFT), f"data.sources=[{{path: {path}}}]"],
                  timeout=300)
    assert proc.returncode == 2
    assert f"error: {path}:1: messages[0].content is empty" in proc.stderr
