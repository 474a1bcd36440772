"""End to end on the tiny recipe: the model learns, the run dir is complete, bf16 and Slurm-style
launches work, and a diverging run or one out of GPU memory stops with one clear error."""

import json
import math

import yaml

from engine.cli import EXIT_BAD_INPUT
from tests.util import TINY, launch, slurm_tasks, train


def test_tiny_run_learns_and_writes_the_run_dir(tmp_path):
    metrics = train(tmp_path, ["train.max_steps=40", "optim.warmup_steps=5", "train.log_every=10"])
    assert [m["step"] for m in metrics] == list(range(1, 41))
    for key in ("step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s",
                "packing_efficiency"):
        assert all(key in m for m in metrics), key
    assert metrics[0]["loss"] > 5.0  # ~ln(262) at random init
    assert metrics[-1]["loss"] < 0.6 * metrics[0]["loss"]
    assert all(0.5 < m["packing_efficiency"] <= 1.0 for m in metrics)
    resolved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert resolved["train"]["max_steps"] == 40 and resolved["output_dir"] == str(tmp_path)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    log = (tmp_path / "train.log").read_text()
    assert "step 40/40" in log and "platform: device=" in log


def test_bf16_trains_on_cpu(tmp_path):
    fp32 = train(tmp_path / "fp32", ["train.max_steps=3", "optim.warmup_steps=1"])
    bf16 = train(tmp_path / "bf16", ["train.max_steps=3", "optim.warmup_steps=1",
                                     "precision=bf16"])
    assert all(math.isfinite(m["loss"]) for m in bf16)
    assert abs(bf16[0]["loss"] - fp32[0]["loss"]) < 0.05  # same weights, bf16 rounding
    assert bf16[-1]["loss"] < bf16[0]["loss"]


def test_slurm_style_launch(tmp_path):
    """Two tasks as `srun` starts them: SLURM_* variables, no torchrun."""
    single = train(tmp_path / "single", ["train.max_steps=2", "optim.warmup_steps=1"])
    out = tmp_path / "slurm"
    for task in slurm_tasks([str(TINY), f"output_dir={out}", "train.max_steps=2",
                             "optim.warmup_steps=1", "parallel.tp=2"], ntasks=2):
        _, err = task.communicate(timeout=300)
        assert task.returncode == 0, err[-3000:]
    slurm = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in slurm] == [1, 2]
    for a, b in zip(single, slurm):
        assert abs(a["loss"] - b["loss"]) <= 1e-5
    assert "world=2 tp=2" in (out / "train.log").read_text()


def test_tiny_sft_answers_better_after_training(tiny_sft_run):
    evals = [json.loads(line) for line in (tiny_sft_run / "eval.jsonl").read_text().splitlines()]
    before, after = evals[0], evals[-1]
    assert before["step"] == 0 and after["step"] == 125
    assert after["eval_loss"] < 0.5 * before["eval_loss"]
    assert after["eval_exact_match"] > before["eval_exact_match"] + 0.05  # measured: 0 -> 0.08
    stats = json.loads((tiny_sft_run / "data_stats.json").read_text())
    assert stats["examples_kept"] == 4000 and stats["skipped"] == {}


def test_a_diverging_run_skips_its_nonfinite_steps_then_stops_with_one_error(tmp_path):
    """An absurd learning rate: step 1's update blows the weights up, steps 2-4 are skipped
    (weights unchanged, so their losses stay finite), and step 5 ends the run on both TP ranks
    (started as srun starts them) with the engine's one-line error and exit status 2."""
    tasks = slurm_tasks([str(TINY), f"output_dir={tmp_path}", "optim.lr=1e25",
                         "optim.warmup_steps=0", "train.max_steps=20",
                         "train.max_skipped_in_a_row=3", "parallel.tp=2"], ntasks=2)
    for task in tasks:
        _, err = task.communicate(timeout=300)
        assert task.returncode == EXIT_BAD_INPUT, err[-3000:]
        assert "Traceback" not in err
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and errors[0].startswith(
            "error: step 5: non-finite gradients (grad_norm nan) at steps 2-5, 4 in a row "
            "(train.max_skipped_in_a_row=3)"), err[-3000:]
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["skipped"] for m in metrics] == [False, True, True, True, True]
    assert all(math.isfinite(m["loss"]) for m in metrics)
    assert all(math.isnan(m["grad_norm"]) for m in metrics[1:])
    assert "step 2: non-finite gradients (grad_norm nan): update skipped" in \
        (tmp_path / "train.log").read_text()


def test_out_of_gpu_memory_ends_the_run_with_one_line(tmp_path):
    """torch's out-of-memory error raised in step 2's forward-backward (injected: these machines
    have no GPU) ends the run with status 2 and one line naming where, without a traceback."""
    proc = launch(["tests.scripts.out_of_memory_at_step", "2", str(TINY), f"output_dir={tmp_path}",
                   "train.max_steps=4", "optim.warmup_steps=1"])
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(
        "error: rank 0: out of GPU memory in engine/train/step.py:"), proc.stderr[-3000:]
    assert "(__call__): CUDA out of memory. Tried to allocate 7.83 GiB." in errors[0]
    assert errors[0].endswith("or set parallel.distributed_optimizer=true")
    steps = [json.loads(line)["step"] for line in
             (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1]
