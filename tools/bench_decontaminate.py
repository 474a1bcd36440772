"""Measure decontamination speed (rows/s) on synthetic SFT rows of Tülu-like size.

    python -m tools.bench_decontaminate [--rows 50000] [--workers 1 2] [--dir D]

Evaluation sets shaped like GSM8K, MATH, IFEval and MMLU (instance counts and lengths of their
test sets) are indexed, then a JSONL of SFT conversations whose size per row follows the Tülu 3
SFT mixture (939,343 rows, 2.9 GB: about 3.1 KB a row; long-tailed user and assistant turns,
a quarter of rows multi-turn) is decontaminated through `decontaminate_source`, reading, matching
and writing included, once per worker count. One row in a thousand has an evaluation instance
pasted into a user turn; all must be found. Prints rows/s, MB/s and the projected time for the
full mixture, as JSON, with CPU seconds and the machine's load average (other processes slow
the wall clock down).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from engine.config import SourceConfig
from engine.data.decontaminate import EvalIndex, decontaminate_source, load_eval_set
from engine.data.records import SkipReport

TULU_SFT_ROWS = 939_343
EVAL_SETS = {"gsm8k": (1319, 46), "math": (5000, 30), "ifeval": (541, 40), "mmlu": (14042, 40)}
PLANT_EVERY = 1000


class TextMaker:
    """Random text over a Zipf-distributed vocabulary, with capitals and punctuation."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
        self.vocab = ["".join(self.rng.choice(letters, size=k))
                      for k in self.rng.integers(1, 10, size=30_000)]
        weights = np.cumsum(1.0 / np.arange(1, len(self.vocab) + 1))
        self.cdf = weights / weights[-1]

    def text(self, words: int) -> str:
        picks = np.searchsorted(self.cdf, self.rng.random(max(1, words)))
        out = [self.vocab[i] for i in picks]
        marks = self.rng.integers(0, len(out), size=len(out) // 12)
        for i, mark in zip(marks, self.rng.choice(list(",.?:"), size=len(marks))):
            out[i] = out[i].capitalize() + mark
        return " ".join(out)

    def lengths(self, median: float, sigma: float, size: int) -> np.ndarray:
        return np.clip(self.rng.lognormal(np.log(median), sigma, size), 3, 20_000).astype(int)


def write_eval_sets(maker: TextMaker, directory: Path) -> dict[str, list[str]]:
    texts = {}
    for name, (count, words) in EVAL_SETS.items():
        texts[name] = [maker.text(int(n)) for n in maker.lengths(words, 0.5, count)]
        with (directory / f"{name}.jsonl").open("w") as f:
            f.writelines(json.dumps({"question": t}) + "\n" for t in texts[name])
    return texts


def write_rows(maker: TextMaker, path: Path, rows: int, evals: dict[str, list[str]]) -> int:
    """Tülu-sized conversations; returns the number with a planted evaluation instance."""
    names = sorted(evals)
    planted = 0
    with path.open("w") as f:
        for i in range(rows):
            turns = 1 + (maker.rng.random() < 0.25) * int(maker.rng.integers(1, 4))
            messages = []
            for _ in range(turns):
                messages.append({"role": "user", "content": maker.text(
                    int(maker.lengths(90, 1.2, 1)[0] / turns))})
                messages.append({"role": "assistant", "content": maker.text(
                    int(maker.lengths(200, 0.9, 1)[0] / turns))})
            if i % PLANT_EVERY == PLANT_EVERY // 2:
                bench = evals[names[planted % len(names)]]
                question = bench[int(maker.rng.integers(len(bench)))]
                messages[0]["content"] += "\n\n" + question.upper() + " Thanks!"
                planted += 1
            f.write(json.dumps({"messages": messages}) + "\n")
    return planted


def cpu_seconds() -> float:
    """CPU time of this process and of its finished worker processes."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench_decontaminate_"))
    work.mkdir(parents=True, exist_ok=True)
    maker = TextMaker(seed=0)
    evals = write_eval_sets(maker, work)
    train = work / "train.jsonl"
    planted = write_rows(maker, train, args.rows, evals)
    started = time.perf_counter()
    index = EvalIndex()
    for name in EVAL_SETS:
        load_eval_set(index, name, SourceConfig(path=str(work / f"{name}.jsonl")), "question")
    index.hash_filter()
    size = train.stat().st_size
    results = {"rows": args.rows, "bytes_per_row": round(size / args.rows),
               "eval_instances": len(index.instances), "eval_ngrams": len(index.grams),
               "index_seconds": round(time.perf_counter() - started, 2), "runs": []}
    for workers in args.workers:
        started, cpu_started = time.perf_counter(), cpu_seconds()
        summary = decontaminate_source(index, SourceConfig(path=str(train)),
                                       work / "kept.jsonl", SkipReport(skip=False), workers)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
        assert len(summary.contaminated) == planted, (len(summary.contaminated), planted)
        results["runs"].append({
            "workers": workers, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
            "rows_per_s": round(args.rows / seconds), "mb_per_s": round(size / seconds / 1e6, 1),
            "contaminated_found": len(summary.contaminated), "planted": planted,
            "projected_s_for_tulu_sft": round(TULU_SFT_ROWS * seconds / args.rows),
            "load_average_1min": round(os.getloadavg()[0], 2)})
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
