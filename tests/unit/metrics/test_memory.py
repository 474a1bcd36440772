"""The per-rank memory estimate: parameter counts equal the built model's, model states and
activations scale with the layout as their definitions say, and the budget search inverts the
step estimate. Its calibration against measured peaks is in the README (H100, 1B shape)."""

import dataclasses

import pytest

from engine.metrics.memory import (GIB, RESERVE_BYTES, estimate_memory, parameter_counts,
                                   params_per_rank)
from engine.recipe import load_recipe
from engine.train.critic import value_model_config
from tests.util import ROOT, TINY

BENCH = ROOT / "recipes" / "bench" / "llama-1b-shape.yaml"


@pytest.mark.parametrize("head", ["lm", "value"])
def test_parameter_count_equals_the_built_model(single_process, head):
    import torch

    from engine.model.build import build_model

    cfg = load_recipe(TINY)
    if head == "value":  # PPO's value model: the policy's architecture with a scalar head
        cfg = dataclasses.replace(cfg, model=value_model_config(cfg))
    m = cfg.model
    model = build_model(cfg, first_stage=True, last_stage=True, device=torch.device("cpu"))
    layer, embedding, output = parameter_counts(m)
    padding = (m.padded_vocab_size(1) - m.vocab_size) * m.hidden_size
    if head == "value":
        padding += (m.padded_output_size(1) - 1) * m.hidden_size
    built = sum(p.numel() for p in model.parameters())
    assert built == m.num_layers * layer + embedding + output + padding + m.hidden_size
    assert params_per_rank(m, tp=1, pp=1) == built - padding


def test_llama_1b_shape_counts_as_published():
    cfg = load_recipe(BENCH)
    layer, embedding, output = parameter_counts(cfg.model)
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


def test_recomputation_keeps_what_its_definition_says():
    """1B shape, bf16: a layer saves 4h (norms) + 2q + 2kv (attention) + 3·ffn (MLP) elements per
    token; selective mlp drops the 3·ffn, layernorm 2h of the norms; full keeps h per recomputed
    layer; the recomputed part of one layer joins the transient bytes."""
    cfg = load_recipe(BENCH)
    h, q, kv, ffn, layers = 2048, 2048, 512, 8192, 16
    layer = (4 * h + 2 * q + 2 * kv + 3 * ffn) * 2
    none = estimate_memory(cfg, tp=1, pp=1, dp=1)
    assert none.activation_bytes_per_token == layers * layer
    assert none.transient_bytes_per_token == layer

    def estimate(**train):
        return estimate_memory(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train,
                                                                                  **train)),
                               tp=1, pp=1, dp=1)

    mlp = estimate(recompute="selective", recompute_modules=["mlp"])
    assert mlp.activation_bytes_per_token == layers * (layer - 3 * ffn * 2)
    assert mlp.transient_bytes_per_token == layer + 3 * ffn * 2
    both = estimate(recompute="selective", recompute_modules=["mlp", "layernorm", "core_attn"])
    assert both.activation_bytes_per_token == layers * (layer - (3 * ffn + 2 * h) * 2)
    full = estimate(recompute="full")
    assert full.activation_bytes_per_token == layers * h * 2
    assert full.transient_bytes_per_token == 2 * layer
    quarter = estimate(recompute="full", recompute_layers=4)
    assert quarter.activation_bytes_per_token == layers * (h * 2 / 4 + layer * 3 / 4)
    assert full.model_state_bytes == none.model_state_bytes


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


def test_a_frozen_reference_adds_its_weights_and_a_value_model_its_states():
    cfg = load_recipe(BENCH)  # bf16
    policy = estimate_memory(cfg, tp=2, pp=1, dp=4)
    value = value_model_config(cfg)
    grpo = estimate_memory(cfg, tp=2, pp=1, dp=4, frozen=[cfg.model])
    assert grpo.other_models_bytes == policy.params_per_rank * 2  # bf16 weights, nothing else
    ppo = estimate_memory(cfg, tp=2, pp=1, dp=4, frozen=[cfg.model], trained=[value])
    value_params = params_per_rank(value, tp=2, pp=1)
    assert ppo.other_models_bytes == grpo.other_models_bytes + value_params * (2 + 4 + 12 / 4)
    assert ppo.model_state_bytes == policy.model_state_bytes  # the policy's own, apart
    assert ppo.step_bytes(0) - policy.step_bytes(0) == ppo.other_models_bytes
    # the value model's micro-batches follow the policy's: per token the larger of the two
    assert ppo.bytes_per_token == policy.bytes_per_token
    wider = dataclasses.replace(value, hidden_size=4096, ffn_hidden_size=16384)
    big = estimate_memory(cfg, tp=2, pp=1, dp=4, trained=[wider])
    assert big.bytes_per_token == estimate_memory(
        dataclasses.replace(cfg, model=wider), tp=2, pp=1, dp=4).bytes_per_token
    assert big.params_per_rank == policy.params_per_rank
    # a fused head's buffers stay the policy's when the value model sets the per-token bytes
    fused = estimate_memory(cfg, tp=2, pp=1, dp=4, cross_entropy="fused", trained=[wider])
    assert fused.head_bytes == \
        estimate_memory(cfg, tp=2, pp=1, dp=4, cross_entropy="fused").head_bytes > 0


def test_generation_holds_every_models_states_beside_the_engines():
    cfg = load_recipe(BENCH)
    e = estimate_memory(cfg, tp=1, pp=1, dp=1, frozen=[cfg.model])
    assert e.generation_bytes(10 * GIB) == \
        e.model_state_bytes + e.other_models_bytes + RESERVE_BYTES + 10 * GIB
