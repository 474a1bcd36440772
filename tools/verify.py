"""Score answers with the RLVR verifiers: how users check a verifier on their own data.

    python -m tools.verify ROWS.jsonl [--out SCORES.jsonl] [--math flex|math_verify]
        [--workers N] [--timeout SECONDS] [--on-bad-row error|skip]

ROWS: Tülu's RLVR rows plus an answer — `dataset` (gsm8k | math | ifeval), `ground_truth` and
`response` — as JSONL, JSON, Parquet or a `save_to_disk` directory. The answer text is what
follows the last generation prompt. Writes one JSON line per row, in order (`location`,
`dataset`, `score`, and `error` when a row could not be judged: a bad ground truth, a verifier
timeout), and prints per dataset: rows, mean score, rows not judged by reason, with the first
such row. A row without those fields stops the tool naming file, line and field (or is counted
with --on-bad-row skip).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

from engine.cli import run_main
from engine.config import SourceConfig
from engine.data.records import BadRecord, SkipReport
from engine.data.sources import load_checked
from engine.rewards.pool import RewardPool
from engine.rewards.verifiers import MATH_RULES

_CHUNK = 256  # rows per progress update


def check_row(record) -> tuple[str, str, object]:
    if not isinstance(record, dict):
        raise BadRecord("not_an_object", f"record is {type(record).__name__}, expected an object")
    for key in ("dataset", "ground_truth", "response"):
        if key not in record:
            raise BadRecord("missing_field", f"missing field {key!r}")
    for key in ("dataset", "response"):
        if not isinstance(record[key], str):
            raise BadRecord("wrong_type", f"{key} is {type(record[key]).__name__}, expected a "
                                          f"string")
    return record["dataset"], record["response"], record["ground_truth"]


def score_rows(rows: list, pool: RewardPool):
    """(scores, errors by row) for all rows, with a progress line on stderr."""
    scores, errors = [], {}
    for first in range(0, len(rows), _CHUNK):
        result = pool.score(rows[first:first + _CHUNK])
        scores += result.scores
        errors.update({first + i: e for i, e in result.errors.items()})
        print(f"\rscored {len(scores)}/{len(rows)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return scores, errors


def summary(locations, rows, scores, errors) -> str:
    per = defaultdict(lambda: {"rows": 0, "score": 0.0, "reasons": Counter(), "first": None})
    for i, (dataset, _, _) in enumerate(rows):
        entry = per[dataset]
        entry["rows"] += 1
        entry["score"] += scores[i]
        if i in errors:
            entry["reasons"][errors[i].split(":", 1)[0]] += 1
            entry["first"] = entry["first"] or f"{locations[i]}: {errors[i]}"
    lines = [f"{'dataset':<10} {'rows':>7} {'mean score':>10}  not judged"]
    for dataset, e in sorted(per.items()):
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(e["reasons"].items())) or "none"
        lines.append(f"{dataset:<10} {e['rows']:>7} {e['score'] / e['rows']:>10.4f}  {reasons}")
        if e["first"]:
            lines.append(f"{'':<10} first: {e['first'][:160]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.verify",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("rows")
    parser.add_argument("--out", help="scores JSONL (default: ROWS with .scores.jsonl)")
    parser.add_argument("--math", choices=MATH_RULES, default="flex")
    parser.add_argument("--workers", type=int)
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per answer")
    parser.add_argument("--on-bad-row", choices=("error", "skip"), default="error")
    args = parser.parse_args(argv)
    report = SkipReport(skip=args.on_bad_row == "skip")
    checked = load_checked(SourceConfig(path=args.rows), check_row, report)
    locations, rows = [loc for loc, _ in checked], [row for _, row in checked]
    with RewardPool(workers=args.workers, timeout_s=args.timeout, math_rule=args.math) as pool:
        scores, errors = score_rows(rows, pool)
    out = Path(args.out) if args.out else Path(args.rows).with_suffix(".scores.jsonl")
    with out.open("w") as f:
        for i, (location, (dataset, _, _)) in enumerate(zip(locations, rows)):
            f.write(json.dumps({"location": location, "dataset": dataset, "score": scores[i],
                                **({"error": errors[i]} if i in errors else {})}) + "\n")
    print(summary(locations, rows, scores, errors))
    if report.counts:
        print(f"skipped rows: {dict(report.counts)} (first: {dict(report.first)})")
    print(f"scores: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
