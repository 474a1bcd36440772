"""Per-step records and the progress line: throughput, TFLOP/s per GPU and MFU over each step's
wall time, the stage's metrics, and an ETA in the log every `train.log_every` steps."""

from __future__ import annotations

import time
from pathlib import Path

from engine.config import Config
from engine.launch.layout import Layout
from engine.metrics.flops import device_peak_tflops, step_flops
from engine.metrics.log import log


class Throughput:
    """Tokens per second over the time since the previous `tick`."""

    def __init__(self):
        self.last = time.perf_counter()

    def restart(self) -> None:
        """Exclude what happened since the last tick (an evaluation, a checkpoint save)."""
        self.last = time.perf_counter()

    def tick(self, tokens: int) -> tuple[float, float]:
        now = time.perf_counter()
        elapsed, self.last = now - self.last, now
        return elapsed, tokens / elapsed if elapsed > 0 else 0.0


class Progress:
    def __init__(self, cfg: Config, layout: Layout, max_steps: int, start_step: int):
        self.cfg, self.layout, self.max_steps = cfg, layout, max_steps
        self.peak = device_peak_tflops(cfg.precision, cfg.logging.peak_tflops)
        self.vocab = cfg.model.padded_vocab_size(layout.tp)
        self.meter = Throughput()
        self.start, self.first_step = time.perf_counter(), start_step + 1
        self.first_loss = self.last_loss = None

    def record(self, step: int, batch, result, epoch: float, extra: dict,
               log_keys: tuple[str, ...] = ()) -> dict:
        """The metrics.jsonl record of a step (a GlobalBatch and its StepResult, and a stage's
        `extra` metrics, of which the numbers named in `log_keys` also go to the log line)."""
        elapsed, tokens_per_s = self.meter.tick(batch.tokens)
        flops = step_flops(self.cfg.model, batch.lengths, self.vocab)
        tflops = flops / elapsed / self.layout.world_size / 1e12
        mfu = tflops / self.peak if self.peak else None
        self.first_loss = result.loss if self.first_loss is None else self.first_loss
        self.last_loss = result.loss
        if step % self.cfg.train.log_every == 0 or step in (self.first_step, self.max_steps):
            done = time.perf_counter() - self.start
            eta = done / (step - self.first_step + 1) * (self.max_steps - step)
            others = "".join(f" | {k} {v:.4g}" for k, v in result.metrics.items() if k != "loss")
            others += "".join(f" | {k} {extra[k]:.4g}" for k in log_keys)
            log.info("step %d/%d | loss %.4f%s | lr %.3g | grad_norm %.3f | %.0f tok/s | "
                     "%.3g TFLOP/s/GPU%s | eta %.0fs", step, self.max_steps, result.loss, others,
                     result.lr, result.grad_norm, tokens_per_s, tflops,
                     f" | MFU {100 * mfu:.1f}%" if mfu else "", eta)
        return {
            "step": step,
            **result.metrics,
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
            **extra,
        }

    def done(self, out: Path) -> None:
        log.info("done: steps %d-%d in %.1fs, loss %.4f -> %.4f; run dir %s", self.first_step,
                 self.max_steps, time.perf_counter() - self.start, self.first_loss or 0.0,
                 self.last_loss or 0.0, out)
