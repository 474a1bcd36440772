"""Helpers for tests that launch the engine as users do (python -m / torchrun) and read run dirs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "recipes" / "tiny" / "pretrain.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args: list[str], nproc: int = 1, env: dict | None = None, timeout: int = 600,
           module: bool = True) -> subprocess.CompletedProcess:
    """Run `python -m engine.train ARGS` (nproc 1) or the same under torchrun."""
    target = ["-m", *args] if module else args
    if nproc == 1:
        cmd = [sys.executable, *target]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
               "--master-port", str(free_port()), *target]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def train(out: Path, overrides: list[str], nproc: int = 1, recipe: Path = TINY) -> list[dict]:
    """Train through the CLI and return metrics.jsonl; fail with the run's output if it fails."""
    proc = launch(["engine.train", str(recipe), f"output_dir={out}", *overrides], nproc)
    assert proc.returncode == 0, f"training failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
