"""The shipped recipes load, validate at their intended scale, and carry Tülu 3's published SFT
and DPO settings and Tülu 3.1's GRPO ones."""

import pytest

from engine.errors import CheckpointError
from engine.recipe import load_recipe
from tests.util import ROOT

TULU = {"8b": 5e-6, "70b": 2e-6}


@pytest.mark.parametrize("size, lr", TULU.items())
def test_tulu3_sft_recipes(size, lr):
    cfg = load_recipe(ROOT / f"recipes/tulu3/llama3.1-{size}/sft.yaml")
    cfg.validate(world_size=64)  # 8 nodes × 8 GPUs
    assert cfg.stage == "sft" and cfg.precision == "bf16"
    assert cfg.optim.lr == lr and cfg.optim.decay == "linear"
    assert cfg.optim.warmup_ratio == 0.03 and cfg.optim.weight_decay == 0.0
    assert cfg.train.epochs == 2 and cfg.train.loss_reduction == "sum"
    assert cfg.data.max_seq_len == 4096 and cfg.data.global_batch_size == 128
    assert cfg.data.chat_template == "tulu"
    m = cfg.model
    assert (m.vocab_size, m.num_query_groups, m.rope_theta) == (128256, 8, 500000.0)
    assert m.rope_scaling.factor == 8.0 and not m.tie_word_embeddings


@pytest.mark.parametrize("size, lr", {"8b": 5e-7, "70b": 2e-7}.items())
def test_tulu3_dpo_recipes(size, lr):
    recipe = ROOT / f"recipes/tulu3/llama3.1-{size}/dpo.yaml"
    with pytest.raises(CheckpointError, match=f"runs/tulu3-{size}-sft"):  # the SFT run first
        load_recipe(recipe)
    cfg = load_recipe(recipe, ["model.init_from_checkpoint=null"])
    cfg.validate(world_size=32 if size == "8b" else 64)
    assert cfg.stage == "dpo" and cfg.precision == "bf16"
    assert (cfg.dpo.loss, cfg.dpo.beta) == ("dpo_norm", 5.0)
    assert cfg.optim.lr == lr and cfg.optim.decay == "linear" and cfg.optim.warmup_ratio == 0.1
    assert cfg.train.epochs == 1
    assert cfg.data.max_seq_len == 2048 and cfg.data.global_batch_size == 128
    assert cfg.data.max_tokens_per_micro_batch >= 2 * cfg.data.max_seq_len  # a pair fits
    assert cfg.model.vocab_size == 128256 and cfg.data.chat_template == "tulu"


def test_tulu31_grpo_recipe():
    recipe = ROOT / "recipes/tulu3/llama3.1-8b/grpo.yaml"
    with pytest.raises(CheckpointError, match="runs/tulu3-8b-dpo"):  # the DPO run first
        load_recipe(recipe)
    cfg = load_recipe(recipe, ["model.init_from_checkpoint=null"])
    cfg.validate(world_size=8)  # one node
    assert cfg.stage == "rlvr" and cfg.precision == "bf16"
    r = cfg.rlvr
    assert (r.samples_per_prompt, r.kl_coef, r.kl_estimator) == (16, 0.01, "k3")
    assert cfg.optim.lr == 5e-7 and cfg.optim.decay == "constant"
    assert r.max_prompt_tokens == cfg.rollout.max_new_tokens == 2048
    assert cfg.rollout.temperature == 1.0 and cfg.model.vocab_size == 128256


@pytest.mark.parametrize("name", ["pretrain", "sft", "dpo", "rlvr"])
def test_tiny_recipes_validate_on_one_to_four_processes(name):
    # the tiny DPO and RLVR recipes start from the tiny SFT run; their model sections stand in
    cfg = load_recipe(ROOT / f"recipes/tiny/{name}.yaml", ["model.init_from_checkpoint=null"])
    for world in (1, 2, 4):
        cfg.validate(world)
    assert cfg.model.kv_channels >= 32  # vLLM serves head_dim >= 32
