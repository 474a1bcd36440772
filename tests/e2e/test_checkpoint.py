"""Checkpoints: atomic saves, automatic resume, exact continuation (same layout: bit-identical;
another layout: within fp32 reduction noise), SIGTERM preemption and Ctrl-C (SIGUSR1 through a
real sbatch job: test_slurm.py), damaged checkpoints, a full disk."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from engine.checkpoint.train_state import complete_checkpoints, latest
from engine.train.signals import EXIT_REQUEUE
from tests.util import ROOT, TINY, slurm_tasks, train

STEPS = ["train.max_steps=6", "optim.warmup_steps=1", "train.log_every=1"]


def _metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _resume_from(straight, out, step):
    """A copy of a finished run dir cut back to checkpoint `step`, as if killed after it."""
    shutil.copytree(straight, out)
    for s, path in complete_checkpoints(out / "checkpoints"):
        if s > step:
            shutil.rmtree(path)
    assert latest(out / "checkpoints")[0] == step


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    train(out, STEPS + ["checkpoint.every_steps=2", "checkpoint.keep_last=3"])
    return out


def test_saves_are_complete_and_pruned(straight):
    found = complete_checkpoints(straight / "checkpoints")
    assert [s for s, _ in found] == [2, 4, 6]  # keep_last=3, the last one at the end
    assert not list((straight / "checkpoints").glob("*.tmp"))


def test_resume_is_bit_identical(straight, tmp_path):
    _resume_from(straight, tmp_path / "run", 4)
    resumed = train(tmp_path / "run", STEPS + ["checkpoint.every_steps=2"])
    a, b = _metrics(straight), resumed
    assert [m["step"] for m in b] == [1, 2, 3, 4, 5, 6]  # later records were replaced, not doubled
    for x, y in zip(a, b):
        assert (x["loss"], x["grad_norm"], x["lr"]) == (y["loss"], y["grad_norm"], y["lr"])
    assert "resumed from" in (tmp_path / "run" / "train.log").read_text()


def test_interrupted_save_is_ignored(straight, tmp_path):
    """What kill -9 during a save leaves: step_N.tmp with partial files. The previous complete
    checkpoint stays the newest, and the run resumes from it."""
    _resume_from(straight, tmp_path / "run", 4)
    partial = tmp_path / "run" / "checkpoints" / "step_6.tmp"
    partial.mkdir()
    (partial / "__0_0.distcp").write_bytes(b"\0" * 100)
    assert latest(tmp_path / "run" / "checkpoints")[0] == 4
    resumed = train(tmp_path / "run", STEPS)
    assert [m["loss"] for m in resumed] == [m["loss"] for m in _metrics(straight)]


def test_distributed_optimizer_resume_same_and_other_layout(tmp_path):
    layout = ["parallel.distributed_optimizer=true", "checkpoint.every_steps=2"]
    straight = tmp_path / "straight"
    expected = train(straight, STEPS + layout, nproc=2)
    # Same layout (DP=2): bit-identical, Adam's step counter included.
    _resume_from(straight, tmp_path / "same", 4)
    same = train(tmp_path / "same", STEPS + layout, nproc=2)
    assert [m["loss"] for m in same] == [m["loss"] for m in expected]
    # Another layout (TP=2 × PP=2 + SP): within reduction-order noise.
    _resume_from(straight, tmp_path / "other", 4)
    other = train(tmp_path / "other", STEPS + layout + ["parallel.tp=2", "parallel.pp=2",
                                                        "parallel.sp=true"], nproc=4)
    for x, y in zip(expected, other):
        assert abs(x["loss"] - y["loss"]) <= 1e-5, (x, y)


# SIGUSR1, what slurm/train.sbatch asks Slurm to send, is sent through a real sbatch job in
# tests/e2e/test_slurm.py; the handler treats it as SIGTERM.
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_saves_and_exits_for_requeue(straight, tmp_path, sig):
    """Slurm signals every task before preemption or the time limit: the run checkpoints at the
    next step boundary, exits with EXIT_REQUEUE, and the requeued run continues exactly."""
    out = tmp_path / "run"
    tasks = slurm_tasks([str(TINY), f"output_dir={out}", *STEPS, "parallel.tp=2"], ntasks=2)
    deadline = time.time() + 240
    while time.time() < deadline:  # wait for the first step, then signal every task
        if (out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text().strip():
            break
        time.sleep(0.2)
    for task in tasks:
        task.send_signal(sig)
    for task in tasks:
        _, err = task.communicate(timeout=240)
        assert task.returncode == EXIT_REQUEUE, err[-3000:]
    step = latest(out / "checkpoints")[0]
    assert 1 <= step < 6
    assert f"stop signal: checkpoint at step {step}" in (out / "train.log").read_text()
    resumed = train(out, STEPS + ["parallel.tp=2"], nproc=2)
    for x, y in zip(_metrics(straight), resumed):
        assert abs(x["loss"] - y["loss"]) <= 1e-5, (x, y)


def test_kill_9_at_any_moment_then_resume(straight, tmp_path):
    """SIGKILL (no chance to clean up) at random moments of a run that saves every step — most
    land inside a save, which takes longer than a tiny step. Whatever is left, the next start
    resumes from the newest complete checkpoint and the run ends with the straight run's losses.
    The whole process group is killed, as Slurm kills a job: megatron's checkpoint writer may
    run in a forked child that would otherwise outlive its parent."""
    out = tmp_path / "run"
    args = ["-m", "engine.train", str(TINY), f"output_dir={out}", *STEPS,
            "checkpoint.every_steps=1"]
    rng = random.Random(0)
    for attempt in range(2):
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        metrics = out / "metrics.jsonl"
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if metrics.exists() and len(metrics.read_text().splitlines()) > 2 * attempt + 1:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.05, 0.5))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        found = latest(out / "checkpoints")
        assert found is not None and (found[1] / "metadata.json").is_file()
    resumed = train(out, STEPS + ["checkpoint.every_steps=1"])
    assert [m["loss"] for m in resumed] == [m["loss"] for m in _metrics(straight)]


def _zero(path):
    path.write_bytes(b"\0" * path.stat().st_size)


@pytest.mark.parametrize("damage", [
    lambda ckpt: _zero(sorted(ckpt.glob("*.distcp"))[0]),   # same size, other bytes
    lambda ckpt: (ckpt / "common.pt").unlink(),
], ids=["zeroed-shard", "missing-common"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous(straight, tmp_path, damage):
    """The newest checkpoint's files no longer match its manifest: it is set aside as
    step_6.damaged and the run resumes from step_4, ending with the straight run's losses. A
    torn last line in metrics.jsonl (a write cut short) is dropped, not fatal."""
    out = tmp_path / "run"
    shutil.copytree(straight, out)
    damage(out / "checkpoints" / "step_6")
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"step": 7, "lo')
    resumed = train(out, STEPS + ["checkpoint.every_steps=2"])
    assert [m["loss"] for m in resumed] == [m["loss"] for m in _metrics(straight)]
    log = (out / "train.log").read_text()
    assert "checkpoint" in log and "step_6 is damaged" in log and "resumed from" in log
    assert (out / "checkpoints" / "step_6.damaged").is_dir()
    assert "metrics.jsonl:7: dropped an unreadable record" in log


def test_no_intact_checkpoint_is_an_error(straight, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(straight, out)
    for ckpt in (out / "checkpoints").iterdir():
        _zero(sorted(ckpt.glob("*.distcp"))[0])
    proc = subprocess.run([sys.executable, "-m", "engine.train", str(TINY), f"output_dir={out}",
                           *STEPS], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"error: {out / 'checkpoints'}: no intact checkpoint to resume from" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_full_disk_is_named(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                                            str(small)], capture_output=True).returncode:
        pytest.skip("needs root to mount a 1 MB tmpfs")
    try:
        proc = subprocess.run([sys.executable, "-m", "engine.train", str(TINY),
                               f"output_dir={small / 'run'}", *STEPS], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert f"error: cannot save checkpoint step 6 in {small / 'run' / 'checkpoints'}: no " \
               f"space left on device" in proc.stderr and "Traceback" not in proc.stderr
        assert not list((small / "run" / "checkpoints").iterdir())  # the partial save removed
    finally:
        subprocess.run(["umount", str(small)], check=True)
