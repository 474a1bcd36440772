"""Parallel layouts against a single process: same seed and weights, fp32, 5 steps, through the
same `engine.train` CLI a user runs (torchrun on gloo). Pretraining on documents, and SFT on
chats with each loss reduction."""

import pytest

from tests.util import ROOT, train

TINY_SFT = ROOT / "recipes" / "tiny" / "sft.yaml"

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
    assert_same_run(single, train(tmp_path, STEPS + layout, nproc=nproc), TOLERANCE)


def assert_same_run(single, parallel, tolerance, relative=False):
    assert [r["step"] for r in parallel] == [1, 2, 3, 4, 5]
    for a, b in zip(single, parallel):
        scale = abs(a["loss"]) if relative else 1.0
        assert abs(a["loss"] - b["loss"]) <= tolerance * scale, (a, b)
        assert abs(a["grad_norm"] - b["grad_norm"]) <= 1e-4 * a["grad_norm"], (a, b)
        assert a["tokens"] == b["tokens"] and a["target_tokens"] == b["target_tokens"]
    assert single[-1]["loss"] < single[0]["loss"]  # the steps did train


SFT_STEPS = ["train.epochs=null", "train.max_steps=5", "optim.warmup_ratio=null",
             "optim.warmup_steps=2", "eval.sources=[]"]


@pytest.mark.parametrize("reduction, nproc, layout, tolerance", [
    # `sum` losses are ~5,000 per step, so they are compared relatively (measured: <= 1e-7,
    # fp32 rounding of the TP-split vocabulary sums).
    ("sum", 4, ["parallel.tp=2", "parallel.pp=2", "parallel.sp=true",
                "parallel.distributed_optimizer=true"], 1e-6),
    ("token_mean", 4, ["parallel.tp=2", "parallel.pp=2", "parallel.sp=true",
                       "parallel.distributed_optimizer=true"], 1e-5),
    ("sequence_mean", 2, ["parallel.distributed_optimizer=true"], 1e-5),
], ids=["sum-tp2-pp2-sp", "token_mean-tp2-pp2-sp", "sequence_mean-dp2"])
def test_sft_layout_matches_single_process(tmp_path, reduction, nproc, layout, tolerance):
    steps = SFT_STEPS + [f"train.loss_reduction={reduction}"]
    single = train(tmp_path / "single", steps, recipe=TINY_SFT)
    assert_same_run(single, train(tmp_path / "parallel", steps + layout, nproc=nproc,
                                  recipe=TINY_SFT), tolerance, relative=reduction == "sum")
