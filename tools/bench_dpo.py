"""DPO's cost per token against SFT's: the same model, the same micro-batch token budget, timed
steps of each stage (`python -m tools.perf step` in a fresh process per stage), and the ratio
of their tokens/s.

    python -m tools.bench_dpo [--sft RECIPE] [--dpo RECIPE] [--nproc N] [--steps 5]
        [--warmup 2] [key=value ...]          # overrides apply to both recipes

Defaults: the tiny SFT and DPO recipes, both from random init. Prints JSON: each stage's
tokens/s per GPU, TFLOP/s per GPU and seconds per step, and dpo_over_sft_tokens_per_s (the
goal: ≥ 0.95 — a pair costs no more per token than a chat).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from engine.cli import parse, run_main

ROOT = Path(__file__).resolve().parents[1]


def _perf_step(recipe: str, nproc: int, args, overrides: list[str]) -> dict:
    launcher = [sys.executable] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc)]
    cmd = [*launcher, "-m", "tools.perf", "step", recipe, "--steps", str(args.steps),
           "--warmup", str(args.warmup), "model.init_from_checkpoint=null", *overrides]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(proc.returncode)
    return json.loads(proc.stdout[proc.stdout.index("{"):])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_dpo",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--sft", default=str(ROOT / "recipes/tiny/sft.yaml"))
    parser.add_argument("--dpo", default=str(ROOT / "recipes/tiny/dpo.yaml"))
    parser.add_argument("--nproc", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args, overrides = parse(parser, argv)
    result = {}
    for stage, recipe in (("sft", args.sft), ("dpo", args.dpo)):
        r = _perf_step(recipe, args.nproc, args, overrides)
        result[stage] = {k: r[k] for k in ("device", "world_size", "tokens_per_step",
                                           "tokens_per_s_per_gpu", "tflops_per_gpu", "mfu",
                                           "seconds_per_step")}
    result["dpo_over_sft_tokens_per_s"] = (result["dpo"]["tokens_per_s_per_gpu"]
                                           / result["sft"]["tokens_per_s_per_gpu"])
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
