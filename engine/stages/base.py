"""What a training stage provides to the shared step and loop.

    STAGE = Stage(name="sft", prepare=..., loss=..., evaluator=..., validate=...)

- `prepare(cfg) -> Prepared`: its tokenized data (`engine.data.prepare.prepare` with the stage's
  tokenization), items that must share a micro-batch, and per-sequence / per-token fields;
- `loss(cfg) -> LossFunction`: a registered loss (`engine.losses`) with its options bound; the
  loss's declared metrics are the stage's per-step metrics, reduced by the step over
  micro-batches and data-parallel ranks and written to metrics.jsonl;
- `before_training(cfg, layout, training)`: work on the initial model before the run resumes or
  starts (DPO's reference log-probs);
- `evaluator(cfg, layout, training) -> Evaluator | None`: called with (train step, step number)
  before training, every `eval.every_steps` and at the end; returns the metrics for eval.jsonl;
- `validate(cfg)`: recipe checks only this stage needs (called by `engine.recipe.load_recipe`);
- `train(cfg, layout, stage) -> exit code`: a stage with its own outer loop (RLVR: generate,
  score, train, refit) replaces `engine.train.loop.train`, on the same plumbing
  (`engine.train.run.Run`);
- `updates_per_step(cfg)`: optimizer steps per step of the run (the LR schedule's horizon).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


def nothing_before_training(cfg, layout, training) -> None:
    return None


def no_evaluator(cfg, layout, training):
    return None


def no_checks(cfg) -> None:
    return None


def one_update(cfg) -> int:
    return 1


@dataclass(frozen=True)
class Stage:
    name: str
    prepare: Callable
    loss: Callable
    before_training: Callable = nothing_before_training
    evaluator: Callable = no_evaluator
    validate: Callable = no_checks
    train: Callable | None = None
    updates_per_step: Callable = one_update
