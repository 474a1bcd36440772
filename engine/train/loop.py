"""The training loop of stages that learn from a fixed data set (pretrain, sft; dpo next): each
step takes the loader's next global batch and runs the train step with the stage's loss.

    exit_code = train(cfg, layout, get_stage(cfg.stage))   # 0, or EXIT_REQUEUE on a signal
"""

from __future__ import annotations

from engine.config import Config
from engine.launch.layout import Layout
from engine.train.build import build_training
from engine.train.run import Run
from engine.train.run_dir import open_run_dir


def train(cfg: Config, layout: Layout, stage) -> int:
    """Train `stage` (an `engine.stages.base.Stage`) to its last step."""
    run_dir = open_run_dir(cfg, layout)
    training = build_training(cfg, layout, stage, run_dir)
    stage.before_training(cfg, layout, training)  # the initial model, before any resume
    evaluator = stage.evaluator(cfg, layout, training)
    with Run(cfg, layout, training, run_dir, evaluator) as run:
        for step in run.steps():
            batch = training.loader.next_batch()
            run.record(step, batch, training.step(batch.micro_batches))
    return run.exit_code
