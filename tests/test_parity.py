"""Parallel layouts against a single process: same seed and weights, fp32, 5 steps, through the
same `engine.train` CLI a user runs (torchrun on gloo)."""

import pytest

from tests.util import train

STEPS = ["train.max_steps=5", "optim.warmup_steps=2", "train.log_every=1"]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return train(tmp_path_factory.mktemp("single"), STEPS)


@pytest.mark.parametrize("nproc, layout", [
    (2, ["parallel.tp=2"]),
    (2, ["parallel.pp=2"]),
    (2, ["parallel.distributed_optimizer=true"]),  # DP=2
    (4, ["parallel.tp=2", "parallel.pp=2", "parallel.sp=true",
         "parallel.distributed_optimizer=true"]),
], ids=["tp2", "pp2", "dp2-distopt", "tp2-pp2-sp-distopt"])
def test_layout_matches_single_process(single, tmp_path, nproc, layout):
    parallel = train(tmp_path, STEPS + layout, nproc=nproc)
    assert [r["step"] for r in parallel] == [1, 2, 3, 4, 5]
    for a, b in zip(single, parallel):
        assert abs(a["loss"] - b["loss"]) <= TOLERANCE, (a, b)
        assert abs(a["grad_norm"] - b["grad_norm"]) <= 1e-4 * a["grad_norm"], (a, b)
        assert a["tokens"] == b["tokens"]
    assert single[-1]["loss"] < single[0]["loss"]  # the steps did train
