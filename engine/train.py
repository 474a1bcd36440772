"""Training entry point.

    python -m engine.train RECIPE.yaml [key=value ...]                      # one process
    torchrun --nproc-per-node N -m engine.train RECIPE.yaml [key=value ...]
    srun python -m engine.train RECIPE.yaml [key=value ...]                 # Slurm tasks

The recipe is validated against the world size before any process group exists; a bad recipe
exits with status 2 and a message naming the key, bad data with one naming file and line.
"""

from __future__ import annotations

import sys

from engine.config import ConfigError, load_config
from engine.data.records import DataError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    from engine import dist

    env = dist.launch_env()
    try:
        cfg = load_config(argv[0], argv[1:])
        cfg.validate(env.world_size)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    from engine import loop

    layout = dist.init_distributed(cfg, env)
    try:
        return loop.run(cfg, layout)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    except DataError as e:
        print(f"data error: {e}", file=sys.stderr)
        return 2
    finally:
        dist.shutdown()


if __name__ == "__main__":
    sys.exit(main())
