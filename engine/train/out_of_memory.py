"""A GPU that runs out of memory ends the run with one line per rank, not a traceback: where in
the engine it happened, what torch said (the allocation, the GPU's capacity and what was free),
the micro-batch token budget, and the largest budget that the memory estimate
(`engine.metrics.memory`, `python -m tools.perf memory`) fits on this GPU, with what to change.

    with explain_out_of_memory(cfg, layout):
        train(...)
"""

from __future__ import annotations

import contextlib
import traceback
from pathlib import Path

import torch

from engine.config import Config
from engine.errors import UserError
from engine.launch.layout import Layout
from engine.metrics.memory import GIB, recipe_estimate

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "kernels")


class OutOfMemory(UserError):
    """The GPU ran out of memory; the message says where and which budget fits."""


@contextlib.contextmanager
def explain_out_of_memory(cfg: Config, layout: Layout):
    try:
        yield
    except torch.OutOfMemoryError as e:
        total = torch.cuda.get_device_properties(layout.device).total_memory \
            if layout.device.type == "cuda" else None
        raise OutOfMemory(describe(cfg, layout, e, total)) from None


def describe(cfg: Config, layout: Layout, error: BaseException, gpu_bytes: int | None) -> str:
    """The one line for `error` (a torch.OutOfMemoryError) on a GPU of `gpu_bytes`."""
    said = str(error).split(" If reserved but unallocated")[0].split(" See documentation")[0]
    where = _innermost_engine_frame(error)
    budget = cfg.data.max_tokens_per_micro_batch
    line = (f"rank {layout.rank}: out of GPU memory{f' in {where}' if where else ''}: "
            f"{said.strip()} Micro-batches hold up to data.max_tokens_per_micro_batch={budget} "
            f"tokens")
    if gpu_bytes:
        fits = recipe_estimate(cfg, layout.world_size).max_tokens_per_micro_batch(gpu_bytes)
        line += (f"; the memory estimate for this model and layout (python -m tools.perf "
                 f"memory) fits {fits} on this GPU's {gpu_bytes / GIB:.1f} GiB"
                 if fits else
                 f"; by the memory estimate (python -m tools.perf memory) the model states "
                 f"alone do not fit this GPU's {gpu_bytes / GIB:.1f} GiB at this layout")
    advice = "lower data.max_tokens_per_micro_batch, or raise parallel.tp or parallel.pp, or " \
             "set parallel.distributed_optimizer=true"
    if cfg.stage == "rlvr":
        advice += f", or lower rollout.gpu_memory_fraction ({cfg.rollout.gpu_memory_fraction})"
    return f"{line}: {advice}"


def _innermost_engine_frame(error: BaseException) -> str | None:
    """`path:line (function)` of the deepest frame in the engine's own code, if any."""
    found = None
    for frame in traceback.extract_tb(error.__traceback__):
        path = Path(frame.filename).resolve()
        if path.is_relative_to(ROOT) and path.relative_to(ROOT).parts[0] in PACKAGES:
            found = f"{path.relative_to(ROOT)}:{frame.lineno} ({frame.name})"
    return found
