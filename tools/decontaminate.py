"""Remove training rows that overlap evaluation sets (Tülu 3's 8-gram rule), with a report.

    python -m tools.decontaminate --eval NAME=PATH[:FIELD] [--eval ...] --train PATH
        [--train PATH ...] [--out-dir DIR] [--n 8] [--threshold 0.5] [--workers N]
        [--on-bad-row error|skip]

NAME=PATH[:FIELD]: an evaluation set (JSONL, JSON, Parquet or a `save_to_disk` directory) and
the field holding each instance's text (default `question`; `problem` for MATH, `prompt` for
IFEval). Training sources are SFT rows (`messages`), preference rows (`chosen` / `rejected`,
optional `prompt`) or RLVR rows (`messages`, `ground_truth`, `dataset`); their user turns are
compared (engine/data/decontaminate.py states the rule). For each training source STEM.EXT,
DIR (default `decontaminated`) gets STEM.decontaminated.jsonl, the rows kept (a .jsonl source's
lines byte for byte), and STEM.decontamination.json, the report: counts, rows contaminated by
benchmark, and every contaminated row with its matches (evaluation instance, score, a shared
n-gram). A summary per source is printed. A bad row stops the tool naming file, line and field
(or is counted and left out with --on-bad-row skip).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from engine.atomic import write_atomic
from engine.cli import run_main
from engine.config import SourceConfig
from engine.data.decontaminate import EvalIndex, SourceSummary, decontaminate_source, \
    load_eval_set
from engine.data.records import SkipReport
from engine.errors import ConfigError

DEFAULT_FIELD = "question"


def parse_eval_spec(spec: str) -> tuple[str, str, str]:
    """(name, path, field) of NAME=PATH[:FIELD]."""
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise ConfigError(f"--eval {spec!r}: expected NAME=PATH[:FIELD], e.g. "
                          f"gsm8k=gsm8k_test.jsonl:question")
    path, sep, text_field = rest.rpartition(":")
    if not sep or not path or not text_field or "/" in text_field:
        return name, rest, DEFAULT_FIELD
    return name, path, text_field


def build_index(specs: list[str], n: int, threshold: float) -> tuple[EvalIndex, dict]:
    """The index of all evaluation sets, and what went into it (for the reports)."""
    index, described = EvalIndex(n, threshold), {}
    for name, path, text_field in map(parse_eval_spec, specs):
        if name in described:
            raise ConfigError(f"--eval {name!r} is given twice")
        load_eval_set(index, name, SourceConfig(path=path), text_field)
        described[name] = {"path": path, "field": text_field, "instances": index.sizes[name],
                           "shorter_than_n": index.too_short[name]}
    return index, described


def output_stems(paths: list[str]) -> list[str]:
    stems = [Path(p).stem for p in paths]
    for stem in set(stems):
        same = [p for p, s in zip(paths, stems) if s == stem]
        if len(same) > 1:
            raise ConfigError(f"--train sources {', '.join(same)} would write the same output "
                              f"files ({stem}.*); rename or decontaminate them in separate runs")
    return stems


def source_summary(summary: SourceSummary, report_path: Path) -> str:
    by_benchmark = ", ".join(f"{name} {count}" for name, count in
                             sorted(summary.by_benchmark.items())) or "none"
    lines = [f"{summary.source}: {summary.rows_read} rows read, {len(summary.contaminated)} "
             f"contaminated ({by_benchmark}), {sum(summary.skipped.values())} skipped, "
             f"{summary.rows_kept} kept",
             f"  kept rows: {summary.output}", f"  report: {report_path}"]
    if summary.contaminated:
        row = summary.contaminated[0]
        match = row["matches"][0]
        lines.append(f"  example: {row['location']} {match['field']} matches {match['benchmark']}"
                     f" {match['eval_location']} (score {match['score']:.2f}), shared n-gram "
                     f"\"{match['ngram']}\"")
    for reason, first in summary.first_skipped.items():
        lines.append(f"  skipped {summary.skipped[reason]} {reason}, first: {first[:160]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.decontaminate",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--eval", action="append", required=True, metavar="NAME=PATH[:FIELD]")
    parser.add_argument("--train", action="append", required=True, metavar="PATH")
    parser.add_argument("--out-dir", default="decontaminated")
    parser.add_argument("--n", type=int, default=8, help="words per n-gram")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="a pair is contaminated when more than this share of the "
                             "evaluation instance's words lie in shared n-grams")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--on-bad-row", choices=("error", "skip"), default="error")
    args = parser.parse_args(argv)
    index, eval_sets = build_index(args.eval, args.n, args.threshold)
    print("evaluation sets: " + ", ".join(
        f"{name} {e['instances']} instances ({e['shorter_than_n']} shorter than {args.n} words)"
        for name, e in eval_sets.items()))
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rule = {"n": args.n, "threshold": args.threshold, "compared": "user turns"}
    for path, stem in zip(args.train, output_stems(args.train)):
        report = SkipReport(skip=args.on_bad_row == "skip")
        summary = decontaminate_source(index, SourceConfig(path=path),
                                       out_dir / f"{stem}.decontaminated.jsonl", report,
                                       args.workers)
        report_path = out_dir / f"{stem}.decontamination.json"
        write_atomic(report_path, json.dumps({"rule": rule, "eval_sets": eval_sets,
                                              **summary.to_json()}, indent=1))
        print(source_summary(summary, report_path))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
