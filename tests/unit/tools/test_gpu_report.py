"""tools/gpu_report.py without a GPU: a part's process ends ok, failed or out of time, and the
report says which with the end of its output; a budget cuts the parts' limits and skips what no
longer fits; bad parts, limits and budgets are refused before anything runs, and so is a machine
without CUDA."""

import sys

import pytest
import torch

import tools.gpu_report as gpu_report
from engine.errors import ConfigError


@pytest.mark.parametrize("code, limit, status", [
    ("print('| row |')", 30, "ok"),
    ("import sys; print('| row |'); sys.exit(3)", 30, "failed (exit 3)"),
    ("import time; print('| row |', flush=True); time.sleep(30)", 1.5, "out of time (1.5 s)"),
])
def test_a_part_reports_how_it_ended_and_what_it_printed(tmp_path, code, limit, status):
    result = gpu_report.run_part("throughput", [sys.executable, "-c", code], limit, tmp_path)
    assert result.status == status
    assert result.seconds < 20
    assert (tmp_path / "throughput.txt").read_text() == "| row |\n" == result.output
    text = gpu_report.report("H200; torch 2.11", [result])
    assert f"## throughput: {status}," in text and "| row |" in text


def test_the_report_keeps_the_end_of_long_output():
    lines = "\n".join(f"line {i}" for i in range(100))
    text = gpu_report.report("dev", [gpu_report.PartResult("tests", ["pytest"], "ok", 1.0, lines)])
    assert "line 99" in text and f"line {99 - gpu_report.TAIL_LINES + 1}" in text
    assert f"line {99 - gpu_report.TAIL_LINES}\n" not in text


@pytest.mark.parametrize("quick", [False, True])
def test_every_part_has_a_command_and_a_limit(tmp_path, quick):
    commands = gpu_report.commands(tmp_path, "peer.py", quick)
    assert list(commands) == list(gpu_report.PARTS)
    assert set(gpu_report.PARTS) == set(gpu_report.LIMITS_S) == set(gpu_report.QUICK_LIMITS_S)
    assert "--peer" in commands["throughput"] and "peer.py" in commands["throughput"]
    assert str(tmp_path / "rlvr.json") in commands["rlvr"]
    assert "--no-peer" in gpu_report.commands(tmp_path, None, quick)["throughput"]
    variants = commands["throughput"][commands["throughput"].index("--variants") + 1]
    assert ("4x4096" in variants) is not quick and "1x16384-packed" in variants
    assert sum(gpu_report.QUICK_LIMITS_S[p] for p in ("throughput", "rlvr", "local")) <= 540


def test_a_budget_cuts_limits_and_skips_what_no_longer_fits(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_report, "SHORTEST_PART_S", 2)
    sleep = [sys.executable, "-c", "import time; print('| row |', flush=True); time.sleep(30)"]
    quick = [sys.executable, "-c", "print('| row |')"]
    results = gpu_report.run_parts({"throughput": quick, "rlvr": sleep, "tests": quick},
                                   {"throughput": 30, "rlvr": 30, "tests": 30}, tmp_path, "dev",
                                   budget=4.5)
    assert [r.status for r in results][0] == "ok"
    assert results[1].status in ("out of time (4 s)", "out of time (3 s)")
    assert results[2].status.startswith("not run (") and results[2].output == ""
    assert results[1].seconds < 10
    report = (tmp_path / "report.md").read_text()
    assert "## tests: not run (" in report and "## rlvr: out of time" in report


@pytest.mark.parametrize("args, message", [
    (["--parts", "throughput,speed"], "unknown part 'speed'"),
    (["--limit", "rlvr=soon"], "--limit takes PART=SECONDS"),
    (["--limit", "bench=10"], "--limit takes PART=SECONDS"),
    (["--peer", "missing/peer.py"], "peer script not found: missing/peer.py"),
    (["--budget", "30"], "--budget must leave at least 60 s"),
])
def test_bad_parts_and_limits_are_refused(args, message):
    with pytest.raises(ConfigError, match=message):
        gpu_report.main(args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_a_machine_without_cuda_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no CUDA device"):
        gpu_report.main(["--out", str(tmp_path)])
