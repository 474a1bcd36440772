"""Tokenize and pack a recipe's data without training; print (and write) what happened.

    python -m tools.prepare_data RECIPE.yaml [key=value ...] [--world-size N] [--out FILE]

Counts: examples read, used by the mixture, kept, skipped by reason (with the first location of
each), truncated, tokens, trainable tokens, and the packing of one epoch for the recipe's
layout at N ranks: micro-batches and packing efficiency (real tokens / micro-batches × token
budget). The JSON goes to stdout and to FILE (default: OUTPUT_DIR/data_stats.json).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from engine.cli import parse, run_main
from engine.data.prepare import build_loader
from engine.recipe import load_recipe
from engine.stages import get_stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.prepare_data",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--world-size", type=int, default=1)
    parser.add_argument("--out", help="JSON file (default: OUTPUT_DIR/data_stats.json)")
    args, overrides = parse(parser, argv)
    cfg = load_recipe(args.recipe, overrides)
    cfg.validate(args.world_size)
    data = get_stage(cfg.stage).prepare(cfg)
    dp = cfg.data_parallel_size(args.world_size)
    loader = build_loader(cfg, data, dp, 0)
    steps_per_epoch = math.ceil(data.num_items / cfg.data.global_batch_size)
    stats = {**data.stats, "data_parallel_size": dp,
             "packing": loader.packing_stats(steps_per_epoch)}
    out = Path(args.out) if args.out else Path(cfg.output_dir) / "data_stats.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(stats, indent=1))
    print(json.dumps(stats, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
