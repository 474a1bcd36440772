"""Run-directory metrics: metrics.jsonl (one object per optimizer step), eval.jsonl (one object
per evaluation), and tensorboard.

Only the logging rank (global rank 0) writes; other ranks get a writer that does nothing but keep
the same interface, so callers never branch on rank.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.atomic import write_atomic
from engine.metrics.log import log


def _records_up_to(path: Path, step: int) -> list[str]:
    """The lines of records up to `step`. A line that does not parse (a write cut short by a
    crash or a full disk) is dropped, saying so."""
    kept = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        try:
            record = json.loads(line)
        except ValueError:
            log.warning("%s:%d: dropped an unreadable record (a write cut short?)", path, number)
            continue
        if isinstance(record, dict) and record.get("step", 0) <= step:
            kept.append(line)
    return kept


class MetricsWriter:
    """Appends to the run dir's JSONL files. A resumed run first drops the records past the step
    it resumed from (written after its last checkpoint), so each step appears once; the file is
    rewritten atomically, so a kill at that moment loses nothing."""

    def __init__(self, output_dir: Path | None, tensorboard: bool, after_step: int = 0):
        self.enabled = output_dir is not None
        self.tb = None
        if not self.enabled:
            return
        self.files = {}
        for name in ("metrics", "eval"):
            path = output_dir / f"{name}.jsonl"
            kept = _records_up_to(path, after_step) if path.exists() and after_step else []
            write_atomic(path, "".join(line + "\n" for line in kept))
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
