"""Benchmark files as their definitions give them: what each instance asks, what it is scored
against, answers scored by hand-checked cases, and bad rows named by file, line and field."""

import json
import re

import pytest

from engine.errors import DataError
from engine.evaluation.benchmarks import load_benchmark
from tests.util import ROOT

EVAL = ROOT / "recipes" / "tiny" / "data" / "eval"


def _write(tmp_path, rows, name="bench.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_gsm8k_truth_follows_the_hashes_and_the_last_number_scores():
    bench = load_benchmark("gsm8k", EVAL / "gsm8k_test.jsonl")
    assert bench.references == ["8", "48", "140", "18", "850"]
    assert bench.prompts[0] == [{"role": "user", "content": bench.prompts[0][0]["content"]}]
    scores = bench.score(["so 8", "The answer is 48.", "140 pages", "It costs $17", "1,200 - 350 = 850"])
    assert scores.summary == {"accuracy": 0.8}
    assert [e["score"] for e in scores.per_example] == [1, 1, 1, 0, 1]


def test_math_truth_is_the_last_boxed_answer_of_the_solution():
    bench = load_benchmark("math", EVAL / "math_test.jsonl")
    assert bench.references == ["\\frac{3}{4}", "4", "7", "81", "180"]
    answers = ["\\boxed{3/4}", "x = \\boxed{4}", "$7$", "\\boxed{80}", "The answer is $180$"]
    assert bench.score(answers).summary == {"accuracy": 0.8}  # 80 is not 81


def test_ifeval_scores_by_the_benchmark_definition():
    bench = load_benchmark("ifeval", EVAL / "ifeval_input.jsonl")
    answers = ["moon moon moon", "the capital of peru is lima.", "one two three four five",
               '"Paris"', "star star Is there anything else I can help with?"]
    scores = bench.score(answers)
    assert scores.summary["prompt_strict"] == 1.0, scores.per_example
    wrong = ["moon, moon, moon", "Lima", "word " * 25, "Paris", "star star. Thanks!"]
    assert bench.score(wrong).summary["prompt_loose"] == 0.0


def test_chat_exact_match_per_category(tmp_path):
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
             "category": c} for q, a, c in (("1+1?", "2", "add"), ("2+2?", "4", "add"),
                                            ("Capital of Peru?", "Lima", "capital"))]
    bench = load_benchmark("chat", _write(tmp_path, rows))
    assert bench.prompts[0] == [{"role": "user", "content": "1+1?"}]
    assert bench.score([" 2\n", "5", "Lima"]).summary == {
        "exact_match": 2 / 3, "exact_match/add": 0.5, "exact_match/capital": 1.0}


@pytest.mark.parametrize("name, row, message", [
    ("gsm8k", {"question": "q"}, ":2: gsm8k row has no field 'answer'"),
    ("gsm8k", {"question": "q", "answer": "42"}, ":2: gsm8k answer has no '#### <number>'"),
    ("math", {"problem": "p", "solution": "no box"}, ":2: math solution has no \\boxed{}"),
    ("ifeval", {"key": 1, "prompt": "p", "kwargs": []}, ":2: ifeval row has no field 'instruction_id_list'"),
    ("chat", {"messages": [{"role": "user", "content": "hi"}]}, ":2: messages must end with the assistant"),
])
def test_bad_rows_are_named(tmp_path, name, row, message):
    good = {"gsm8k": {"question": "q", "answer": "#### 1"}, "math": {"problem": "p", "answer": "1"},
            "ifeval": {"key": 0, "prompt": "p", "instruction_id_list": [], "kwargs": []},
            "chat": {"messages": [{"role": "user", "content": "a"},
                                  {"role": "assistant", "content": "b"}]}}[name]
    path = _write(tmp_path, [good, row])
    with pytest.raises(DataError, match=re.escape(f"{path.name}{message}")):
        load_benchmark(name, path)


def test_unknown_benchmark_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="benchmark 'mmlu' is not one of chat, gsm8k"):
        load_benchmark("mmlu", tmp_path / "x.jsonl")
    with pytest.raises(DataError, match="benchmark file not found"):
        load_benchmark("gsm8k", tmp_path / "x.jsonl")
