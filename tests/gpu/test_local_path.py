"""On a GPU, megatron's local layers (`train.transformer_impl=local`: the engine's RMSNorm and
core attention, torch's varlen FlashAttention for packed bf16) match `transformers`, packed
sequences equal each sequence run alone, and the tiny SFT recipe trains to the CPU run's exact
match with the fused output layer + loss. Skipped without CUDA (the gpu marker)."""

import json

import pytest

from tests.gpu import PARITY_TOLERANCES, assert_matches_transformers, strict_json
from tests.util import ROOT, train

LOCAL = "train.transformer_impl=local"


@pytest.mark.parametrize("precision, tolerance", PARITY_TOLERANCES)
def test_local_path_matches_transformers(hf_models, precision, tolerance):
    assert_matches_transformers(hf_models, precision, tolerance, False, LOCAL)


def test_packed_bf16_equals_alone_through_torch_varlen_attention():
    """Packed: torch's varlen FlashAttention; alone: SDPA. On CPUs the logits' scale is 2.5 and
    dropping the boundaries moves them by 0.72 (measured); bf16 rounding is ~0.01 there."""
    result = strict_json(["tests.scripts.packed_vs_alone", "precision=bf16", LOCAL])
    assert not result["transformer_engine"]
    assert result["max_abs_diff"] <= 0.05, result
    control = strict_json(["tests.scripts.packed_vs_alone", "--one-sequence", "precision=bf16",
                           LOCAL])
    assert control["max_abs_diff"] > 0.2


def test_tiny_sft_local_fused_in_bf16_reaches_the_cpu_exact_match(tmp_path):
    train(tmp_path, ["precision=bf16", LOCAL, "train.cross_entropy=fused"],
          recipe=ROOT / "recipes" / "tiny" / "sft.yaml")
    evals = [json.loads(line) for line in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert evals[0]["eval_exact_match"] < 0.05
    assert evals[-1]["eval_exact_match"] >= 0.80, evals[-1]
