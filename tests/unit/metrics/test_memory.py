"""The per-rank memory estimate: parameter counts equal the built model's, model states and
activations scale with the layout as their definitions say, and the budget search inverts the
step estimate. Its calibration against measured peaks is in the README (H100, 1B shape)."""

import pytest

from engine.metrics.memory import GIB, RESERVE_BYTES, estimate_memory, parameter_counts
from engine.recipe import load_recipe
from tests.util import ROOT, TINY

BENCH = ROOT / "recipes" / "bench" / "llama-1b-shape.yaml"


def test_parameter_count_equals_the_built_model(single_process):
    import torch

    from engine.model.build import build_model

    cfg = load_recipe(TINY)
    model = build_model(cfg, first_stage=True, last_stage=True, device=torch.device("cpu"))
    layer, embedding, output = parameter_counts(cfg)
    padding = (cfg.model.padded_vocab_size(1) - cfg.model.vocab_size) * cfg.model.hidden_size
    built = sum(p.numel() for p in model.parameters())
    assert built == cfg.model.num_layers * layer + embedding + output + padding \
        + cfg.model.hidden_size


def test_llama_1b_shape_counts_as_published():
    cfg = load_recipe(BENCH)
    layer, embedding, output = parameter_counts(cfg)
    assert output == 0  # tied
    assert 16 * layer + embedding + 2048 == pytest.approx(1.2358e9, rel=1e-4)  # Llama-3.2-1B


def test_states_and_activations_follow_the_layout():
    cfg = load_recipe(BENCH)
    one = estimate_memory(cfg, tp=1, pp=1, dp=1)
    assert one.model_state_bytes == one.params_per_rank * 18  # bf16 + fp32 grad + master, m, v
    sharded = estimate_memory(cfg, tp=1, pp=1, dp=4)
    assert sharded.model_state_bytes == sharded.params_per_rank * (6 + 12 / 4)
    cfg.parallel.sp = True
    tp2 = estimate_memory(cfg, tp=2, pp=1, dp=1)
    assert tp2.activation_bytes_per_token == pytest.approx(one.activation_bytes_per_token / 2)
    assert tp2.logits_bytes_per_token == pytest.approx(one.logits_bytes_per_token / 2)
    megatron = estimate_memory(cfg, tp=1, pp=1, dp=1, cross_entropy="megatron")
    assert megatron.logits_bytes_per_token == one.logits_bytes_per_token * 5  # + fp32 x 2


def test_a_fused_head_holds_no_logits_but_a_chunk_and_the_weight_gradient():
    cfg = load_recipe(BENCH)  # 1B shape, bf16, vocabulary 128,256 (padded 128,256), hidden 2,048
    te = estimate_memory(cfg, tp=1, pp=1, dp=1)
    fused = estimate_memory(cfg, tp=1, pp=1, dp=1, cross_entropy="fused")
    assert te.logits_bytes_per_token == 128256 * 2 and te.head_bytes == 0
    assert fused.logits_bytes_per_token == 2048 * 2 + 12  # d(hidden) in bf16, fp32 row stats
    # one 2,048-token chunk of bf16 logits, the fp32 weight gradient and its bf16 cast: 1.47 GiB
    assert fused.head_bytes == 128256 * (2048 * 2 + 2048 * 6)
    assert te.step_bytes(16384) - fused.step_bytes(16384) == pytest.approx(1.89 * GIB, rel=1e-2)


@pytest.mark.parametrize("kernel", ["te", "fused"])
def test_largest_budget_fits_and_the_next_does_not(kernel):
    e = estimate_memory(load_recipe(BENCH), tp=1, pp=1, dp=1, cross_entropy=kernel)
    gpu = 80 * GIB
    budget = e.max_tokens_per_micro_batch(gpu)
    assert budget % 1024 == 0 and budget > 16384
    assert e.step_bytes(budget) <= gpu * 0.92 < e.step_bytes(budget + 1024)
    assert e.max_tokens_per_micro_batch(e.step_bytes(0)) == 0
