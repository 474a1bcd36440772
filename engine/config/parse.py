"""Recipes to typed sections: a YAML file with `key=value` overrides to a raw mapping
(`read_recipe`), and a mapping to the dataclasses (`build_config`; `model_config_from_dict` for
the model config a checkpoint stores), rejecting unknown keys and values of the wrong type."""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from engine.config.sections import Config, ModelConfig
from engine.errors import ConfigError


def _yaml_line(error: Exception) -> str:
    mark = getattr(error, "problem_mark", None)
    return f"{mark.line + 1}: " if mark is not None else " "


def read_recipe(path: str | Path | None, overrides: list[str] = ()) -> tuple[dict, Path]:
    """The raw recipe mapping with `key=value` overrides applied (values parsed as YAML), and
    the folder relative paths are resolved against. `engine.recipe.load_recipe` builds the
    Config from it.

    The command line wins over the recipe: `train.max_steps=N` replaces a recipe's
    `train.epochs` and `train.epochs=X` its `train.max_steps`, as Hugging Face's Trainer lets
    `max_steps` override epochs.
    """
    raw: dict = {}
    base = Path.cwd()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"recipe not found: {path}")
        with path.open() as f:
            try:
                raw = yaml.safe_load(f) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"{path}:{_yaml_line(e)}invalid YAML "
                                  f"({getattr(e, 'problem', None) or e})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: a recipe must be a mapping of sections")
        base = path.resolve().parent
    overridden = set()
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: invalid YAML value "
                              f"({getattr(e, 'problem', None) or e})") from None
        _set_dotted(raw, key.strip(), parsed)
        overridden.add(key.strip())
    train = raw.get("train")
    for given, replaced in (("train.max_steps", "epochs"), ("train.epochs", "max_steps")):
        if given in overridden and f"train.{replaced}" not in overridden and \
                isinstance(train, dict) and train.get(given.split(".")[1]) is not None:
            train.pop(replaced, None)
    return raw, base


def build_config(raw: dict, base: Path) -> Config:
    """A Config from a raw recipe; relative paths resolved beside the recipe (`base`)."""
    cfg = _build(Config, raw, "")
    for source in cfg.data.sources + cfg.eval.sources:
        source.path = _resolve(base, source.path)
    if cfg.model.init_from_hf and cfg.model.init_from_checkpoint:
        raise ConfigError("set model.init_from_hf or model.init_from_checkpoint, not both")
    for key in ("init_from_hf", "init_from_checkpoint"):
        if getattr(cfg.model, key):
            setattr(cfg.model, key, _resolve(base, getattr(cfg.model, key)))
    if cfg.value.init_from_hf:
        cfg.value.init_from_hf = _resolve(base, cfg.value.init_from_hf)
    return cfg


def _resolve(base: Path, path: str) -> str:
    """A relative path: beside the recipe if it exists there, else from the working directory."""
    if not path or Path(path).is_absolute():
        return path
    candidate = base / path
    return str(candidate if candidate.exists() else Path(path).resolve())


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {key}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def model_config_from_dict(raw: dict) -> ModelConfig:
    """A ModelConfig from its `dataclasses.asdict` form (as checkpoints store it)."""
    return _build(ModelConfig, raw, "model.")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'recipe'} must be a mapping, got "
                          f"{type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        full = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), sorted(names), n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            raise ConfigError(f"unknown key {full}{hint}")
        kwargs[key] = _coerce(hints[key], value, full)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {type(value).__name__}")
        return [_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, str):
        value = _float_literal(value, key)  # YAML 1.1 reads `1e-5` (no dot) as a string
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            raise ConfigError(f"{key} must be finite, got {value}")
        return float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{key} must be {hint.__name__}, got {type(value).__name__} "
                          f"({value!r})")
    return value


def _float_literal(text: str, key: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{key} must be float, got str ({text!r})") from None
