"""Everything one rank trains with, built from a recipe and its stage: data and loader, the model
(with its layout-free init or its source's weights), optimizer, LR schedule, and the train step
bound to the stage's loss."""

from __future__ import annotations

import json
from dataclasses import dataclass

from engine.atomic import write_atomic
from engine.checkpoint.weights import checkpoint_source
from engine.compat import platform
from engine.config import Config, ModelConfig
from engine.data.loader import PackedLoader
from engine.data.prepare import Prepared, build_loader
from engine.hf.importer import hf_source
from engine.launch.layout import Layout
from engine.launch.seeds import seed_everything
from engine.metrics.log import log
from engine.model.build import build_model
from engine.model.spec import uses_transformer_engine
from engine.model.init import Source, fill_weights, random_source
from engine.train.optimizer import build_optimizer, wrap_for_training
from engine.train.run_dir import RunDir, check_resumed_data
from engine.train.step import TrainStep


@dataclass
class Training:
    data: Prepared
    loader: PackedLoader
    model: object  # megatron DDP
    optimizer: object
    scheduler: object
    step: TrainStep
    max_steps: int
    updates: int  # optimizer steps over the run: the LR schedule's horizon
    warmup_updates: int


def weight_source(m: ModelConfig, seed: int, tp: int) -> tuple[Source, str]:
    """Where a model's initial weights come from (`model.init_from_hf`,
    `model.init_from_checkpoint`, or the seeded layout-free init), and those words for the log."""
    if m.init_from_hf:
        return hf_source(m, m.init_from_hf, tp), f"weights from {m.init_from_hf}"
    if m.init_from_checkpoint:
        return checkpoint_source(m.init_from_checkpoint), \
            f"weights from {m.init_from_checkpoint}"
    return random_source(m, seed), f"random init (seed {seed})"


def build_model_with_weights(cfg: Config, layout: Layout, source: Source | None = None,
                             what: str = "", role: str = "model"):
    """This rank's stage of `cfg.model`, its weights from `source` (default: `weight_source`);
    `role` names it in the log (a run may build a reference or a value model beside its own)."""
    model = build_model(cfg, first_stage=layout.is_first_stage, last_stage=layout.is_last_stage,
                        device=layout.device)
    if source is None:
        source, what = weight_source(cfg.model, cfg.seed, layout.tp)
    fill_weights(model, source)
    log.info("%s: %s%s, %d parameters on this rank, %s", role, cfg.model.arch,
             "" if cfg.model.head == "lm" else f" ({cfg.model.head} head)",
             sum(p.numel() for p in model.parameters()), what)
    return model


def build_training(cfg: Config, layout: Layout, stage, run_dir: RunDir | None) -> Training:
    """For `stage` (an `engine.stages.base.Stage`: its data and loss). Logs what it built and
    writes data_stats.json into the run dir on the logging rank; a resumed run's data must be
    the data of its checkpoint (checked before the model is built)."""
    log.info("platform: %s; layers: %s; cross-entropy: %s", platform.describe(),
             "transformer_engine" if uses_transformer_engine(cfg) else "local",
             cfg.train.cross_entropy)
    log.info("layout: world=%d tp=%d pp=%d dp=%d sp=%s distributed_optimizer=%s precision=%s "
             "stage=%s", layout.world_size, layout.tp, layout.pp, layout.dp, cfg.parallel.sp,
             cfg.parallel.distributed_optimizer, cfg.precision, stage.name)
    data = stage.prepare(cfg)
    stats = data.stats
    check_resumed_data(run_dir, cfg, stats["fingerprint"])
    if run_dir is not None and layout.is_logger:
        write_atomic(run_dir.path / "data_stats.json", json.dumps(stats, indent=1))
    tokens = (f"{stats['tokens']} tokens, {stats['trainable_tokens']} trainable"
              if stats["trainable_tokens"] else f"{stats['tokens']} prompt tokens")  # RLVR
    log.info("data: %d examples read, %d kept, skipped %s, %d truncated; %s",
             stats["examples_read"], stats["examples_kept"], stats["skipped"] or "none",
             stats["truncated"], tokens)
    loader = build_loader(cfg, data, layout.dp, layout.dp_rank)
    max_steps, warmup_steps = cfg.resolve_schedule(data.num_items)
    log.info("schedule: %d steps (%.2f epochs), %d warmup; packing %s", max_steps,
             max_steps * cfg.data.global_batch_size / data.num_items, warmup_steps,
             loader.packing_stats(min(max_steps, 50)))

    seed_everything(cfg.seed)
    model = wrap_for_training(build_model_with_weights(cfg, layout), cfg)
    updates, warmup_updates = (n * stage.updates_per_step(cfg) for n in (max_steps, warmup_steps))
    optimizer, scheduler = build_optimizer(model, cfg, updates, warmup_updates)
    step = TrainStep(model, optimizer, scheduler, layout, stage.loss(cfg))
    return Training(data, loader, model, optimizer, scheduler, step, max_steps, updates,
                    warmup_updates)
