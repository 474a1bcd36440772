"""Scoring many answers at once, safely. Worker processes (spawned, so a trainer's CUDA state or
threads are never forked) score one answer at a time under a memory limit; an answer that takes
longer than `timeout_s`, or a worker that dies (memory, a crash in a C extension), scores 0 and
the worker is replaced, so no answer can hang or bring down the caller. A bad ground truth also
scores 0, and the result says why.

    with RewardPool(workers=8, timeout_s=2.0, math_rule="flex") as pool:
        result = pool.score([(dataset, response, ground_truth), ...])
    result.scores      # [float], in order
    result.errors      # {row index: reason and message} for rows not judged
    result.counts      # Counter of those reasons: bad_input (a ground truth or dataset the
                       # verifiers cannot use), timeout, crashed, memory, error

Each worker has its own pipe, so killing one never corrupts what the others send.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait

from engine.errors import DataError


@dataclass
class Scored:
    scores: list[float]
    errors: dict[int, str] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)


def _serve(conn, math_rule: str, memory_bytes: int, score_fn) -> None:
    """A worker: load every verifier (their imports take seconds, which must not count against
    an answer's time), say so, then score rows sent through `conn` until it sends None."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    if score_fn is None:
        from engine.rewards.verifiers import DATASETS, score as score_fn, verifier
        for dataset in DATASETS:
            verifier(dataset, math_rule)
    conn.send("ready")
    while (task := conn.recv()) is not None:
        index, (dataset, response, truth) = task
        try:
            conn.send((index, float(score_fn(dataset, response, truth, math_rule)), None))
        except DataError as e:
            conn.send((index, 0.0, ("bad_input", str(e))))
        except MemoryError:
            conn.send((index, 0.0, ("memory", "the verifier ran out of memory")))
        except Exception as e:  # a verifier bug must not stop a training run
            conn.send((index, 0.0, ("error", f"{type(e).__name__}: {e}")))


class _Worker:
    def __init__(self, ctx, math_rule: str, memory_bytes: int, score_fn):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, math_rule, memory_bytes,
                                                        score_fn), daemon=True)
        self.process.start()
        child.close()
        self.index: int | None = None  # the row it holds
        self.since = 0.0

    def wait_ready(self, seconds: float = 120.0) -> None:
        if not (self.conn.poll(seconds) and self.conn.recv() == "ready"):
            raise RuntimeError(f"a reward worker did not start within {seconds:g}s")

    def give(self, index: int, row) -> None:
        self.conn.send((index, row))
        self.index, self.since = index, time.monotonic()

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.process.join(timeout=5)
        self.conn.close()


class RewardPool:
    def __init__(self, workers: int | None = None, timeout_s: float = 2.0,
                 math_rule: str = "flex", memory_gib: float = 4.0, score_fn=None):
        """`score_fn(dataset, response, ground_truth, math_rule)`, a module-level function,
        replaces `engine.rewards.verifiers.score` (for tests)."""
        self.ctx = mp.get_context("spawn")
        self.timeout_s = timeout_s
        self.args = (math_rule, int(memory_gib * 2**30), score_fn)
        self.workers = [_Worker(self.ctx, *self.args)
                        for _ in range(workers or min(8, os.cpu_count() or 1))]
        for w in self.workers:
            w.wait_ready()

    def __enter__(self) -> "RewardPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        self.workers = []

    def score(self, rows: list[tuple[str, str, object]]) -> Scored:
        result = Scored([0.0] * len(rows))
        pending, open_rows = deque(enumerate(rows)), set(range(len(rows)))
        while open_rows:
            for w in self.workers:
                if w.index is None and pending:
                    w.give(*pending.popleft())
            busy = {w.conn: w for w in self.workers if w.index is not None}
            for conn in wait(list(busy), timeout=0.05):
                self._receive(busy[conn], result, open_rows)
            now = time.monotonic()
            for i, w in enumerate(self.workers):
                if w.index is not None and (now - w.since > self.timeout_s
                                            or not w.process.is_alive()):
                    reason = "timeout" if w.process.is_alive() else "crashed"
                    self._fail(w.index, reason, f"no score within {self.timeout_s:g}s"
                               if reason == "timeout" else "the worker process died",
                               result, open_rows)
                    w.stop(kill=True)
                    self.workers[i] = _Worker(self.ctx, *self.args)
                    self.workers[i].wait_ready()
        return result

    def _receive(self, w: _Worker, result: Scored, open_rows: set) -> None:
        try:
            index, value, error = w.conn.recv()
        except (EOFError, OSError):
            return  # it died: the liveness check replaces it
        w.index = None
        if index in open_rows:
            open_rows.discard(index)
            result.scores[index] = value
            if error is not None:
                result.errors[index] = f"{error[0]}: {error[1]}"
                result.counts[error[0]] += 1

    @staticmethod
    def _fail(index: int, reason: str, message: str, result: Scored, open_rows: set) -> None:
        open_rows.discard(index)
        result.errors[index] = f"{reason}: {message}"
        result.counts[reason] += 1
