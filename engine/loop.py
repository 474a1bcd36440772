"""The training loop: build data, model and optimizer for this rank, resume, step, evaluate,
checkpoint, log.

Run dir (`output_dir`): `config.yaml` (resolved), `data_stats.json`, `metrics.jsonl`,
`eval.jsonl` (with `eval.sources`), `checkpoints/step_N/`, `tensorboard/`, `train.log`.
A run whose run dir holds a complete checkpoint resumes from the newest one by itself.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from engine import checkpoint, platform
from engine.config import Config
from engine.data.loader import PackedLoader
from engine.data.prepare import Prepared, build_loader, pad_multiple, prepare
from engine.dist import Layout, seed_everything
from engine.evaluate import Evaluator
from engine.flops import peak_tflops, step_flops
from engine.metrics import MetricsWriter, Throughput, log, setup_logging
from engine.models import build_model, padded_vocab_size
from engine.optim import build_optimizer, wrap_for_training
from engine.signals import EXIT_REQUEUE, StopRequest
from engine.step import TrainStep
from engine.weights import init_weights, load_checkpoint_weights, load_hf_weights


@dataclass
class Training:
    """Everything one rank trains with."""

    data: Prepared
    loader: PackedLoader
    model: object  # megatron DDP
    optimizer: object
    scheduler: object
    step: TrainStep
    max_steps: int


def build_training(cfg: Config, layout: Layout, out: Path | None) -> Training:
    """Data, model (with its layout-free init), optimizer and schedule; logs what it built and
    writes data_stats.json into `out` on the logging rank."""
    log.info("platform: %s", platform.describe())
    log.info("layout: world=%d tp=%d pp=%d dp=%d sp=%s distributed_optimizer=%s precision=%s",
             layout.world_size, layout.tp, layout.pp, layout.dp, cfg.parallel.sp,
             cfg.parallel.distributed_optimizer, cfg.precision)
    data = prepare(cfg)
    stats = data.stats
    if out is not None and layout.is_logger:
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
    source = cfg.model.init_from_hf or cfg.model.init_from_checkpoint
    if cfg.model.init_from_hf:
        load_hf_weights(model, cfg.model, cfg.model.init_from_hf,
                        padded_vocab_size(cfg.model, layout.tp))
    elif cfg.model.init_from_checkpoint:
        load_checkpoint_weights(model, cfg.model.init_from_checkpoint)
    else:
        init_weights(model, cfg.model, cfg.seed)
    log.info("model: %s, %d parameters on this rank, %s", cfg.model.arch,
             sum(p.numel() for p in model.parameters()),
             f"weights from {source}" if source else f"random init (seed {cfg.seed})")
    model = wrap_for_training(model, cfg)
    optimizer, scheduler = build_optimizer(model, cfg, max_steps, warmup_steps)
    step = TrainStep(model, optimizer, scheduler, layout, cfg.model.vocab_size)
    return Training(data, loader, model, optimizer, scheduler, step, max_steps)


def run(cfg: Config, layout: Layout) -> int:
    """Train to the end (exit code 0) or until a stop signal (checkpoint, EXIT_REQUEUE)."""
    out = Path(cfg.output_dir)
    setup_logging(out if layout.is_logger else None)
    if layout.is_logger:
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    t = build_training(cfg, layout, out)
    data, loader, model, optimizer, scheduler = t.data, t.loader, t.model, t.optimizer, \
        t.scheduler
    train_step, max_steps = t.step, t.max_steps

    root = checkpoint.checkpoint_root(out)
    saved_step = start_step = 0
    found = checkpoint.latest(root)
    if found is not None:
        saved_step = start_step = checkpoint.load(found[1], model, optimizer, scheduler, loader,
                                                  layout)
        log.info("resumed from %s (step %d)", found[1], start_step)

    def save(step: int) -> None:
        path = checkpoint.save(root, step, model, optimizer, scheduler, loader, layout,
                               cfg.checkpoint.keep_last,
                               meta={"model": asdict(cfg.model), "precision": cfg.precision})
        log.info("saved checkpoint %s", path)

    metrics = MetricsWriter(out if layout.is_logger else None, cfg.logging.tensorboard,
                            after_step=start_step)
    evaluator = Evaluator(cfg, layout, data.chat, pad_multiple(cfg)) if cfg.eval.sources \
        else None

    def evaluate(step: int) -> None:
        if evaluator is not None:
            metrics.write({"step": step, **evaluator(train_step, step)}, kind="eval")

    if start_step == 0:
        evaluate(0)
    stop = StopRequest(layout.device)
    progress = Progress(cfg, layout, max_steps, start_step)
    try:
        for step in range(start_step + 1, max_steps + 1):
            batch = loader.next_batch()
            result = train_step(batch.micro_batches)
            metrics.write(progress.record(step, batch, result, loader.epoch))
            if cfg.eval.every_steps and step % cfg.eval.every_steps == 0 and step < max_steps:
                evaluate(step)
                progress.meter.restart()
            if cfg.checkpoint.every_steps and step % cfg.checkpoint.every_steps == 0:
                save(saved_step := step)
                progress.meter.restart()
            if stop.agreed():
                if saved_step != step:
                    save(saved_step := step)
                log.info("stop signal: checkpoint at step %d, exiting with %d to be requeued",
                         step, EXIT_REQUEUE)
                return EXIT_REQUEUE
        if saved_step != max_steps:
            save(max_steps)
        evaluate(max_steps)
    finally:
        metrics.close()
    progress.done(out)
    return 0


class Progress:
    """Per-step records (throughput, TFLOP/s, MFU) and the progress line of the log."""

    def __init__(self, cfg: Config, layout: Layout, max_steps: int, start_step: int):
        self.cfg, self.layout, self.max_steps = cfg, layout, max_steps
        self.peak = cfg.logging.peak_tflops or (
            peak_tflops(platform.device_name(), cfg.precision) if platform.has_cuda() else None)
        self.vocab = padded_vocab_size(cfg.model, layout.tp)
        self.meter = Throughput()
        self.start, self.first_step = time.perf_counter(), start_step + 1
        self.first_loss = self.last_loss = None

    def record(self, step: int, batch, result, epoch: float) -> dict:
        elapsed, tokens_per_s = self.meter.tick(batch.tokens)
        flops = step_flops(self.cfg.model, batch.lengths, self.vocab)
        tflops = flops / elapsed / self.layout.world_size / 1e12
        mfu = tflops / self.peak if self.peak else None
        self.first_loss = result.loss if self.first_loss is None else self.first_loss
        self.last_loss = result.loss
        if step % self.cfg.train.log_every == 0 or step in (self.first_step, self.max_steps):
            done = time.perf_counter() - self.start
            eta = done / (step - self.first_step + 1) * (self.max_steps - step)
            log.info("step %d/%d | loss %.4f | lr %.3g | grad_norm %.3f | %.0f tok/s | "
                     "%.3g TFLOP/s/GPU%s | eta %.0fs", step, self.max_steps, result.loss,
                     result.lr, result.grad_norm, tokens_per_s, tflops,
                     f" | MFU {100 * mfu:.1f}%" if mfu else "", eta)
        return {
            "step": step,
            "loss": result.loss,
            "lr": result.lr,
            "grad_norm": result.grad_norm,
            "tokens": batch.tokens,
            "target_tokens": batch.target_tokens,
            "tokens_per_s": tokens_per_s,
            "tflops_per_gpu": tflops,
            "mfu": mfu,
            "step_time_s": elapsed,
            "micro_batches": len(batch.micro_batches),
            "packing_efficiency": batch.tokens / batch.token_budget,
            "epoch": epoch,
            "skipped": result.skipped,
        }

    def done(self, out: Path) -> None:
        log.info("done: steps %d-%d in %.1fs, loss %.4f -> %.4f; run dir %s", self.first_step,
                 self.max_steps, time.perf_counter() - self.start, self.first_loss or 0.0,
                 self.last_loss or 0.0, out)
