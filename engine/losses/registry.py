"""Losses registered by name, and the contract the train step calls them with.

A loss is a pure function `fn(mb, logits, **options) -> (loss, token_count, metrics)`:
`mb` is a packed `MicroBatch`, `logits` this TP rank's vocabulary slice [t, vocab/TP] on the last
pipeline stage, or with a fused head (`train.cross_entropy=fused`) the `HiddenStates` that the
functions of `engine.losses.cross_entropy` turn into log-probs or a loss chunk by chunk.
`loss` carries the global normalization (its sum over micro-batches and data-parallel ranks is
the step's loss), and so does every value in `metrics`, whose keys are declared at
registration: the step sums each over micro-batches and data-parallel ranks. Keys declared as
`maxima` are reduced by their maximum instead (a worst case, such as the largest log-prob gap).

    @register("cross_entropy", metrics=("loss",))
    def cross_entropy(mb, logits, *, real_vocab_size): ...

    loss = get_loss("cross_entropy", real_vocab_size=265)   # a LossFunction, options bound
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch

from engine.errors import ConfigError

_LOSSES: dict[str, "LossFunction"] = {}


@dataclass(frozen=True)
class LossFunction:
    fn: Callable  # (mb, logits) -> (loss, token count, {metric: tensor})
    metrics: tuple[str, ...]  # the keys of its summed metrics, in reporting order
    maxima: tuple[str, ...] = ()  # the keys of its metrics reduced by their maximum, after them

    def __call__(self, mb, logits):
        return self.fn(mb, logits)


def token_count(mb, device: torch.device) -> torch.Tensor:
    """The micro-batch's real token count, the loss's second value, as a device scalar made on
    the device: a fill, where a tensor copied from the host would wait for the device."""
    return torch.full((), mb.num_tokens, dtype=torch.int, device=device)


def register(name: str, metrics: tuple[str, ...], maxima: tuple[str, ...] = ()):
    def add(fn: Callable) -> Callable:
        if name in _LOSSES:
            raise ValueError(f"loss {name!r} is registered twice")
        _LOSSES[name] = LossFunction(fn, tuple(metrics), tuple(maxima))
        return fn

    return add


def get_loss(name: str, **options) -> LossFunction:
    """The registered loss `name` with its options (vocabulary size, β, ...) bound."""
    import engine.losses

    for module in pkgutil.iter_modules(engine.losses.__path__):
        importlib.import_module(f"engine.losses.{module.name}")
    if name not in _LOSSES:
        raise ConfigError(f"unknown loss {name!r}; registered: {', '.join(sorted(_LOSSES))}")
    loss = _LOSSES[name]
    return LossFunction(partial(loss.fn, **options), loss.metrics, loss.maxima)
