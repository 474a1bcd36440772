"""The run directory through the CLI: a second run on a directory in use stops at once, a
resume with another recipe or other data stops naming what changed (until allowed), a finished
run says so, and nothing of the first run is lost on the way."""

import json
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from tests.unit.train.test_run_dir import HOLD
from tests.util import ROOT, TINY, launch, train

STEPS = ["train.max_steps=2", "optim.warmup_steps=1", "train.log_every=1"]


def _one_error(proc) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return errors[0]


def _run(out, *overrides):
    return launch(["engine.train", str(TINY), f"output_dir={out}", *STEPS, *overrides],
                  timeout=300)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished")
    train(out, STEPS)
    return out


def test_a_directory_in_use_is_refused_at_once(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.time()
        error = _one_error(_run(tmp_path))
        assert f"output_dir={tmp_path} is in use by another run (pid {holder.pid}" in error
        assert time.time() - start < 60
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.lock"]  # nothing else written


def test_changed_recipe_is_refused_and_nothing_is_overwritten(finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    before = {name: (out / name).read_text() for name in ("config.yaml", "metrics.jsonl")}
    error = _one_error(_run(out, "model.vocab_size=300", "data.global_batch_size=8"))
    assert "the recipe differs from the one it was trained with in data.global_batch_size: " \
           "16 -> 8; model.vocab_size: 265 -> 300" in error
    assert "checkpoint.allow_changes=[data, model]" in error
    assert {name: (out / name).read_text() for name in before} == before
    assert len(list((out / "config_history").iterdir())) == 1


def test_finished_run_says_so_and_longer_run_needs_allowing(finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    again = _run(out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already finished: step 2 of 2" in again.stdout
    assert (out / "metrics.jsonl").read_text() == (finished / "metrics.jsonl").read_text()
    assert "train.max_steps: 2 -> 3" in _one_error(_run(out, "train.max_steps=3"))
    longer = train(out, STEPS + ["train.max_steps=3", "checkpoint.allow_changes=[train]"])
    assert [m["step"] for m in longer] == [1, 2, 3]
    history = sorted((out / "config_history").iterdir())
    assert len(history) == 3  # the first start, the finished re-run, the longer run
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["max_steps"] == 3


def test_changed_data_content_is_refused(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    lines = (ROOT / "recipes" / "tiny" / "data" / "corpus.jsonl").read_text().splitlines()
    corpus.write_text("\n".join(lines[:200]) + "\n")
    out = tmp_path / "run"
    train(out, STEPS + [f"data.sources=[{{path: {corpus}}}]"])
    corpus.write_text("\n".join(lines[1:201]) + "\n")  # same file, same size of data
    error = _one_error(_run(out, f"data.sources=[{{path: {corpus}}}]"))
    assert "the prepared data differ from the data it was trained on" in error
    stats = json.loads((out / "data_stats.json").read_text())
    assert stats["examples_read"] == 200 and len(stats["fingerprint"]) == 32
