"""The run directory (`output_dir`) as a safe place to train: one run at a time, a recipe that
agrees with the checkpoint it resumes, and the history of every recipe started in it.

    run_dir = open_run_dir(cfg, layout)   # every rank; an error is raised on every rank alike
    run_dir.path, run_dir.resume          # (step, checkpoint dir) to resume from, or None

- One run per directory: global rank 0 holds `OUTPUT_DIR/run.lock` (`engine.launch.run_lock`)
  for the life of its process; a second run fails at once naming the holder.
- Resume check: a checkpoint records the recipe it was trained with and a fingerprint of the
  prepared data. Keys that change what is trained (model, data, seed, stage, precision, losses,
  optimizer and schedule, step count) must be unchanged unless listed, or their section listed,
  in `checkpoint.allow_changes` (`[optim]` for a new LR schedule); keys that only say how to run
  (`RUN_KEYS`: layout, logging, evaluation, checkpoint cadence, micro-batch budget, output and
  cache paths, the skip limit, activation recomputation) may change, and the change is logged. A key that the checkpoint's
  recipe lacks (the engine gained it since) counts as its default there.
- History: `config.yaml` is the recipe of the latest start; `config_history/NNN.yaml` keeps the
  recipe of every start with the step it resumed from. Both written atomically.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path

import torch.distributed as dist
import yaml

from engine.atomic import write_atomic
from engine.checkpoint import train_state
from engine.config import Config
from engine.errors import CheckpointError, ConfigError
from engine.launch.layout import Layout
from engine.launch.run_lock import lock
from engine.metrics.log import log, setup_logging

RUN_KEYS = ("output_dir", "parallel", "train.log_every", "train.max_skipped_in_a_row",
            "train.recompute", "train.recompute_modules", "train.recompute_layers", "eval",
            "checkpoint", "logging", "data.max_tokens_per_micro_batch", "dpo.reference_cache")


@dataclass
class RunDir:
    path: Path
    resume: tuple[int, Path] | None  # (step, checkpoint directory)
    recorded: dict | None  # what the resumed checkpoint records: recipe, data fingerprint


def open_run_dir(cfg: Config, layout: Layout) -> RunDir:
    """Create and lock the run dir (global rank 0), start logging, find the newest intact
    checkpoint (all ranks), check the recipe against it and record the recipe (rank 0). An
    error on rank 0 is raised on every rank."""
    out = Path(cfg.output_dir)
    _shared(layout, lambda: _create_and_lock(out))
    setup_logging(out if layout.is_logger else None)
    resume = train_state.newest_intact(train_state.checkpoint_root(out), layout)
    recorded, changed = _shared(layout, lambda: _check(cfg, resume)) or (None, [])
    if layout.is_logger:
        _record_recipe(out, cfg, resume)
    if changed:
        log.info("resuming with changed settings: %s", "; ".join(changed))
    return RunDir(out, resume, recorded)


def _shared(layout: Layout, work):
    """`work()` on global rank 0; its result, or its ConfigError/CheckpointError, on every
    rank."""
    box = [None, None]
    if layout.rank == 0:
        try:
            box[0] = work()
        except (ConfigError, CheckpointError) as e:
            box[1] = e
    dist.broadcast_object_list(box, src=0)
    if box[1] is not None:
        raise box[1]
    return box[0]


def _create_and_lock(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"output_dir={out}: cannot create it ({e.strerror})") from None
    lock(out)


def _check(cfg: Config, resume: tuple[int, Path] | None) -> tuple[dict, list[str]] | None:
    if resume is None:
        return None
    recorded = train_state.read_meta(resume[1])
    return recorded, check_resume(cfg, recorded.get("recipe"), resume[1])


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _covered(key: str, prefixes) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def check_resume(cfg: Config, recorded: dict | None, checkpoint: Path) -> list[str]:
    """Raise naming every key that differs from the checkpoint's recipe and may not change;
    return the changes that are allowed (as `key: old -> new`)."""
    if recorded is None:
        print(f"warning: {checkpoint} does not record its recipe; resuming unchecked",
              flush=True)
        return []
    old, new = _flatten(recorded), _flatten(cfg.to_dict())
    # A key the engine gained after the checkpoint was written reads as its default, which
    # keeps the old behaviour: a run resumes across an upgrade unless the recipe sets it.
    defaults = _flatten(Config().to_dict())
    old.update({k: defaults[k] for k in new.keys() - old.keys() if k in defaults})
    allowed = (*RUN_KEYS, *cfg.checkpoint.allow_changes)
    differ = [k for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    refused = [k for k in differ if not _covered(k, allowed)]
    if refused:
        shown = "; ".join(f"{k}: {_show(old.get(k))} -> {_show(new.get(k))}" for k in refused)
        raise ConfigError(f"resuming {checkpoint}: the recipe differs from the one it was "
                          f"trained with in {shown}. Resume with the recorded values (see "
                          f"{checkpoint.parent.parent / 'config.yaml'}), choose a new "
                          f"output_dir, or allow the change with checkpoint.allow_changes="
                          f"[{', '.join(sorted({k.split('.')[0] for k in refused}))}]")
    return [f"{k}: {_show(old.get(k))} -> {_show(new.get(k))}" for k in differ]


def check_resumed_data(run_dir: RunDir | None, cfg: Config, fingerprint: str) -> None:
    """The prepared data must be the data the checkpoint was trained on (same files, same
    content, same tokenization), unless a data key is in `checkpoint.allow_changes`."""
    if run_dir is None or not run_dir.recorded or "data_fingerprint" not in run_dir.recorded:
        return
    if any(_covered(key, ("data",)) for key in cfg.checkpoint.allow_changes):
        return
    if run_dir.recorded["data_fingerprint"] != fingerprint:
        raise ConfigError(f"resuming {run_dir.resume[1]}: the prepared data differ from the data "
                          f"it was trained on (same recipe, other content: a data file or the "
                          f"tokenizer changed). Restore them, choose a new output_dir, or allow "
                          f"the change with checkpoint.allow_changes=[data]")


def _show(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _record_recipe(out: Path, cfg: Config, resume: tuple[int, Path] | None) -> None:
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    history = out / "config_history"
    history.mkdir(exist_ok=True)
    number = 1 + sum(1 for _ in history.glob("*.yaml"))
    started = datetime.datetime.now().isoformat(timespec="seconds")
    origin = f"resumed from step {resume[0]}" if resume else "from the start"
    write_atomic(history / f"{number:03d}.yaml", f"# start {number}, {started}, {origin}\n{text}")
    write_atomic(out / "config.yaml", text)
