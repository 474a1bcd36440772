"""The training loop: build data, model and optimizer for this rank, step, log the run dir.

Run dir (`output_dir`): `config.yaml` (resolved), `metrics.jsonl`, `tensorboard/`, `train.log`.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from engine import platform
from engine.config import Config, ConfigError
from engine.data.documents import tokenize_documents
from engine.data.loader import PackedLoader
from engine.data.tokenizer import load_tokenizer
from engine.dist import Layout, seed_everything
from engine.metrics import MetricsWriter, Throughput, log, setup_logging
from engine.models import build_model
from engine.optim import build_optimizer, wrap_for_training
from engine.step import TrainStep
from engine.weights import init_weights


def build_loader(cfg: Config, layout: Layout, tokenizer) -> PackedLoader:
    sequences = tokenize_documents(cfg.data, tokenizer)
    return PackedLoader(
        sequences,
        global_batch_size=cfg.data.global_batch_size,
        max_tokens_per_micro_batch=cfg.data.max_tokens_per_micro_batch,
        dp_size=layout.dp,
        dp_rank=layout.dp_rank,
        pad_id=tokenizer.pad_id,
        pad_multiple=cfg.parallel.tp if cfg.parallel.sp else 1,
        seed=cfg.seed,
        shuffle=cfg.data.shuffle,
    )


def run(cfg: Config, layout: Layout) -> None:
    out = Path(cfg.output_dir)
    setup_logging(out if layout.is_logger else None)
    if layout.is_logger:
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    log.info("platform: %s", platform.describe())
    log.info("layout: world=%d tp=%d pp=%d dp=%d sp=%s distributed_optimizer=%s precision=%s",
             layout.world_size, layout.tp, layout.pp, layout.dp, cfg.parallel.sp,
             cfg.parallel.distributed_optimizer, cfg.precision)

    tokenizer = load_tokenizer(cfg.data.tokenizer)
    if cfg.model.vocab_size < tokenizer.vocab_size:
        raise ConfigError(f"model.vocab_size={cfg.model.vocab_size} is smaller than the "
                          f"tokenizer's vocabulary ({tokenizer.vocab_size})")
    loader = build_loader(cfg, layout, tokenizer)
    log.info("data: %d sequences, %d tokens", len(loader.sequences),
             sum(len(s) for s in loader.sequences))

    seed_everything(cfg.seed)
    model = build_model(cfg, layout)
    init_weights(model, cfg.model, cfg.seed)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("model: %s, %d parameters on this rank", cfg.model.arch, n_params)
    model = wrap_for_training(model, cfg)
    optimizer, scheduler = build_optimizer(model, cfg)
    train_step = TrainStep(model, optimizer, scheduler, layout, cfg.model.vocab_size)

    metrics = MetricsWriter(out if layout.is_logger else None, cfg.logging.tensorboard)
    meter = Throughput()
    start = time.perf_counter()
    first_loss = last_loss = None
    try:
        for step in range(1, cfg.train.max_steps + 1):
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
            if step % cfg.train.log_every == 0 or step in (1, cfg.train.max_steps):
                done = time.perf_counter() - start
                eta = done / step * (cfg.train.max_steps - step)
                log.info("step %d/%d | loss %.4f | lr %.3g | grad_norm %.3f | %.0f tok/s | "
                         "eta %.0fs", step, cfg.train.max_steps, result.loss, result.lr,
                         result.grad_norm, tokens_per_s, eta)
    finally:
        metrics.close()
    log.info("done: %d steps in %.1fs, loss %.4f -> %.4f; run dir %s", cfg.train.max_steps,
             time.perf_counter() - start, first_loss, last_loss, out)
