"""Every GPU measurement and GPU test in one command, for one Markdown report.

    python -m tools.gpu_report [--out runs/gpu-report] [--peer ../shared/bench/peer_baseline.py
        | --no-peer] [--parts throughput,rlvr,local,wgrad,tests] [--quick] [--budget SECONDS]
        [--limit PART=SECONDS ...]

The parts, in this order of priority, each in its own process with its own time limit (a part
that fails or runs out of time is reported as such, and the next one runs); all of them take
about 15 minutes on an H100, and --parts splits them over several jobs:
  throughput  `tools.bench_throughput`: the TE path's 1B-shape step at 4 × 4,096 tokens and at
              1 × 16,384 (unpacked and packed), with TE's and the fused cross-entropy, beside the
              peer (HF transformers + Liger) and the card's GEMM + attention floor
  rlvr        `tools.bench_rlvr`: GRPO steps of the 1B shape, time per phase, refit, generation
              tokens/s beside standalone vLLM
  local       the 1B-shape step on the local (non-TE) path with the fused head, packed and not
  wgrad       the fused head's step at 4 × 4,096 and 1 × 16,384 packed, with and without TE's
              weight gradients accumulated straight into the fp32 main grads
  tests       `pytest tests/gpu`
--quick keeps the acceptance figures alone, about 8 minutes: throughput at 1 × 16,384 (packed
and not, both cross-entropies, fewer steps) beside the peer, two GRPO steps, the local path
packed. --budget ends the whole report within SECONDS: each part's limit is cut to what is left,
and a part with under a minute left is reported as not run, so that a job with a hard time
limit still writes its report. Each part's output goes to --out/PART.txt (and its JSON to
PART.json); report.md, rewritten after every part, holds the device, the software versions, the
commit, and per part its command, wall time, status and the end of its output (the tables).
Needs a CUDA GPU.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from engine.cli import run_main
from engine.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("throughput", "rlvr", "local", "wgrad", "tests")
LIMITS_S = {"throughput": 420, "rlvr": 360, "local": 120, "wgrad": 240, "tests": 600}
QUICK_LIMITS_S = {"throughput": 240, "rlvr": 240, "local": 60, "wgrad": 120, "tests": 300}
SHORTEST_PART_S = 60  # a part is not started with less time left than this
TAIL_LINES = 30


def commands(out: Path, peer: str | None, quick: bool = False) -> dict[str, list[str]]:
    """Each part's command line (`peer`: the peer's script, None for none; `quick`: the
    acceptance figures alone, with fewer steps)."""
    py = sys.executable
    bench = [py, "-m", "tools.bench_throughput", *(["--steps", "5", "--warmup", "2"] if quick
                                                   else ["--steps", "8", "--warmup", "3"])]
    return {
        "throughput": [*bench, *(["--peer", peer] if peer else ["--no-peer"]), "--variants",
                       "1x16384,1x16384-packed" if quick else "4x4096,1x16384,1x16384-packed",
                       "--vary", "train.cross_entropy", "te,fused",
                       "--out", str(out / "throughput.json")],
        "rlvr": [py, "-m", "tools.bench_rlvr", *(["--steps", "2"] if quick else []),
                 "--out", str(out / "rlvr.json")],
        "local": [*bench, "--no-peer", "--variants",
                  "1x16384-packed" if quick else "1x16384,1x16384-packed",
                  "--vary", "train.transformer_impl", "local",
                  "--vary", "train.cross_entropy", "fused", "--out", str(out / "local.json")],
        "wgrad": [*bench, "--no-peer", "--variants",
                  "1x16384-packed" if quick else "4x4096,1x16384-packed",
                  "--vary", "train.cross_entropy", "fused",
                  "--vary", "train.fuse_wgrad_accumulation", "false,true",
                  "--out", str(out / "wgrad.json")],
        "tests": [py, "-m", "pytest", "tests/gpu", "-v", "--tb=short", "-p", "no:cacheprovider"],
    }


@dataclass
class PartResult:
    name: str
    command: list[str]
    status: str  # "ok", "failed (exit N)", "out of time (N s)", "not run (N s of the budget left)"
    seconds: float
    output: str


def run_part(name: str, command: list[str], limit_s: float, out: Path) -> PartResult:
    """The part's process, its output teed to out/NAME.txt as it comes."""
    start = time.perf_counter()
    log_path = out / f"{name}.txt"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                text=True)
        try:
            status = "ok" if proc.wait(timeout=limit_s) == 0 else \
                f"failed (exit {proc.returncode})"
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            status = f"out of time ({limit_s:g} s)"
    return PartResult(name, command, status, time.perf_counter() - start,
                      log_path.read_text(errors="replace"))


def run_parts(cmds: dict[str, list[str]], limits: dict[str, float], out: Path, header: str,
              budget: float | None = None) -> list[PartResult]:
    """Run the parts in order, each under its limit cut to what is left of `budget` (seconds
    for all of them; None: no overall limit), rewriting out/report.md after each."""
    deadline = time.perf_counter() + budget if budget is not None else math.inf
    results = []
    for name, command in cmds.items():
        left = deadline - time.perf_counter()
        limit = limits[name] if left >= limits[name] else int(left)
        if limit < SHORTEST_PART_S:
            results.append(PartResult(name, command, f"not run ({max(limit, 0)} s of the budget "
                                      f"left)", 0.0, ""))
        else:
            print(f"{name}: running (limit {limit:g} s)", flush=True)
            results.append(run_part(name, command, limit, out))
        print(f"{name}: {results[-1].status} in {results[-1].seconds:.0f} s", flush=True)
        (out / "report.md").write_text(report(header, results))
    return results


def versions() -> str:
    import torch

    found = []
    for package in ("torch", "transformer-engine", "megatron-core", "vllm", "liger-kernel",
                    "transformers"):
        try:
            found.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip() or "unknown"
    return f"{device}; {', '.join(found)}; commit {commit}"


def report(header: str, results: list[PartResult]) -> str:
    lines = ["# GPU report", "", header, ""]
    for r in results:
        tail = "\n".join(r.output.rstrip().splitlines()[-TAIL_LINES:])
        lines += [f"## {r.name}: {r.status}, {r.seconds:.0f} s", "",
                  "`" + " ".join(r.command) + "`", "", "```", tail, "```", ""]
    return "\n".join(lines)


def parse_limits(items: list[str], quick: bool = False) -> dict[str, float]:
    limits = dict(QUICK_LIMITS_S if quick else LIMITS_S)
    for item in items:
        name, _, seconds = item.partition("=")
        if name not in PARTS or not seconds.replace(".", "", 1).isdigit():
            raise ConfigError(f"--limit takes PART=SECONDS with PART one of {', '.join(PARTS)}; "
                              f"got {item!r}")
        limits[name] = float(seconds)
    return limits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.gpu_report",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/gpu-report")
    parser.add_argument("--peer", default=str(ROOT.parent / "shared/bench/peer_baseline.py"))
    parser.add_argument("--no-peer", action="store_true", help="the throughput part alone")
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--limit", action="append", default=[], metavar="PART=SECONDS")
    parser.add_argument("--quick", action="store_true", help="the acceptance figures alone")
    parser.add_argument("--budget", type=float, help="seconds for the whole report")
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ConfigError(f"unknown part {unknown[0]!r}; known: {', '.join(PARTS)}")
    limits = parse_limits(args.limit, args.quick)
    if args.budget is not None and args.budget < SHORTEST_PART_S:
        raise ConfigError(f"--budget must leave at least {SHORTEST_PART_S} s for a part; "
                          f"got {args.budget:g}")
    if "throughput" in parts and not args.no_peer and not Path(args.peer).is_file():
        raise ConfigError(f"peer script not found: {args.peer} (--peer PATH or --no-peer)")
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("tools.gpu_report measures a GPU and this machine has no CUDA device")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cmds = commands(out, None if args.no_peer else args.peer, args.quick)
    header = versions()
    results = run_parts({name: cmds[name] for name in parts}, limits, out, header, args.budget)
    print(report(header, results))
    return 0 if all(r.status == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(run_main(main))
