"""Training entry point.

    python -m engine.train RECIPE.yaml [key=value ...]                      # one process
    torchrun --nproc-per-node N -m engine.train RECIPE.yaml [key=value ...]
    srun python -m engine.train RECIPE.yaml [key=value ...]                 # Slurm tasks

The stage comes from the recipe. The recipe is validated against the world size before any
process group exists; a bad recipe, bad data or a bad checkpoint exits with status 2 and one
`error: ...` line naming the key, file and line, or tensor; so does a GPU out of memory, naming
where and the micro-batch budget that fits (`engine.train.out_of_memory`).
"""

from __future__ import annotations

import argparse
import sys

from engine.cli import parse, run_main
from engine.errors import ConfigError
from engine.launch.env import launch_env
from engine.recipe import load_recipe
from engine.stages import get_stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.train",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    args, overrides = parse(parser, argv)
    env = launch_env()
    cfg = load_recipe(args.recipe, overrides)
    cfg.validate(env.world_size)
    if cfg.model.head != "lm":
        source = cfg.model.init_from_hf or cfg.model.init_from_checkpoint or "model.head"
        raise ConfigError(f"model.head={cfg.model.head}: stage {cfg.stage} trains a language "
                          f"model; {source} is a value model")
    from engine.launch.process_groups import init_distributed, shutdown
    from engine.train.loop import train
    from engine.train.out_of_memory import explain_out_of_memory

    layout = init_distributed(cfg.parallel, env)
    stage = get_stage(cfg.stage)
    try:
        with explain_out_of_memory(cfg, layout):
            return (stage.train or train)(cfg, layout, stage)
    finally:
        shutdown()


if __name__ == "__main__":
    sys.exit(run_main(main))
