"""The shipped recipes load, validate at their intended scale, and carry Tülu 3's published SFT,
DPO and PPO settings and Tülu 3.1's GRPO ones."""

import pytest

from engine.errors import CheckpointError, ConfigError
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


@pytest.mark.parametrize("size, lr, beta, prompts, warmup, world", [
    ("8b", 3e-7, 0.05, 224, None, 8), ("70b", 1e-7, 0.07, 640, 0.1, 64)])
def test_tulu3_ppo_recipes(size, lr, beta, prompts, warmup, world):
    recipe = ROOT / f"recipes/tulu3/llama3.1-{size}/ppo.yaml"
    with pytest.raises(CheckpointError, match=f"runs/tulu3-{size}-dpo"):  # the DPO run first
        load_recipe(recipe)
    cfg = load_recipe(recipe, ["model.init_from_checkpoint=null", "value.init_from_hf=null"])
    cfg.validate(world_size=world)
    r, v = cfg.rlvr, cfg.value
    assert (r.algorithm, r.samples_per_prompt, r.epochs, r.mini_batches) == ("ppo", 1, 4, 1)
    assert (r.kl_coef, r.kl_estimator, r.gamma, r.lam) == (beta, "k1", 1.0, 0.95)
    assert (r.verifiable_reward, r.truncation_penalty) == (10.0, -10.0)
    assert (r.clip_low, r.clip_high, v.clip, v.coef) == (0.2, 0.2, 0.2, 0.1)
    assert cfg.data.global_batch_size == prompts and cfg.optim.lr == lr
    assert cfg.optim.warmup_ratio == warmup
    assert r.max_prompt_tokens == cfg.rollout.max_new_tokens == 2048
    assert cfg.rollout.temperature == 1.0
    with pytest.raises(ConfigError, match="Llama-3.1-Tulu-3-8B-RM"):  # Tülu 3's 8B RM
        load_recipe(recipe, ["model.init_from_checkpoint=null"])


@pytest.mark.parametrize("name", ["pretrain", "sft", "dpo", "rlvr", "ppo"])
def test_tiny_recipes_validate_on_one_to_four_processes(name):
    # the tiny DPO and RLVR recipes start from the tiny SFT run; their model sections stand in
    cfg = load_recipe(ROOT / f"recipes/tiny/{name}.yaml", ["model.init_from_checkpoint=null"])
    for world in (1, 2, 4):
        cfg.validate(world)
    assert cfg.model.kv_channels >= 32  # vLLM serves head_dim >= 32


# recipe, world size; the 70B PPO run's value model is Tülu 3's 8B reward model (Llama-3.1-8B)
FIT = [("llama3.1-8b/sft", 64), ("llama3.1-70b/sft", 64), ("llama3.1-8b/dpo", 32),
       ("llama3.1-70b/dpo", 64), ("llama3.1-8b/grpo", 8), ("llama3.1-8b/ppo", 8),
       ("llama3.1-70b/ppo", 64)]


@pytest.mark.parametrize("name, world", FIT, ids=[n for n, _ in FIT])
def test_tulu3_recipes_fit_an_80_gb_gpu_by_the_memory_estimate(name, world):
    """Every model a run holds (policy; RLVR's reference; PPO's value model) and a micro-batch at
    the recipe's budget fit the usable 92% of 80 GiB; RLVR's model states also fit beside the
    engines' share while they generate."""
    from engine.metrics.memory import GIB, USABLE_FRACTION, estimate_memory
    from engine.stages.rlvr import held_models
    from engine.train.critic import value_model_config

    cfg = load_recipe(ROOT / f"recipes/tulu3/{name}.yaml",
                      ["model.init_from_checkpoint=null", "model.init_from_hf=null",
                       *(["value.init_from_hf=null"] if name.endswith("ppo") else [])])
    cfg.validate(world)
    frozen, trained = held_models(cfg) if cfg.stage == "rlvr" else ([], [])
    if name == "llama3.1-70b/ppo":
        trained = [value_model_config(load_recipe(ROOT / "recipes/tulu3/llama3.1-8b/sft.yaml"))]
    p, gpu = cfg.parallel, 80 * GIB
    e = estimate_memory(cfg, p.tp, p.pp, cfg.data_parallel_size(world), frozen=frozen,
                        trained=trained)
    assert (len(frozen), len(trained)) == {"grpo": (1, 0), "ppo": (1, 1)}.get(
        name.split("/")[1], (0, 0))
    assert e.step_bytes(cfg.data.max_tokens_per_micro_batch) <= USABLE_FRACTION * gpu
    if cfg.stage == "rlvr":
        assert e.generation_bytes(cfg.rollout.gpu_memory_fraction * gpu) <= gpu
