"""The run directory's guards: one run at a time (a lock that dies with its process), a resumed
recipe checked key by key against its checkpoint's, and every start's recipe kept."""

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from engine.errors import ConfigError
from engine.launch.run_lock import lock
from engine.recipe import load_recipe
from engine.train.run_dir import _record_recipe, check_resume
from tests.util import ROOT, TINY

HOLD = "import sys, time; from engine.launch.run_lock import lock; lock(__import__('pathlib')." \
       "Path(sys.argv[1])); print('locked', flush=True); time.sleep(600)"


def test_second_run_is_refused_until_the_first_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=f"output_dir={tmp_path} is in use by another run "
                                              f"\\(pid {holder.pid} on "):
            lock(tmp_path)
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # no clean-up runs: the kernel drops the lock
        holder.wait()
    lock(tmp_path)
    assert f"pid {os.getpid()} on " in (tmp_path / "run.lock").read_text()


@pytest.fixture
def recorded():
    return load_recipe(TINY).to_dict()


@pytest.mark.parametrize("overrides, keys", [
    (["model.vocab_size=300"], "model.vocab_size: 265 -> 300"),
    (["data.global_batch_size=8", "seed=7"], "data.global_batch_size: 16 -> 8; seed: 1234 -> 7"),
    (["data.sources=[{path: other.jsonl}]"], "data.sources: "),
    (["optim.lr=1e-4"], "optim.lr: 0.003 -> 0.0001"),
    (["train.max_steps=500"], "train.max_steps: 300 -> 500"),
])
def test_changed_recipe_is_refused_naming_the_keys(recorded, tmp_path, overrides, keys):
    cfg = load_recipe(TINY, overrides)
    with pytest.raises(ConfigError, match="the recipe differs from the one it was trained with "
                                          f"in {keys.replace('[', '.').replace(']', '.')}"):
        check_resume(cfg, recorded, tmp_path / "checkpoints" / "step_3")


def test_run_settings_may_change_and_allowed_sections_too(recorded, tmp_path):
    cfg = load_recipe(TINY, ["parallel.tp=2", "train.log_every=1", "eval.every_steps=5",
                             "data.max_tokens_per_micro_batch=2048", "train.recompute=full"])
    assert check_resume(cfg, recorded, tmp_path) == [
        "data.max_tokens_per_micro_batch: 1024 -> 2048", "eval.every_steps: 0 -> 5",
        "parallel.tp: 1 -> 2", "train.log_every: 25 -> 1", 'train.recompute: "none" -> "full"']
    cfg = load_recipe(TINY, ["optim.lr=1e-4", "optim.decay=linear",
                             "checkpoint.allow_changes=[optim]"])
    changed = check_resume(cfg, recorded, tmp_path)
    assert "optim.lr: 0.003 -> 0.0001" in changed and "optim.decay: \"cosine\" -> \"linear\"" \
        in changed


def test_a_key_added_to_the_engine_since_the_checkpoint_reads_as_its_default(recorded, tmp_path):
    del recorded["rlvr"]["old_logprobs"], recorded["optim"]["warmup_ratio"]
    assert check_resume(load_recipe(TINY), recorded, tmp_path) == []
    with pytest.raises(ConfigError, match='rlvr.old_logprobs: "auto" -> "recompute"'):
        check_resume(load_recipe(TINY, ["rlvr.old_logprobs=recompute"]), recorded, tmp_path)


def test_every_start_keeps_its_recipe(tmp_path):
    first, second = load_recipe(TINY), load_recipe(TINY, ["optim.lr=1e-4"])
    _record_recipe(tmp_path, first, None)
    time.sleep(0.01)
    _record_recipe(tmp_path, second, (40, tmp_path / "checkpoints" / "step_40"))
    history = sorted((tmp_path / "config_history").iterdir())
    assert [p.name for p in history] == ["001.yaml", "002.yaml"]
    assert ", from the start" in history[0].read_text().splitlines()[0]
    assert history[1].read_text().splitlines()[0].endswith(", resumed from step 40")
    assert yaml.safe_load(history[0].read_text())["optim"]["lr"] == 0.003
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["optim"]["lr"] == 1e-4
