"""Run-directory logging: metrics.jsonl (one object per optimizer step), eval.jsonl (one object
per evaluation), tensorboard, and the log.

Only the logging rank (global rank 0) writes; other ranks get a writer that does nothing but keep
the same interface, so callers never branch on rank.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger("engine")


def setup_logging(output_dir: Path | None) -> None:
    """Console (and, on the logging rank, `train.log` in the run dir) at INFO."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(output_dir / "train.log"))
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    for h in handlers:
        h.setFormatter(fmt)
    log.handlers[:] = handlers
    log.setLevel(logging.INFO if output_dir is not None else logging.WARNING)
    log.propagate = False


class MetricsWriter:
    """Appends to the run dir's JSONL files. A resumed run first drops the records past the step
    it resumed from (written after its last checkpoint), so each step appears once."""

    def __init__(self, output_dir: Path | None, tensorboard: bool, after_step: int = 0):
        self.enabled = output_dir is not None
        self.tb = None
        if not self.enabled:
            return
        self.files = {}
        for name in ("metrics", "eval"):
            path = output_dir / f"{name}.jsonl"
            kept = [line for line in path.read_text().splitlines()
                    if after_step and json.loads(line)["step"] <= after_step] \
                if path.exists() else []
            path.write_text("".join(line + "\n" for line in kept))
            self.files[name] = path.open("a")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(output_dir / "tensorboard"))

    def write(self, record: dict, kind: str = "metrics") -> None:
        """One JSON line in `{kind}.jsonl` (metrics | eval) and its numbers in tensorboard."""
        if not self.enabled:
            return
        self.files[kind].write(json.dumps(record) + "\n")
        self.files[kind].flush()
        if self.tb is not None:
            section = "train" if kind == "metrics" else kind
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tb.add_scalar(f"{section}/{key}", value, record["step"])

    def close(self) -> None:
        if self.enabled:
            for f in self.files.values():
                f.close()
            if self.tb is not None:
                self.tb.close()


class Throughput:
    """Tokens per second over the time since the previous `tick`."""

    def __init__(self):
        self.last = time.perf_counter()

    def restart(self) -> None:
        """Exclude what happened since the last tick (an evaluation, a checkpoint save)."""
        self.last = time.perf_counter()

    def tick(self, tokens: int) -> tuple[float, float]:
        now = time.perf_counter()
        elapsed, self.last = now - self.last, now
        return elapsed, tokens / elapsed if elapsed > 0 else 0.0
