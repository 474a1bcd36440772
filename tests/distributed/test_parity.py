"""Parallel layouts against a single process: same seed and weights, fp32, 5 steps, through the
same `engine.train` CLI a user runs (torchrun on gloo). Pretraining on documents, and SFT on
chats with each loss reduction, DPO on preference pairs; pretraining also, and DPO only, with the
output layer fused with the loss (`train.cross_entropy=fused`) against one process's megatron
kernel (megatron's kernel at TP2 × PP2 is the pretraining and SFT runs'); pretraining also with
activation recomputation, full and selective."""

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
    # the output layer fused with the loss (never the whole logits), against megatron's kernel
    (2, ["parallel.tp=2", "train.cross_entropy=fused"]),
    (4, ["parallel.tp=2", "parallel.pp=2", "parallel.sp=true",
         "parallel.distributed_optimizer=true", "train.cross_entropy=fused"]),
    # activation recomputation: whole layers (the first of each stage), and submodules
    (4, ["parallel.tp=2", "parallel.pp=2", "parallel.sp=true", "train.recompute=full",
         "train.recompute_layers=1"]),
    (2, ["parallel.tp=2", "parallel.sp=true", "train.recompute=selective",
         "train.recompute_modules=[mlp, core_attn, layernorm]"]),
], ids=["tp2", "pp2", "dp2-distopt", "tp2-pp2-sp-distopt", "tp2-fused", "tp2-pp2-sp-fused",
        "tp2-pp2-sp-recompute-full", "tp2-sp-recompute-selective"])
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
    # token_mean (the default) at TP=2 x PP=2 + SP: test_layout_matches_single_process
    ("sequence_mean", 2, ["parallel.distributed_optimizer=true"], 1e-5),
], ids=["sum-tp2-pp2-sp", "sequence_mean-dp2"])
def test_sft_layout_matches_single_process(tmp_path, reduction, nproc, layout, tolerance):
    steps = SFT_STEPS + [f"train.loss_reduction={reduction}"]
    single = train(tmp_path / "single", steps, recipe=TINY_SFT)
    assert_same_run(single, train(tmp_path / "parallel", steps + layout, nproc=nproc,
                                  recipe=TINY_SFT), tolerance, relative=reduction == "sum")


TINY_DPO = ROOT / "recipes" / "tiny" / "dpo.yaml"
PAIRS = ROOT / "recipes" / "tiny" / "data" / "pref_train.jsonl"
DPO_STEPS = ["model.init_from_checkpoint=null", f"data.sources=[{{path: {PAIRS}, count: 160}}]",
             "train.max_steps=5", "optim.warmup_ratio=null", "optim.warmup_steps=2",
             "eval.sources=[]"]


def test_dpo_layout_matches_single_process(tmp_path):
    """Pairs packed at TP=2 × PP=2 + SP + distributed optimizer, reference log-probs computed
    at each layout, from the fused output layer + loss there: the same losses and rewards as one
    process computing them from the logits."""
    single = train(tmp_path / "single", DPO_STEPS, recipe=TINY_DPO)
    parallel = train(tmp_path / "parallel", DPO_STEPS + [
        "parallel.tp=2", "parallel.pp=2", "parallel.sp=true",
        "parallel.distributed_optimizer=true", "train.cross_entropy=fused"], nproc=4,
        recipe=TINY_DPO)
    assert [r["step"] for r in parallel] == [1, 2, 3, 4, 5]
    for a, b in zip(single, parallel):
        for key in ("loss", "rewards/margin", "rewards/accuracy", "logps/chosen"):
            assert abs(a[key] - b[key]) <= TOLERANCE * max(1.0, abs(a[key])), (key, a, b)
        assert abs(a["grad_norm"] - b["grad_norm"]) <= 1e-4 * a["grad_norm"], (a, b)
        assert a["tokens"] == b["tokens"]
    assert abs(single[-1]["rewards/margin"]) > 1e-3  # the steps did train
