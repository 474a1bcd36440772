"""The plumbing every stage's loop shares: run dir, resume, periodic and signal-driven
checkpoints, evaluation, metrics and the progress line.

    run_dir = open_run_dir(cfg, layout)          # engine.train.run_dir: lock, resume check
    training = build_training(cfg, layout, stage, run_dir)
    with Run(cfg, layout, training, run_dir, evaluator) as run:
        for step in run.steps():          # from the resumed step; stops early on a signal
            batch = training.loader.next_batch()
            run.record(step, batch, training.step(batch.micro_batches))
    return run.exit_code

A stage with its own outer loop (generate, score, train, refit) writes its body inside the same
`for`; everything around it is here. Run dir (`output_dir`): `config.yaml` (resolved; every
start's in `config_history/`), `run.lock`, `data_stats.json`, `metrics.jsonl`, `eval.jsonl`,
`checkpoints/step_N/`, `tensorboard/`, `train.log`. A run whose run dir holds a complete
checkpoint resumes from the newest one (`engine.train.run_dir` checks the recipe against it).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Callable, Iterator

from engine.checkpoint import train_state
from engine.config import Config
from engine.launch.layout import Layout
from engine.metrics.log import log
from engine.metrics.progress import Progress
from engine.metrics.writer import MetricsWriter
from engine.train.build import Training
from engine.train.run_dir import RunDir
from engine.train.signals import EXIT_REQUEUE, StopRequest
from engine.train.skips import SkippedSteps


class Run:
    """`companions`: other models trained beside the policy, by name (PPO's value model: each
    with .model, .optimizer, .scheduler and .model_config), checkpointed and resumed with it."""

    def __init__(self, cfg: Config, layout: Layout, training: Training, run_dir: RunDir,
                 evaluator: Callable | None = None, companions: dict | None = None):
        out = run_dir.path
        self.cfg, self.layout, self.t, self.out, self.evaluator = \
            cfg, layout, training, out, evaluator
        self.companions = companions or {}
        self.root = train_state.checkpoint_root(out)
        self.start_step = self.saved_step = 0
        found = run_dir.resume
        if found is not None:
            t = training
            self.start_step = self.saved_step = train_state.load(
                found[1], t.model, t.optimizer, t.scheduler, t.loader, layout, self.companions)
            log.info("resumed from %s (step %d)", found[1], self.start_step)
        self.metrics = MetricsWriter(out if layout.is_logger else None, cfg.logging.tensorboard,
                                     after_step=self.start_step)
        self.progress: Progress | None = None  # started after the first evaluation
        self.skips = SkippedSteps(cfg.train.max_skipped_in_a_row)
        self.exit_code = 0

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc) -> None:
        self.metrics.close()

    def save(self, step: int) -> None:
        t = self.t
        path = train_state.save(self.root, step, t.model, t.optimizer, t.scheduler, t.loader,
                                self.layout, self.cfg.checkpoint.keep_last,
                                meta={"model": asdict(self.cfg.model),
                                      "companions": {name: asdict(c.model_config)
                                                     for name, c in self.companions.items()},
                                      "precision": self.cfg.precision,
                                      "recipe": self.cfg.to_dict(),
                                      "data_fingerprint": t.data.stats["fingerprint"]},
                                companions=self.companions)
        self.saved_step = step
        log.info("saved checkpoint %s", path)

    def evaluate(self, step: int) -> None:
        if self.evaluator is not None:
            self.metrics.write({"step": step, **self.evaluator(self.t.step, step)}, kind="eval")

    def record(self, step: int, batch, result, extra: dict | None = None,
               log_keys: tuple[str, ...] = ()) -> None:
        """Write a step's metrics (a GlobalBatch and its StepResult, and a stage's `extra`
        metrics) and the progress line; count a skipped update (stop after too many in a row)."""
        extra = extra or {}
        self.metrics.write(self.progress.record(step, batch, result, self.t.loader.epoch,
                                                extra, log_keys))
        newest = (str(self.root / f"step_{self.saved_step}") if self.saved_step
                  else "none (no step saved yet)")
        norms = {"grad_norm": result.grad_norm,
                 **{k: v for k, v in extra.items() if k.endswith("grad_norm")}}
        self.skips.see(step, result.skipped, norms, newest)

    def steps(self) -> Iterator[int]:
        """Step numbers to train, from the one after the resumed checkpoint to the last. After
        each step's body: periodic evaluation and checkpoint, and the stop-signal check (which
        checkpoints and ends the iteration with `exit_code` = EXIT_REQUEUE). After the last
        step: the final checkpoint and evaluation."""
        cfg, max_steps = self.cfg, self.t.max_steps
        if self.start_step >= max_steps:
            log.info("already finished: step %d of %d is in %s; nothing to train",
                     self.start_step, max_steps, self.root)
            return
        if self.start_step == 0:
            self.evaluate(0)
        stop = StopRequest(self.layout.device)
        self.progress = Progress(cfg, self.layout, max_steps, self.start_step)
        for step in range(self.start_step + 1, max_steps + 1):
            yield step
            if cfg.eval.every_steps and step % cfg.eval.every_steps == 0 and step < max_steps:
                self.evaluate(step)
                self.progress.meter.restart()
            if cfg.checkpoint.every_steps and step % cfg.checkpoint.every_steps == 0:
                self.save(step)
                self.progress.meter.restart()
            if stop.agreed():
                if self.saved_step != step:
                    self.save(step)
                stop.settle()
                log.info("stop signal: checkpoint at step %d, exiting with %d to be requeued",
                         step, EXIT_REQUEUE)
                self.exit_code = EXIT_REQUEUE
                return
        if self.saved_step != max_steps:
            self.save(max_steps)
        self.evaluate(max_steps)
        self.progress.done(self.out)
