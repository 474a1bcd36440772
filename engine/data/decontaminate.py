"""Decontamination of training data against evaluation sets: the 8-gram rule of Tülu 3.

The rule is that of the Tülu 3 report (Lambert et al., 2024, arXiv 2411.15124, the section on
prompt decontamination) as implemented by open-instruct's `decontamination/index.py` (what is
indexed, how text is cut into words) and `decontamination/search.py` (n-gram matching, run with
`--ngram_size 8 --match_threshold 0.5` in the repository's decontamination scripts):

- Only user turns are compared: each user turn of a training row is one training document;
  system and assistant turns are not looked at. For preference rows these are the user turns
  of `chosen` and `rejected` (and of `prompt` when it is a message list, or `prompt` itself when
  it is a string); for SFT and RLVR rows, those of `messages`.
- Text is lowercased and cut into words at whitespace and at the characters , . ? ! : ; ( ) "
  - and backslash (open-instruct's index analyzer); other characters ($ ' * / = ...) stay
  inside words, so formulas are not broken into single symbols.
- A word of an evaluation instance is covered by a training document when it lies inside an
  n-gram (n consecutive words, n = 8) of the instance that also occurs in the document. The
  score of the pair is the share of the instance's words that are covered; the pair is
  contaminated when the score is strictly above the threshold (0.5). A row is contaminated when
  any of its user turns is contaminated with any evaluation instance. An instance shorter than
  n words has no n-gram and never matches.

Two differences from open-instruct: its evaluation side is cut into spaCy tokens, punctuation
marks included, so one of its n-grams may hold fewer than n words once the analyzer drops the
marks (here an n-gram is always n words, a little stricter); and its Elasticsearch search returns
a bounded number of hits per n-gram, where here every training row is checked against every
evaluation n-gram. The threshold and n are options (`tools/decontaminate.py`).

Speed: the n-grams of many turns at once are hashed and tested against the index's hashes with
numpy; the few turns that pass (those sharing an n-gram, and the rare hash collision) are then
matched exactly, n-grams being tuples of words, so a collision can never make a match. Rows are
matched in forked worker processes when asked (`workers`).

    index = EvalIndex(n=8, threshold=0.5)
    load_eval_set(index, "gsm8k", SourceConfig(path="gsm8k_test.jsonl"), "question")
    summary = decontaminate_source(index, SourceConfig(path="sft.jsonl"), out_path,
                                   SkipReport(skip=False), workers=2)
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from engine.config import SourceConfig
from engine.data.records import BadRecord, SkipReport, check_messages, check_text
from engine.data.sources import read_source
from engine.errors import ConfigError, DataError

SEPARATORS = ',.?!:;()"-\\'
_SPACES = str.maketrans({c: " " for c in SEPARATORS})
CHUNK_ROWS = 512  # rows per task sent to a worker


def normalized_words(text: str) -> list[str]:
    """The words of the rule: lowercased, cut at whitespace and the separator characters."""
    return text.lower().translate(_SPACES).split()


def ngrams(words: list[str] | tuple[str, ...], n: int) -> Iterator[tuple[str, ...]]:
    return zip(*(words[i:] for i in range(n)))


@dataclass(frozen=True)
class EvalInstance:
    benchmark: str
    location: str
    words: tuple[str, ...]


@dataclass(frozen=True)
class Match:
    """One contaminated (training turn, evaluation instance) pair."""

    benchmark: str
    eval_location: str
    field: str  # the training row's turn, e.g. messages[0]
    score: float  # share of the instance's words covered by shared n-grams
    ngram: str  # the first shared n-gram, words joined by spaces


class EvalIndex:
    """Every n-gram of the evaluation instances, each with the instances that contain it."""

    def __init__(self, n: int = 8, threshold: float = 0.5):
        if not 1 <= n <= 64:
            raise ConfigError(f"n must be between 1 and 64, got {n}")
        if not 0.0 <= threshold < 1.0:
            raise ConfigError(f"threshold must be in [0, 1) (a share of an evaluation "
                              f"instance's words), got {threshold}")
        self.n, self.threshold = n, threshold
        self.instances: list[EvalInstance] = []
        self.grams: dict[tuple[str, ...], list[int]] = {}
        self.sizes: Counter = Counter()  # instances per benchmark
        self.too_short: Counter = Counter()  # of them, those with fewer than n words
        self._mix = np.random.default_rng(n).integers(1, 2**63, size=n).astype(np.uint64) | 1
        self._filter: tuple[np.ndarray, np.ndarray, int] | None = None

    def add(self, benchmark: str, location: str, text: str) -> None:
        words = tuple(map(sys.intern, normalized_words(text)))
        number = len(self.instances)
        self.instances.append(EvalInstance(benchmark, location, words))
        self.sizes[benchmark] += 1
        if len(words) < self.n:
            self.too_short[benchmark] += 1
        for gram in set(ngrams(words, self.n)):
            self.grams.setdefault(gram, []).append(number)
        self._filter = None

    def row_matches(self, prompts: list[tuple[str, str]]) -> list[Match]:
        """The best match per benchmark over a row's (field, user turn text) pairs."""
        return self.rows_matches([prompts])[0]

    def rows_matches(self, rows: list[list[tuple[str, str]]]) -> list[list[Match]]:
        """`row_matches` of many rows: one vectorized test over all their turns finds the few
        that share an n-gram with the index, and only those are compared word by word."""
        turns = [(row, name, normalized_words(text))
                 for row, prompts in enumerate(rows) for name, text in prompts]
        best: list[dict[str, Match]] = [{} for _ in rows]
        for turn in self._turns_sharing([words for _, _, words in turns]):
            row, name, words = turns[turn]
            for match in self.turn_matches(name, words):
                known = best[row].get(match.benchmark)
                if known is None or match.score > known.score:
                    best[row][match.benchmark] = match
        return [list(found.values()) for found in best]

    def turn_matches(self, name: str, words: list[str]) -> Iterator[Match]:
        shared = self.grams.keys() & set(ngrams(words, self.n))
        for number in sorted({i for gram in shared for i in self.grams[gram]}):
            instance = self.instances[number]
            covered, first = coverage(instance.words, shared, self.n)
            score = covered / len(instance.words)
            if score > self.threshold:
                yield Match(instance.benchmark, instance.location, name, score, " ".join(first))

    def hash_filter(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(sorted hashes of the index's n-grams, bitmap of their top bits, number of bits),
        built on first use after the last `add`."""
        if self._filter is None:
            table = np.sort(self._gram_hashes([i.words for i in self.instances])[0])
            bits = int(np.clip(np.ceil(np.log2(16 * len(table) + 1)), 10, 26))
            bitmap = np.zeros(1 << bits, dtype=bool)
            bitmap[table >> np.uint64(64 - bits)] = True
            self._filter = table, bitmap, bits
        return self._filter

    def _turns_sharing(self, turns: list[list[str]]) -> list[int]:
        """The turns with an n-gram whose hash is one of the index's n-grams' hashes: all that
        share an n-gram, rarely one more (a collision, then found to share none). The bitmap
        rules out nearly every n-gram before the exact search."""
        table, bitmap, bits = self.hash_filter()
        hashes, turn_of = self._gram_hashes(turns)
        maybe = bitmap[hashes >> np.uint64(64 - bits)]
        hashes, turn_of = hashes[maybe], turn_of[maybe]
        found = table[np.minimum(np.searchsorted(table, hashes), len(table) - 1)] == hashes
        return np.unique(turn_of[found]).tolist()

    def _gram_hashes(self, turns: list) -> tuple[np.ndarray, np.ndarray]:
        """(hash of every n-gram lying inside one turn, index of that turn): a mix of Python's
        string hashes of its words, so equal within a process and the processes it forks."""
        lengths = np.fromiter(map(len, turns), dtype=np.int64, count=len(turns))
        words = np.fromiter(map(hash, chain.from_iterable(turns)), dtype=np.int64,
                            count=int(lengths.sum())).view(np.uint64)
        count = len(words) - self.n + 1
        if count <= 0:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
        hashes = words[:count] * self._mix[0]
        for k in range(1, self.n):
            hashes += words[k:k + count] * self._mix[k]
        turn_of = np.repeat(np.arange(len(turns)), lengths)
        inside = turn_of[:count] == turn_of[self.n - 1:]
        return hashes[inside], turn_of[:count][inside]


def coverage(words: tuple[str, ...], shared: set, n: int) -> tuple[int, tuple[str, ...]]:
    """(words inside an n-gram found in `shared`, the first such n-gram)."""
    covered, end, first = 0, 0, ()
    for start, gram in enumerate(ngrams(words, n)):
        if gram in shared:
            covered += start + n - max(start, end)
            end, first = start + n, first or gram
    return covered, first


def load_eval_set(index: EvalIndex, benchmark: str, source: SourceConfig, text_field: str) -> int:
    """Add every instance of an evaluation file; a bad record stops, naming file:line and field.
    Returns the number of instances."""
    count = 0
    for location, record in read_source(source):
        try:
            if isinstance(record, BadRecord):
                raise record
            index.add(benchmark, location, check_text(record, text_field))
        except BadRecord as bad:
            hint = (f" (evaluation set {benchmark!r}; name its text field with "
                    f"{benchmark}=PATH:FIELD)" if bad.reason == "missing_text" else "")
            raise DataError(f"{location}: {bad.message}{hint}") from None
        count += 1
    if not count:
        raise DataError(f"{source.path}: no evaluation instances")
    return count


def user_prompts(record, messages_field: str = "messages") -> list[tuple[str, str]]:
    """(field, text) of every distinct user turn of an SFT, RLVR or preference row, or
    BadRecord naming what is wrong with the row."""
    if not isinstance(record, dict):
        raise BadRecord("not_an_object", f"record is {type(record).__name__}, expected an object")
    preference = "chosen" in record or "rejected" in record
    prompt = record.get("prompt")
    if preference:
        fields = ["chosen", "rejected"] + (["prompt"] if isinstance(prompt, list) else [])
    else:
        fields = [messages_field]
    turns = [(f"{name}[{i}]", m["content"]) for name in fields
             for i, m in enumerate(check_messages(record, name)) if m["role"] == "user"]
    if preference:
        if isinstance(prompt, str) and prompt.strip():
            turns.append(("prompt", prompt))
        elif not isinstance(prompt, (str, list, type(None))):
            raise BadRecord("wrong_type", f"prompt is {type(prompt).__name__}, expected a "
                                          f"string or a message list")
    seen, distinct = set(), []
    for name, text in turns:
        if text not in seen:
            seen.add(text)
            distinct.append((name, text))
    return distinct


@dataclass
class SourceSummary:
    """What decontaminating one training source did."""

    source: str
    output: str
    rows_read: int = 0
    rows_kept: int = 0
    contaminated: list[dict] = field(default_factory=list)  # location and matches, in order
    by_benchmark: Counter = field(default_factory=Counter)  # rows per benchmark matched
    skipped: dict[str, int] = field(default_factory=dict)
    first_skipped: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"source": self.source, "output": self.output, "rows_read": self.rows_read,
                "rows_contaminated": len(self.contaminated), "rows_kept": self.rows_kept,
                "rows_skipped": sum(self.skipped.values()), "skipped_by_reason": self.skipped,
                "first_skipped": self.first_skipped,
                "contaminated_by_benchmark": dict(sorted(self.by_benchmark.items())),
                "contaminated_rows": self.contaminated}


def checked_rows(source: SourceConfig, report: SkipReport) -> Iterator[tuple[str, object, list]]:
    """(location, record, user prompts) of every good row; bad rows go to the report."""
    for location, record in read_source(source):
        try:
            if isinstance(record, BadRecord):
                raise record
            yield location, record, user_prompts(record, source.messages_field)
        except BadRecord as bad:
            report.bad(location, bad)


def matched_rows(index: EvalIndex, rows: Iterable[tuple[str, object, list]],
                 workers: int) -> Iterator[tuple[str, object, list[Match]]]:
    """(location, record, matches) of every row, in order; matched in `workers` processes
    (forked, so they share the index) when more than one."""
    chunks = iter(lambda: list(islice(rows, CHUNK_ROWS)), [])
    index.hash_filter()  # built here once, not in every worker
    if workers <= 1:
        for chunk in chunks:
            matches = index.rows_matches([prompts for _, _, prompts in chunk])
            yield from ((loc, rec, found) for (loc, rec, _), found in zip(chunk, matches))
        return
    with mp.get_context("fork").Pool(workers, initializer=_share_index,
                                     initargs=(index,)) as pool:
        pending: deque = deque()
        for chunk in chunks:
            task = pool.apply_async(_match_chunk, ([prompts for _, _, prompts in chunk],))
            pending.append((chunk, task))
            if len(pending) > 2 * workers:
                yield from _joined(*pending.popleft())
        while pending:
            yield from _joined(*pending.popleft())


_worker_index: EvalIndex | None = None


def _share_index(index: EvalIndex) -> None:
    global _worker_index
    _worker_index = index


def _match_chunk(chunk: list[list[tuple[str, str]]]) -> list[list[Match]]:
    return _worker_index.rows_matches(chunk)


def _joined(chunk: list, task) -> Iterator[tuple[str, object, list[Match]]]:
    for (location, record, _), matches in zip(chunk, task.get()):
        yield location, record, matches


def decontaminate_source(index: EvalIndex, source: SourceConfig, out_path: Path,
                         report: SkipReport, workers: int = 1) -> SourceSummary:
    """Write the source's rows that are neither contaminated nor bad to `out_path` (JSONL: the
    kept lines byte for byte for a .jsonl source, one JSON object a line otherwise, a value
    that JSON cannot hold, such as a Parquet timestamp, written as its string)."""
    summary = SourceSummary(str(source.path), str(out_path))
    keep_lines: set[int] = set()
    copy_lines = Path(source.path).suffix == ".jsonl"
    with _replaced_on_success(out_path) as out:
        for location, record, matches in matched_rows(index, checked_rows(source, report),
                                                      workers):
            if matches:
                summary.contaminated.append({"location": location,
                                             "matches": [asdict(m) for m in matches]})
                summary.by_benchmark.update(m.benchmark for m in matches)
                continue
            summary.rows_kept += 1
            if copy_lines:
                keep_lines.add(int(location.rpartition(":")[2]))
            else:
                out.write(json_line(record))
        if copy_lines:
            copy_kept_lines(Path(source.path), keep_lines, out)
    summary.skipped, summary.first_skipped = dict(report.counts), dict(report.first)
    summary.rows_read = (summary.rows_kept + len(summary.contaminated) +
                         sum(summary.skipped.values()))
    return summary


def json_line(record) -> bytes:
    return (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def copy_kept_lines(path: Path, keep: set[int], out) -> None:
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if number in keep:
                out.write(raw if raw.endswith(b"\n") else raw + b"\n")


class _replaced_on_success:
    """A binary file written under a temporary name and renamed over `path` only when the block
    ends without an error, so a failed run never leaves a partial filtered copy."""

    def __init__(self, path: Path):
        self.path, self.tmp = path, path.with_name(f".{path.name}.tmp")

    def __enter__(self):
        self.file = self.tmp.open("wb")
        return self.file

    def __exit__(self, kind, error, trace):
        self.file.close()
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
