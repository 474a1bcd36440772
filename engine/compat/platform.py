"""What this host offers, detected once: CUDA, TransformerEngine, flash-attn, apex.

Nothing in the engine needs any of them to import; the model and the core attention ask here
which path to take, and `describe()` is logged at start so a run says what it used.
"""

from __future__ import annotations

import functools
import importlib.util

import torch

from engine.metrics.log import log


@functools.cache
def has_cuda() -> bool:
    return torch.cuda.is_available()


def _imports(module: str) -> bool:
    """True when `module` is installed and imports (on a CUDA host only). One that is installed
    but fails to import (a missing library, TransformerEngine's packages at different versions)
    is a warning with the reason, since the run then takes the slower path without it."""
    if not has_cuda() or importlib.util.find_spec(module.split(".")[0]) is None:
        return False
    try:
        importlib.import_module(module)
    except (ImportError, OSError, RuntimeError, AssertionError) as e:
        log.warning("%s is installed but does not import (%s: %s); going on without it",
                    module, type(e).__name__, e)
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
