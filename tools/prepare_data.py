"""Tokenize and pack a recipe's data without training; print (and write) what happened.

    python tools/prepare_data.py RECIPE.yaml [key=value ...] [--world-size N] [--out FILE]

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

# The repository root replaces this script's folder on the path: tools/profile.py must not
# shadow the standard library's `profile` module.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from engine.config import ConfigError, load_config  # noqa: E402
from engine.data.prepare import build_loader, prepare  # noqa: E402
from engine.data.records import DataError  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*", help="key=value")
    parser.add_argument("--world-size", type=int, default=1)
    parser.add_argument("--out", help="JSON file (default: OUTPUT_DIR/data_stats.json)")
    args = parser.parse_args()
    try:
        cfg = load_config(args.recipe, args.overrides)
        cfg.validate(args.world_size)
        data = prepare(cfg)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    dp = cfg.data_parallel_size(args.world_size)
    loader = build_loader(cfg, data, dp, 0)
    steps_per_epoch = math.ceil(len(data.sequences) / cfg.data.global_batch_size)
    stats = {**data.stats, "data_parallel_size": dp,
             "packing": loader.packing_stats(steps_per_epoch)}
    out = Path(args.out) if args.out else Path(cfg.output_dir) / "data_stats.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(stats, indent=1))
    print(json.dumps(stats, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
