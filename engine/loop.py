"""The training loop: build data, model and optimizer for this rank, step, evaluate, log.

Run dir (`output_dir`): `config.yaml` (resolved), `metrics.jsonl`, `eval.jsonl` (with
`eval.sources`), `data_stats.json`, `tensorboard/`, `train.log`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from engine import platform
from engine.config import Config
from engine.data.prepare import build_loader, pad_multiple, prepare
from engine.dist import Layout, seed_everything
from engine.evaluate import Evaluator
from engine.metrics import MetricsWriter, Throughput, log, setup_logging
from engine.models import build_model
from engine.optim import build_optimizer, wrap_for_training
from engine.step import TrainStep
from engine.weights import init_weights


def run(cfg: Config, layout: Layout) -> None:
    out = Path(cfg.output_dir)
    setup_logging(out if layout.is_logger else None)
    if layout.is_logger:
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    log.info("platform: %s", platform.describe())
    log.info("layout: world=%d tp=%d pp=%d dp=%d sp=%s distributed_optimizer=%s precision=%s",
             layout.world_size, layout.tp, layout.pp, layout.dp, cfg.parallel.sp,
             cfg.parallel.distributed_optimizer, cfg.precision)

    data = prepare(cfg)
    stats = data.stats
    if layout.is_logger:
        (out / "data_stats.json").write_text(json.dumps(stats, indent=1))
    log.info("data: %d examples read, %d kept, skipped %s, %d truncated; %d tokens, %d trainable",
             stats["examples_read"], stats["examples_kept"], stats["skipped"] or "none",
             stats["truncated"], stats["tokens"], stats["trainable_tokens"])
    loader = build_loader(cfg, data, layout.dp, layout.dp_rank)
    max_steps, warmup_steps = cfg.resolve_schedule(len(data.sequences))
    log.info("schedule: %d steps (%.2f epochs), %d warmup; packing %s", max_steps,
             max_steps * cfg.data.global_batch_size / len(data.sequences), warmup_steps,
             loader.packing_stats(min(max_steps, 50)))

    seed_everything(cfg.seed)
    model = build_model(cfg, layout)
    init_weights(model, cfg.model, cfg.seed)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("model: %s, %d parameters on this rank", cfg.model.arch, n_params)
    model = wrap_for_training(model, cfg)
    optimizer, scheduler = build_optimizer(model, cfg, max_steps, warmup_steps)
    train_step = TrainStep(model, optimizer, scheduler, layout, cfg.model.vocab_size)

    metrics = MetricsWriter(out if layout.is_logger else None, cfg.logging.tensorboard)
    evaluator = Evaluator(cfg, layout, data.chat, pad_multiple(cfg)) if cfg.eval.sources \
        else None

    def evaluate(step: int) -> None:
        if evaluator is not None:
            metrics.write({"step": step, **evaluator(train_step, step)}, kind="eval")

    evaluate(0)
    meter = Throughput()
    start = time.perf_counter()
    first_loss = last_loss = None
    try:
        for step in range(1, max_steps + 1):
            batch = loader.next_batch()
            result = train_step(batch.micro_batches)
            elapsed, tokens_per_s = meter.tick(batch.tokens)
            record = {
                "step": step,
                "loss": result.loss,
                "lr": result.lr,
                "grad_norm": result.grad_norm,
                "tokens": batch.tokens,
                "target_tokens": batch.target_tokens,
                "tokens_per_s": tokens_per_s,
                "step_time_s": elapsed,
                "micro_batches": len(batch.micro_batches),
                "packing_efficiency": batch.tokens / batch.token_budget,
                "epoch": loader.epoch,
                "skipped": result.skipped,
            }
            metrics.write(record)
            first_loss = result.loss if first_loss is None else first_loss
            last_loss = result.loss
            if cfg.eval.every_steps and step % cfg.eval.every_steps == 0 and step < max_steps:
                evaluate(step)
            if step % cfg.train.log_every == 0 or step in (1, max_steps):
                done = time.perf_counter() - start
                eta = done / step * (max_steps - step)
                log.info("step %d/%d | loss %.4f | lr %.3g | grad_norm %.3f | %.0f tok/s | "
                         "eta %.0fs", step, max_steps, result.loss, result.lr,
                         result.grad_norm, tokens_per_s, eta)
        evaluate(max_steps)
    finally:
        metrics.close()
    log.info("done: %d steps in %.1fs, loss %.4f -> %.4f; run dir %s", max_steps,
             time.perf_counter() - start, first_loss, last_loss, out)
