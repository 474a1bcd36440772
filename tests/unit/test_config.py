"""Recipe loading and validation: errors name the key, and come before any process group."""

import os
import re

import pytest

from engine.compat import platform
from engine.errors import ConfigError
from engine.recipe import load_recipe
from tests.util import TINY


def test_tiny_recipe_loads_and_validates():
    cfg = load_recipe(TINY)
    cfg.validate(world_size=1)
    assert cfg.model.head_dim >= 32
    assert os.path.isfile(cfg.data.sources[0].path)


def test_overrides_are_parsed_as_yaml():
    cfg = load_recipe(TINY, ["parallel.tp=2", "parallel.sp=true", "optim.lr=1e-4",
                             "precision=bf16"])
    assert cfg.parallel.tp == 2 and cfg.parallel.sp is True
    assert cfg.optim.lr == pytest.approx(1e-4) and cfg.precision == "bf16"


@pytest.mark.parametrize("override, message", [
    ("model.hiden_size=64", "unknown key model.hiden_size (did you mean model.hidden_size?)"),
    ("paralel.tp=2", "unknown key paralel"),
    ("parallel.tp=two", "parallel.tp must be int, got str"),
    ("parallel.sp=3", "parallel.sp must be bool, got int"),
    ("optim.lr=fast", "optim.lr must be float, got str"),
    ("data.sources=foo", "data.sources must be a list"),
    ("train.max_steps", "is not of the form key=value"),
])
def test_bad_keys_and_types_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("?", r"\?")):
        load_recipe(TINY, [override])


@pytest.mark.parametrize("overrides, world, message", [
    (["parallel.tp=2"], 3, "world size 3 is not divisible by parallel.tp"),
    (["parallel.pp=3"], 3, "model.num_layers=4 is not divisible by parallel.pp=3"),
    (["parallel.tp=4"], 4, "model.num_query_groups=2 is not divisible by parallel.tp=4"),
    (["parallel.tp=8", "model.num_query_groups=8"], 8,
     "model.num_attention_heads=4 is not divisible by parallel.tp=8"),
    (["model.num_query_groups=3"], 1, "model.num_attention_heads=4 is not a multiple"),
    (["parallel.sp=true"], 1, "parallel.sp needs parallel.tp > 1"),
    (["precision=fp16"], 1, "precision='fp16' is not one of fp32, bf16"),
    (["data.max_tokens_per_micro_batch=100"], 1, "data.max_tokens_per_micro_batch=100"),
    (["data.global_batch_size=2"], 4, "data.global_batch_size=2 is smaller than"),
    (["model.arch=gpt2"], 1, "model.arch='gpt2'"),
    (["train.max_steps=0"], 1, "train.max_steps must be >= 1"),
    (["optim.warmup_steps=500"], 1, "optim.warmup_steps=500 exceeds train.max_steps"),
    (["dpo.loss=kto"], 1, "dpo.loss='kto' is not one of dpo, dpo_norm, ipo, simpo, hinge"),
    (["dpo.beta=0"], 1, "dpo.beta must be > 0"),
    (["dpo.label_smoothing=0.5"], 1, "dpo.label_smoothing must be in"),
    (["dpo.nll_alpha=-1"], 1, "dpo.nll_alpha must be >= 0"),
    (["optim.lr=-1e-4"], 1, "optim.lr must be >= 0, got -0.0001"),
    (["optim.lr=1e-4", "optim.min_lr=1e-3"], 1,
     "optim.min_lr=0.001 is larger than optim.lr=0.0001"),
    (["optim.beta2=1.0"], 1, "optim.beta2 must be in [0, 1), got 1.0"),
    (["optim.clip_grad=-1"], 1, "optim.clip_grad must be >= 0"),
    (["optim.eps=0"], 1, "optim.eps must be > 0"),
    (["checkpoint.every_steps=-5"], 1, "checkpoint.every_steps must be >= 0"),
    (["train.cross_entropy=liger"], 1, "train.cross_entropy='liger' is not one of auto, "),
    pytest.param(["train.cross_entropy=te"], 1, "train.cross_entropy=te needs TransformerEngine",
                 marks=pytest.mark.skipif(platform.has_transformer_engine(), reason="TE here")),
    (["train.transformer_impl=te"], 1, "train.transformer_impl='te' is not one of auto, "),
    pytest.param(["train.transformer_impl=transformer_engine"], 1,
                 "train.transformer_impl=transformer_engine needs TransformerEngine",
                 marks=pytest.mark.skipif(platform.has_transformer_engine(), reason="TE here")),
    (["train.fuse_wgrad_accumulation=true", "train.transformer_impl=local"], 1,
     "train.fuse_wgrad_accumulation=true needs TransformerEngine's layers"),
    pytest.param(["train.fuse_wgrad_accumulation=true"], 1,
                 "train.fuse_wgrad_accumulation=true needs TransformerEngine's layers",
                 marks=pytest.mark.skipif(platform.has_transformer_engine(), reason="TE here")),
])
def test_impossible_layouts_are_rejected(overrides, world, message):
    cfg = load_recipe(TINY, overrides)
    with pytest.raises(ConfigError, match=re.escape(message)):
        cfg.validate(world)


def test_yaml_syntax_errors_name_the_file_and_line(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("model:\n  num_layers: 2\n data: [oops\n")
    with pytest.raises(ConfigError, match=f"{recipe}:3: invalid YAML"):
        load_recipe(recipe)
    with pytest.raises(ConfigError, match=re.escape("override 'data.sources=[{path: x': "
                                                    "invalid YAML")):
        load_recipe(TINY, ["data.sources=[{path: x"])


def test_missing_recipe_is_named(tmp_path):
    with pytest.raises(ConfigError, match="recipe not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_command_line_max_steps_wins_over_recipe_epochs():
    sft = TINY.parent / "sft.yaml"  # a recipe that sets train.epochs
    cfg = load_recipe(sft, ["train.max_steps=7"])
    assert cfg.train.max_steps == 7 and cfg.train.epochs is None
    cfg.validate(world_size=1)
    cfg = load_recipe(TINY, ["train.epochs=2"])  # and epochs over a recipe's max_steps
    assert cfg.train.epochs == 2 and cfg.train.max_steps is None
    with pytest.raises(ConfigError, match="set exactly one of train.max_steps and train.epochs"):
        load_recipe(sft, ["train.max_steps=7", "train.epochs=1"]).validate(world_size=1)


def test_unknown_stage_lists_the_registered_ones():
    with pytest.raises(ConfigError, match="stage='dpo2' is not one of dpo, pretrain, rlvr, sft"):
        load_recipe(TINY, ["stage=dpo2"])
