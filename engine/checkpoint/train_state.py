"""Sharded checkpoints: model, optimizer, LR schedule, data position and RNG, resumable at any
TP/PP/DP layout.

    OUTPUT_DIR/checkpoints/step_N/        complete checkpoints (megatron dist_checkpointing)
    OUTPUT_DIR/checkpoints/step_N.tmp/    a save in progress (or one killed mid-write)

A save writes into `step_N.tmp` and renames it to `step_N` only after every rank has finished
and `manifest.json` records every file's size and CRC32 (`engine.checkpoint.manifest`), so a
crash mid-write never leaves a directory that looks complete; `latest()` ignores `.tmp`, and
`newest_intact()` (what a resume uses) also skips, and sets aside, a checkpoint whose files no
longer match their manifest.
The `keep_last` newest complete checkpoints are kept. Model and optimizer states are saved in
megatron's layout-free form (every parameter and its Adam moments in global coordinates;
`fully_reshardable` for the distributed optimizer), so a checkpoint loads at any layout.
Models trained beside the policy (`companions`: PPO's value model) are saved in the same
checkpoint with their optimizer and LR schedule, their tensors' keys prefixed with the
companion's name ("value.decoder...", "optimizer.state.exp_avg.value.decoder..."), and resumed
with it; a checkpoint without a companion a run needs is an error naming it.
RNG states are restored when the layout is the one that saved them (they are per TP/PP rank);
at another layout the run reseeds, which changes nothing here because training draws no random
numbers (no dropout; data order comes from the loader's own seeded permutation).
"""

from __future__ import annotations

import errno
import os
import random
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.distributed as dist
from megatron.core import dist_checkpointing
from megatron.core.dist_checkpointing.mapping import ShardedObject
from megatron.core.dist_checkpointing.utils import replace_prefix_for_sharding
from megatron.core.optimizer.distrib_optimizer import DistributedOptimizer
from megatron.core.tensor_parallel import get_cuda_rng_tracker
from torch.distributed.checkpoint.api import CheckpointException

from engine.checkpoint.manifest import (checkpoint_files, file_digests, has_manifest,
                                        verify_share, write_manifest)
from engine.compat import platform
from engine.errors import CheckpointError
from engine.launch.layout import Layout
from engine.metrics.log import log

_STEP_DIR = re.compile(r"^step_(\d+)$")
# The distributed optimizer's layout-free format: states gathered per parameter on save, each
# rank reading the slices it needs on load.
_OPTIMIZER_FORMAT = {"distrib_optim_sharding_type": "fully_reshardable"}


def checkpoint_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def complete_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := _STEP_DIR.match(p.name)) and (p / "metadata.json").is_file()]
    return sorted(found)


def latest(root: Path) -> tuple[int, Path] | None:
    found = complete_checkpoints(root)
    return found[-1] if found else None


def newest_intact(root: Path, layout: Layout) -> tuple[int, Path] | None:
    """The newest complete checkpoint whose files match their manifest (every rank checks a
    share of the files). A damaged one is renamed `step_N.damaged`, saying what is wrong, and
    the next older one is tried; if every checkpoint is damaged, that is an error."""
    damaged = []
    for step, path in reversed(complete_checkpoints(root)):
        if not has_manifest(path):
            log.warning("%s was saved without a manifest: resuming from it unverified", path)
            return step, path
        shares = [None] * layout.world_size
        dist.all_gather_object(shares, verify_share(path, layout.rank, layout.world_size))
        problems = sorted({p for share in shares for p in share})
        if not problems:
            if damaged:
                log.warning("resuming from %s, the newest intact checkpoint", path)
            return step, path
        damaged.append(f"{path.name}: {'; '.join(problems[:3])}")
        log.warning("checkpoint %s is damaged (%s); set aside as %s.damaged", path,
                    "; ".join(problems[:3]), path.name)
        dist.barrier()
        if layout.rank == 0:
            os.replace(path, path.with_name(f"{path.name}.damaged"))
        dist.barrier()
    if damaged:
        raise CheckpointError(f"{root}: no intact checkpoint to resume from ({' | '.join(damaged)}"
                              f"); the damaged ones are kept as step_N.damaged")
    return None


def read_meta(path: Path) -> dict:
    """What a checkpoint records beside the tensors (model config, precision, recipe, data
    fingerprint), read without a process group."""
    return dist_checkpointing.load_common_state_dict(str(path)).get("meta", {})


def _module(model):
    """The megatron module under DDP (GPTModel, or Float16Module around it)."""
    return model.module


def _rng_state(layout: Layout) -> ShardedObject:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state(),
             "cuda": torch.cuda.get_rng_state() if platform.has_cuda() else None,
             "tracker": get_cuda_rng_tracker().get_states()}
    return ShardedObject("rng_state", state, (layout.pp, layout.tp),
                         (layout.pp_rank, layout.tp_rank), replica_id=layout.dp_rank)


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and platform.has_cuda():
        torch.cuda.set_rng_state(state["cuda"])
    get_cuda_rng_tracker().set_states(state["tracker"])


def _materialize_optimizer_states(optimizer) -> None:
    """megatron's distributed optimizer builds its loading state dict from the inner torch
    Adam's per-parameter state (its `step` above all), which a fresh optimizer does not have
    yet; megatron's own dummy step creates it, and loading then overwrites every value."""
    for opt in getattr(optimizer, "chained_optimizers", [optimizer]):
        if isinstance(opt, DistributedOptimizer) and not opt.optimizer.state:
            opt._init_optimizer_states_with_dummy_values()


def _model_and_optimizer(model, optimizer, is_loading: bool, prefix: str = "") -> dict:
    if is_loading:
        _materialize_optimizer_states(optimizer)
    model_state = _module(model).sharded_state_dict()
    if prefix:  # the tensors' keys; the optimizer's follow them
        replace_prefix_for_sharding(model_state, "", prefix)
    return {"model": model_state,
            "optimizer": optimizer.sharded_state_dict(model_state, is_loading=is_loading,
                                                      metadata=_OPTIMIZER_FORMAT)}


def _sharded_state(model, optimizer, layout: Layout, is_loading: bool, with_rng: bool,
                   companions: dict) -> dict:
    state = _model_and_optimizer(model, optimizer, is_loading)
    for name, c in companions.items():
        state[name] = _model_and_optimizer(c.model, c.optimizer, is_loading, f"{name}.")
    if with_rng:
        state["rng_state"] = _rng_state(layout)
    return state


def save(root: Path, step: int, model, optimizer, scheduler, loader, layout: Layout,
         keep_last: int, meta: dict, companions: dict | None = None) -> Path:
    """Write checkpoint `step` atomically, then prune to the `keep_last` newest. `meta` (the
    model config, precision) lets tools read the checkpoint without the recipe. `companions`:
    other trained models by name (each with .model, .optimizer, .scheduler: PPO's value model),
    saved beside the policy, their tensors' keys prefixed with the name and a dot."""
    companions = companions or {}
    tmp, final = root / f"step_{step}.tmp", root / f"step_{step}"
    if layout.rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    dist.barrier()
    state = _sharded_state(model, optimizer, layout, is_loading=False, with_rng=True,
                           companions=companions)
    state.update(step=step, scheduler=scheduler.state_dict(), loader=loader.state_dict(),
                 layout={"tp": layout.tp, "pp": layout.pp}, meta=meta)
    for name, c in companions.items():
        state[name]["scheduler"] = c.scheduler.state_dict()
    try:
        dist_checkpointing.save(state, str(tmp))
    except (Exception, CheckpointException) as e:  # the latter is a BaseException
        if not _out_of_space(e, tmp):
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"cannot save checkpoint step {step} in {root}: no space left on "
                              f"device (free some and start again: the run resumes from its "
                              f"last complete checkpoint)") from None
    dist.barrier()
    names = [checkpoint_files(tmp) if layout.rank == 0 else None]
    dist.broadcast_object_list(names, src=0)
    shares = [None] * layout.world_size
    dist.all_gather_object(shares, file_digests(tmp, names[0][layout.rank::layout.world_size]))
    if layout.rank == 0:
        write_manifest(tmp, {name: d for share in shares for name, d in share.items()})
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _fsync_dir(root)
        for _, old in complete_checkpoints(root)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    dist.barrier()
    return final


_NEARLY_FULL = 64 << 20  # bytes


def _out_of_space(error: BaseException, directory: Path) -> bool:
    """Whether a save failed for a full disk: an ENOSPC error (dist_checkpointing formats its
    workers' errors into its own), or a file system left with almost no free space (torch's
    zip writer reports a full disk as a position mismatch)."""
    if (isinstance(error, OSError) and error.errno == errno.ENOSPC) or \
            os.strerror(errno.ENOSPC) in str(error):
        return True
    try:
        return shutil.disk_usage(directory).free < _NEARLY_FULL
    except OSError:
        return False


def load(path: Path, model, optimizer, scheduler, loader, layout: Layout,
         companions: dict | None = None) -> int:
    """Restore everything from a checkpoint (the companions too, as `save` took them); returns
    the step it was taken after."""
    companions = companions or {}
    common = dist_checkpointing.load_common_state_dict(str(path))
    missing = sorted(set(companions) - set(common))
    if missing:
        raise CheckpointError(f"{path} holds no {' or '.join(missing)} model to resume (saved "
                              f"by a run without it)")
    same_layout = common["layout"] == {"tp": layout.tp, "pp": layout.pp}
    state = dist_checkpointing.load(
        _sharded_state(model, optimizer, layout, is_loading=True, with_rng=same_layout,
                       companions=companions), str(path))
    for part, c in [(state, SimpleNamespace(model=model, optimizer=optimizer,
                                            scheduler=scheduler)),
                    *((state[name], c) for name, c in companions.items())]:
        _module(c.model).load_state_dict(part["model"])
        c.optimizer.load_state_dict(part["optimizer"])
        c.scheduler.load_state_dict(part["scheduler"])
    loader.load_state_dict(state["loader"])
    if same_layout:
        _set_rng_state(state["rng_state"])
    return int(state["step"])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
