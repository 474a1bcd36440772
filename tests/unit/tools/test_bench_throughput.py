"""tools/bench_throughput.py without a GPU: every variant runs once per combination of the
varied recipe keys, with those settings and its own token budget on the command line; the table
shows failures and numbers; bad variant names and --vary items are refused before anything
runs, and a bad value fails its own rows (the engine checks it)."""

import pytest

import tools.bench_throughput as bench
from engine.errors import ConfigError


def test_each_variant_runs_once_per_combination(monkeypatch, tmp_path, capsys):
    commands = []

    def fake_json(cmd):
        commands.append(cmd)
        return {"tokens_per_s_per_gpu": 1000.0, "tflops_per_gpu": 10.0, "mfu": 0.5,
                "peak_memory_gib": 2.0, "seconds_per_step": 0.1,
                "phase_seconds_per_step": {"forward_backward": 0.08, "optimizer": 0.01}}

    monkeypatch.setattr(bench, "_json_of", fake_json)
    assert bench.main(["--variants", "4x4096,1x16384", "--vary", "train.cross_entropy", "te,fused",
                       "--vary", "train.transformer_impl", "local", "--no-peer", "--steps", "1",
                       "--warmup", "0", "--work", str(tmp_path), "train.log_every=5"]) == 0

    def asked(command, key):
        return next(a for a in command if a.startswith(key)).split("=")[1]

    assert [(asked(c, "data.max_tokens_per_micro_batch="), asked(c, "train.cross_entropy="),
             asked(c, "train.transformer_impl=")) for c in commands] == [
        ("4096", "te", "local"), ("4096", "fused", "local"),
        ("16384", "te", "local"), ("16384", "fused", "local")]
    assert all("train.log_every=5" in c for c in commands)
    out = capsys.readouterr().out
    assert ("| engine 1x16384 (train.cross_entropy=fused, train.transformer_impl=local) | 1,000 "
            "| 10 | 50.0% | 2.0 | 0.100 | 0.080 | 0.010 |") in out


def test_a_failed_variant_is_a_row_that_says_so():
    row = bench.table([{"name": "engine 4x4096", "error": "Traceback ...\nCUDA out of memory"}])
    assert "| engine 4x4096 | failed: CUDA out of memory |" in row


@pytest.mark.parametrize("args, message", [
    (["--variants", "2x8192"], "unknown variant '2x8192'"),
    (["--vary", "train.cross_entropy", ","], "--vary takes a recipe key and its values"),
    (["--vary", "train/cross_entropy", "te"], "got train/cross_entropy te"),
])
def test_bad_names_are_refused(args, message):
    with pytest.raises(ConfigError, match=message):
        bench.main([*args, "--no-peer"])
