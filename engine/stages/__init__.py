"""Training stages, looked up by name: each module of this package defines one `STAGE` (a
`engine.stages.base.Stage`) — its data preparation, loss, evaluator and recipe checks. Adding a
stage is adding a module here (plus its loss in `engine.losses` and its recipe); the step and
the loop do not change.
"""

from __future__ import annotations

import importlib
import pkgutil

from engine.errors import ConfigError

_NOT_STAGES = {"base"}


def stage_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _NOT_STAGES)


def get_stage(name: str):
    """The Stage registered under `name` (the recipe's `stage`)."""
    names = stage_names()
    if name not in names:
        raise ConfigError(f"stage={name!r} is not one of {', '.join(names)}")
    return importlib.import_module(f"{__name__}.{name}").STAGE
