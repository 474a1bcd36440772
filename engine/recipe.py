"""A recipe from its file to a Config: YAML and `key=value` overrides (`engine.config`), the
architecture of the model the run starts from, read from that model, and the stage's own checks.

    cfg = load_recipe("recipes/tiny/sft.yaml", ["train.max_steps=10"])
    cfg.validate(world_size)          # the layout, once the world size is known

With `model.init_from_hf` the architecture comes from the HF directory's config.json (and its
weight files are checked to be present and readable), with
`model.init_from_checkpoint` (a checkpoint, or a run dir: its newest checkpoint) from the
checkpoint's stored model config; architecture keys the recipe also sets must agree with it.
`stage` must name a module of `engine.stages`, which then checks the keys only it cares about.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from engine.checkpoint.weights import find_checkpoint, stored_model_config
from engine.config import Config, ConfigError, ModelConfig, build_config, read_recipe
from engine.hf.config import hf_architecture
from engine.hf.safetensors_io import HFReader
from engine.stages import get_stage

# Keys that describe how the engine holds a model, not the model itself.
_ENGINE_ONLY = ("init_from_hf", "init_from_checkpoint", "init_std", "make_vocab_size_divisible_by")


def load_recipe(path: str | Path | None, overrides: list[str] = ()) -> Config:
    raw, base = read_recipe(path, overrides)
    cfg = build_config(raw, base)
    recipe_model = raw.get("model") or {}
    if cfg.model.init_from_hf:
        _take_architecture(cfg, recipe_model, *hf_architecture(cfg.model.init_from_hf))
        HFReader(cfg.model.init_from_hf)  # shards present and readable, before any model
    if cfg.model.init_from_checkpoint:  # a checkpoint, or a run dir: its newest checkpoint
        cfg.model.init_from_checkpoint = str(find_checkpoint(cfg.model.init_from_checkpoint))
        _take_architecture(cfg, recipe_model,
                           *stored_model_config(cfg.model.init_from_checkpoint))
    get_stage(cfg.stage).validate(cfg)
    return cfg


def _take_architecture(cfg: Config, recipe_model: dict, source: ModelConfig, where: str) -> None:
    """The architecture comes from the source model; keys the recipe sets must agree."""
    for f in dataclasses.fields(ModelConfig):
        if f.name in _ENGINE_ONLY:
            continue
        ours, theirs = recipe_model.get(f.name), getattr(source, f.name)
        if f.name in recipe_model and getattr(cfg.model, f.name) != theirs:
            raise ConfigError(f"model.{f.name}={ours!r} in the recipe disagrees with "
                              f"{where} ({theirs!r})")
        setattr(cfg.model, f.name, theirs)
