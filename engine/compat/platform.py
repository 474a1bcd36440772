"""What this host offers, detected once: CUDA, TransformerEngine, flash-attn, apex.

Nothing in the engine needs any of them to import; the model and the core attention ask here
which path to take, and `describe()` is logged at start so a run says what it used.
"""

from __future__ import annotations

import functools
import importlib.util

import torch


@functools.cache
def has_cuda() -> bool:
    return torch.cuda.is_available()


def _imports(module: str) -> bool:
    """True when `module` is installed and imports (on a CUDA host only)."""
    if not has_cuda() or importlib.util.find_spec(module.split(".")[0]) is None:
        return False
    try:
        importlib.import_module(module)
    except (ImportError, OSError, RuntimeError):
        return False
    return True


@functools.cache
def has_transformer_engine() -> bool:
    return _imports("transformer_engine.pytorch")


@functools.cache
def has_flash_attn() -> bool:
    return _imports("flash_attn")


@functools.cache
def has_apex() -> bool:
    return _imports("apex")


def device_name() -> str:
    return torch.cuda.get_device_name() if has_cuda() else "cpu"


def describe() -> str:
    device = device_name()
    return (f"device={device} torch={torch.__version__} transformer_engine={has_transformer_engine()} "
            f"flash_attn={has_flash_attn()} apex={has_apex()}")
