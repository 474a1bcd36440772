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


@functools.cache
def has_transformer_engine() -> bool:
    """TE is used only with CUDA; importing it on a CPU host is not attempted."""
    if not has_cuda() or importlib.util.find_spec("transformer_engine") is None:
        return False
    try:
        import transformer_engine.pytorch  # noqa: F401
    except (ImportError, OSError, RuntimeError):
        return False
    return True


@functools.cache
def has_flash_attn() -> bool:
    if not has_cuda() or importlib.util.find_spec("flash_attn") is None:
        return False
    try:
        import flash_attn  # noqa: F401
    except (ImportError, OSError, RuntimeError):
        return False
    return True


@functools.cache
def has_apex() -> bool:
    return has_cuda() and importlib.util.find_spec("apex") is not None


def describe() -> str:
    device = torch.cuda.get_device_name() if has_cuda() else "cpu"
    return (f"device={device} torch={torch.__version__} transformer_engine={has_transformer_engine()} "
            f"flash_attn={has_flash_attn()} apex={has_apex()}")
