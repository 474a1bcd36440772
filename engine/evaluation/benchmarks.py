"""Evaluation benchmarks read from local files: each instance's prompt turns and how its answer
is scored, by the benchmark's own definition.

    bench = load_benchmark("gsm8k", "data/gsm8k_test.jsonl")
    results = bench.score(answers)          # one answer text per instance, in order
    results.summary, results.per_example

- `chat`: rows with `messages`; the prompt is every turn before the last, which must be the
  assistant's reference answer; exact match of the stripped texts, overall and per `category`
  when rows carry several (the engine's in-run evaluation, `eval_exact_match`).
- `gsm8k`: the test set's rows (`question`, `answer` ending in `#### <number>`); scored by the
  GSM8K verifier of `engine.rewards` (the answer's last number).
- `math`: MATH test rows (`problem`, and `answer` or a `solution` whose last `\\boxed{}` holds
  it); scored by the MATH verifier (`flex`, Tülu's rule, or `math_verify`).
- `ifeval`: IFEval's input rows (`key`, `prompt`, `instruction_id_list`, `kwargs`); scored
  strict and loose, per prompt and per instruction (`engine.evaluation.ifeval`); Tülu 3 reports
  prompt-level loose.

Rows are JSON lines; a row that lacks its fields is an error naming the file, line and field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from engine.errors import DataError
from engine.rewards.math_normalize import last_boxed

BENCHMARKS = ("chat", "gsm8k", "math", "ifeval")


@dataclass
class Scores:
    summary: dict[str, float]  # metric: value (the first is the benchmark's headline)
    per_example: list[dict]  # one per instance, in order: its scores


@dataclass
class Benchmark:
    name: str
    prompts: list[list[dict]]  # each instance's turns before the answer
    references: list  # what an answer is scored against (text, number, row)
    scorer: Callable[["Benchmark", list[str]], Scores]
    ids: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)

    def score(self, answers: list[str]) -> Scores:
        if len(answers) != len(self.prompts):
            raise DataError(f"{self.name}: {len(self.prompts)} instances but {len(answers)} "
                            "answers")
        return self.scorer(self, answers)


def load_benchmark(name: str, path: str | Path, math_rule: str = "flex",
                   limit: int | None = None) -> Benchmark:
    if name not in _LOADERS:
        raise DataError(f"benchmark {name!r} is not one of {', '.join(BENCHMARKS)}")
    rows = _read_rows(Path(path), limit)
    loader, needed = _LOADERS[name]
    for line, row in rows:
        missing = [f for f in needed if f not in row]
        if missing:
            raise DataError(f"{path}:{line}: {name} row has no field {missing[0]!r}")
    bench = loader(Path(path), rows, math_rule)
    bench.ids = [str(row.get("key", row.get("id", line))) for line, row in rows]
    return bench


def _read_rows(path: Path, limit: int | None) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise DataError(f"benchmark file not found: {path}")
    rows = []
    with path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{line_number}: invalid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{line_number}: a row must be a JSON object")
            rows.append((line_number, row))
            if limit is not None and len(rows) == limit:
                break
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# -- chat: exact match of the last assistant turn --------------------------------------------------

def _chat(path: Path, rows, math_rule) -> Benchmark:
    prompts, references = [], []
    categories = [str(row.get("category", "all")) for _, row in rows]
    for line, row in rows:
        messages = row["messages"]
        if not isinstance(messages, list) or len(messages) < 2 or \
                not isinstance(messages[-1], dict) or messages[-1].get("role") != "assistant":
            raise DataError(f"{path}:{line}: messages must end with the assistant's answer")
        prompts.append(messages[:-1])
        references.append(str(messages[-1].get("content", "")).strip())
    return Benchmark("chat", prompts, references, _score_exact_match, categories=categories)


def exact_match(answer: str, reference: str) -> bool:
    """The engine's exact match: the answer, stripped, equals the reference, stripped."""
    return answer.strip() == reference.strip()


def _score_exact_match(bench: Benchmark, answers: list[str]) -> Scores:
    hits = [exact_match(a, r) for a, r in zip(answers, bench.references)]
    summary = {"exact_match": sum(hits) / len(hits)}
    kinds = sorted(set(bench.categories))
    if len(kinds) > 1:
        for kind in kinds:
            mine = [h for h, c in zip(hits, bench.categories) if c == kind]
            summary[f"exact_match/{kind}"] = sum(mine) / len(mine)
    return Scores(summary, [{"exact_match": float(h), "reference": r}
                            for h, r in zip(hits, bench.references)])


# -- GSM8K and MATH: the RLVR verifiers -----------------------------------------------------------

def _gsm8k(path: Path, rows, math_rule) -> Benchmark:
    prompts, truths = [], []
    for line, row in rows:
        answer = str(row["answer"])
        if "####" not in answer:
            raise DataError(f"{path}:{line}: gsm8k answer has no '#### <number>' line")
        prompts.append(_user(str(row["question"])))
        truths.append(answer.rsplit("####", 1)[1].strip())
    return Benchmark("gsm8k", prompts, truths, _verifier_scorer("gsm8k", "flex"))


def _math(path: Path, rows, math_rule) -> Benchmark:
    prompts, truths = [], []
    for line, row in rows:
        truth = row.get("answer")
        if truth is None:
            if "solution" not in row:
                raise DataError(f"{path}:{line}: math row has neither 'answer' nor 'solution'")
            truth = last_boxed(str(row["solution"]))
            if truth is None:
                raise DataError(f"{path}:{line}: math solution has no \\boxed{{}} answer")
        prompts.append(_user(str(row["problem"])))
        truths.append(str(truth))
    return Benchmark("math", prompts, truths, _verifier_scorer("math", math_rule))


def _verifier_scorer(dataset: str, math_rule: str):
    def score(bench: Benchmark, answers: list[str]) -> Scores:
        from engine.rewards.verifiers import verifier

        check = verifier(dataset, math_rule)
        scores = [float(check(a, t)) for a, t in zip(answers, bench.references)]
        return Scores({"accuracy": sum(scores) / len(scores)},
                      [{"score": s, "ground_truth": t} for s, t in zip(scores, bench.references)])

    return score


# -- IFEval ---------------------------------------------------------------------------------------

def _ifeval(path: Path, rows, math_rule) -> Benchmark:
    return Benchmark("ifeval", [_user(str(row["prompt"])) for _, row in rows],
                     [row for _, row in rows], _score_ifeval)


def _score_ifeval(bench: Benchmark, answers: list[str]) -> Scores:
    from engine.evaluation.ifeval import score_ifeval_benchmark

    result = score_ifeval_benchmark(bench.references, answers)
    return Scores({"prompt_loose": result.prompt_loose, "prompt_strict": result.prompt_strict,
                   "instruction_loose": result.instruction_loose,
                   "instruction_strict": result.instruction_strict}, result.per_example)


_LOADERS = {
    "chat": (_chat, ("messages",)),
    "gsm8k": (_gsm8k, ("question", "answer")),
    "math": (_math, ("problem",)),
    "ifeval": (_ifeval, ("key", "prompt", "instruction_id_list", "kwargs")),
}
