"""On a GPU with TransformerEngine: the TE layer spec matches `transformers` (fp32 and bf16),
packed THD attention through TE equals each sequence run alone, the tiny SFT recipe trained
in bf16 reaches the exact match of the CPU run (84–88% there), and megatron's cross-entropy and
the fused output layer + loss train as TE's cross-entropy, as does activation recomputation.
Skipped without CUDA (the gpu marker, tests/conftest.py); run on a GPU machine with
`python -m pytest -m gpu`."""

import importlib.util
import json

import pytest

from tests.gpu import PARITY_TOLERANCES, assert_matches_transformers, strict_json
from tests.util import ROOT, train

pytestmark = pytest.mark.skipif(importlib.util.find_spec("transformer_engine") is None,
                                reason="needs TransformerEngine")


@pytest.mark.parametrize("precision, tolerance", PARITY_TOLERANCES)
def test_te_path_matches_transformers(hf_models, precision, tolerance):
    assert_matches_transformers(hf_models, precision, tolerance, True)


def test_packed_equals_alone_through_te_thd_attention():
    result = strict_json(["tests.scripts.packed_vs_alone"])
    assert result["transformer_engine"]
    assert result["max_abs_diff"] <= 1e-4, result
    control = strict_json(["tests.scripts.packed_vs_alone", "--one-sequence"])
    assert control["max_abs_diff"] > 1e-2  # dropping the boundaries is visible


def test_tiny_sft_in_bf16_reaches_the_cpu_exact_match(tmp_path):
    train(tmp_path, ["precision=bf16"], recipe=ROOT / "recipes" / "tiny" / "sft.yaml")
    evals = [json.loads(line) for line in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert evals[0]["eval_exact_match"] < 0.05
    assert evals[-1]["eval_exact_match"] >= 0.80, evals[-1]


@pytest.mark.parametrize("kernel", ["megatron", "fused"])
def test_loss_kernels_train_as_tes(tmp_path, kernel):
    """TE's cross-entropy, megatron's vocab-parallel one and the output layer fused with the
    loss (Triton chunk kernels) compute in fp32 on bf16 logits: the same losses step after
    step."""
    steps = ["precision=bf16", "train.max_steps=6", "optim.warmup_steps=1"]
    te = train(tmp_path / "te", [*steps, "train.cross_entropy=te"])
    other = train(tmp_path / kernel, [*steps, f"train.cross_entropy={kernel}"])
    for a, b in zip(te, other):
        assert abs(a["loss"] - b["loss"]) <= 2e-3 * abs(b["loss"]), (a, b)


@pytest.mark.parametrize("recompute", [["train.recompute=full"],
                                       ["train.recompute=selective",
                                        "train.recompute_modules=[mlp, core_attn]"]])
def test_recomputation_trains_as_without_through_te(tmp_path, recompute):
    """Activation recomputation on TE's layers (megatron's checkpoint with the CUDA RNG state
    saved and restored): the same losses step after step, in bf16."""
    steps = ["precision=bf16", "train.max_steps=6", "optim.warmup_steps=1"]
    plain = train(tmp_path / "plain", steps)
    recomputed = train(tmp_path / "recomputed", [*steps, *recompute])
    for a, b in zip(plain, recomputed):
        assert abs(a["loss"] - b["loss"]) <= 1e-3 * abs(a["loss"]), (a, b)
