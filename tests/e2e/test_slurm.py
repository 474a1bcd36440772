"""slurm/train.sbatch on a real one-node Slurm cluster: sbatch with 2 tasks, SIGUSR1 as before a
time limit, checkpoint + requeue, resume, and the same losses as an uninterrupted run.

Needs root and Debian's slurmctld, slurmd, slurm-client and munge (.ci/run installs them).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.util import ROOT, TINY, free_port, train

CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
STEPS = ["train.max_steps=6", "optim.warmup_steps=1", "train.log_every=1"]

pytestmark = pytest.mark.skipif(
    shutil.which("slurmctld") is None or os.geteuid() != 0,
    reason="needs root and Slurm (slurmctld, slurmd, munge); .ci/run installs them")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    state = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "SLURMCTLD_PORT": str(free_port()), "SLURMD_PORT": str(free_port())}
    subprocess.run(["bash", str(CLUSTER), "start", str(state)], check=True, env=env,
                   timeout=120)
    yield {**os.environ, "SLURM_CONF": str(state / "slurm.conf"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "TEST_SLURM_STATE": str(state)}
    subprocess.run(["bash", str(CLUSTER), "stop", str(state)], check=False, timeout=60)


def _slurm(env, *args) -> str:
    return subprocess.run(list(args), env=env, check=True, capture_output=True, text=True,
                          timeout=60).stdout


def _job(env, job_id) -> dict:
    text = _slurm(env, "scontrol", "show", "job", job_id)
    return dict(re.findall(r"(\w+)=(\S+)", text))


def _wait(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_sbatch_preempt_requeue_resume(slurm, tmp_path):
    straight = train(tmp_path / "straight", STEPS)
    out, log = tmp_path / "job", tmp_path / "job.out"
    job_id = _slurm(slurm, "sbatch", "--parsable", "--ntasks-per-node=2", "--cpus-per-task=1",
                    "--gpus-per-node=0", f"--output={log}", str(ROOT / "slurm/train.sbatch"),
                    str(TINY), f"output_dir={out}", *STEPS, "parallel.tp=2").strip()
    metrics = out / "metrics.jsonl"
    _wait(lambda: metrics.exists() and metrics.read_text().strip(), 240, "the first step")
    _slurm(slurm, "scancel", "--signal=USR1", job_id)  # what --signal=USR1@300 sends
    _wait(lambda: _job(slurm, job_id).get("Restarts") == "1"
          and _job(slurm, job_id)["JobState"] == "PENDING", 240, "the requeue")
    # Slurm holds a requeued job for two minutes before it is eligible again; start it sooner.
    # Not at once: the requeue revoked the old launch credential, and slurmd refuses (job
    # FAILED, "Job credential revoked") a credential issued within the same second.
    _slurm(slurm, "scontrol", "update", f"jobid={job_id}", "StartTime=now+3")
    _wait(lambda: _job(slurm, job_id)["JobState"] in ("COMPLETED", "FAILED", "CANCELLED"),
          300, "the job to finish")
    text = log.read_text()
    if _job(slurm, job_id)["JobState"] != "COMPLETED":
        state = Path(slurm["TEST_SLURM_STATE"])
        daemons = "".join(f"\n--- {name}\n" + (state / name).read_text()[-4000:]
                          for name in ("slurmctld.log", "slurmd.log"))
        raise AssertionError(f"{_job(slurm, job_id)}\n--- job log\n{text[-3000:]}{daemons}")
    assert "requeueing" in text and "resumed from" in text and "restart 1" in text
    resumed = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [m["step"] for m in resumed] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(straight, resumed):
        assert abs(a["loss"] - b["loss"]) <= 1e-5, (a, b)
