"""The shipped recipes load, validate at their intended scale, and carry Tülu 3's published SFT
settings."""

import pytest

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


@pytest.mark.parametrize("name", ["pretrain", "sft"])
def test_tiny_recipes_validate_on_one_to_four_processes(name):
    cfg = load_recipe(ROOT / f"recipes/tiny/{name}.yaml")
    for world in (1, 2, 4):
        cfg.validate(world)
    assert cfg.model.kv_channels >= 32  # vLLM serves head_dim >= 32
