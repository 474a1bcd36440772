"""engine/data/decontaminate.py: Tülu 3's 8-gram rule (user turns; a pair is contaminated when
more than half of the evaluation instance's words lie in shared 8-grams), on all three row
formats, and bad input named by file, line and field."""

from __future__ import annotations

import json

import pytest

from engine.config import SourceConfig
from engine.data.decontaminate import EvalIndex, decontaminate_source, load_eval_set, \
    normalized_words, user_prompts
from engine.data.records import BadRecord, SkipReport
from engine.errors import ConfigError, DataError

GSM = ("Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and "
       "bakes muffins for her friends every day with four. She sells the remainder at the "
       "farmers' market daily for $2 per fresh duck egg. How much in dollars does she make "
       "every day at the farmers' market?")
MATH = ("Let $f(x) = 3x^2 - 5$. What is the value of $f(f(1))$ when the function is applied "
        "twice in a row, starting from one?")
SIXTEEN = " ".join(f"w{i}" for i in range(16))  # 16 distinct words


def index_of(threshold: float = 0.5, **sets: list[str]) -> EvalIndex:
    index = EvalIndex(n=8, threshold=threshold)
    for name, texts in sets.items():
        for i, text in enumerate(texts, start=1):
            index.add(name, f"{name}.jsonl:{i}", text)
    return index


def sft(*turns: str, system: str | None = None) -> dict:
    roles = ["user", "assistant"] * len(turns)
    messages = [{"role": role, "content": text} for role, text in zip(roles, turns)]
    return {"messages": ([{"role": "system", "content": system}] if system else []) + messages}


def matches(index: EvalIndex, record: dict) -> list:
    return index.row_matches(user_prompts(record))


def write_jsonl(path, records) -> list[str]:
    lines = [json.dumps(r) + "\n" for r in records]
    path.write_text("".join(lines))
    return lines


def test_words_are_lowercased_and_cut_at_whitespace_and_separators():
    assert normalized_words("Janet's  DUCKS,lay\t16\n\neggs (per-day)? \"$x$=2\\frac{1}{2}\"") \
        == ["janet's", "ducks", "lay", "16", "eggs", "per", "day", "$x$=2", "frac{1}{2}"]


def test_question_pasted_into_a_longer_turn_is_found_despite_case_punctuation_and_spacing():
    mangled = (GSM.upper().replace(". ", "!  \n").replace(" every", ",\tevery")
               .replace("?", "??"))
    turn = f"Hi, I need help with my homework.\n\n{mangled}\n\nPlease explain step by step."
    found = matches(index_of(gsm8k=["An unrelated question about trains and eggs.", GSM]),
                    sft(turn, "18 dollars"))
    assert len(found) == 1
    match = found[0]
    assert (match.benchmark, match.eval_location, match.field) == \
        ("gsm8k", "gsm8k.jsonl:2", "messages[0]")
    assert match.score == 1.0
    assert match.ngram == "janet’s ducks lay 16 eggs per day she"


def test_the_threshold_is_a_strict_share_of_the_evaluation_instances_words():
    words = SIXTEEN.split()
    index = index_of(bench=[SIXTEEN])
    assert matches(index, sft("intro " + " ".join(words[:8]) + " outro")) == []  # 8/16, not >
    found = matches(index, sft("intro " + " ".join(words[:9]) + " outro"))
    assert [m.score for m in found] == [9 / 16]
    assert len(matches(index_of(threshold=0.4, bench=[SIXTEEN]),
                       sft(" ".join(words[:8])))) == 1


def test_words_covered_by_shared_ngrams_anywhere_in_the_turn_add_up():
    words = SIXTEEN.split()
    # two separate 8-grams of the instance, far apart and in the other order: all 16 covered
    turn = " ".join(words[8:]) + " something else entirely here " + " ".join(words[:8])
    assert [m.score for m in matches(index_of(bench=[SIXTEEN]), sft(turn))] == [1.0]


def test_common_phrases_shorter_than_eight_words_are_not_a_match():
    index = index_of(math=[MATH, "What is the value of x in the equation 2x + 3 = 11 when x is "
                                 "a positive integer?"])
    clean = [
        sft("What is the value of x in the equation I wrote? Please answer step by step."),
        sft("Let $f(x) = 3x^2 - 5$. Compute f(2)."),  # a 6-word prefix of MATH
        sft("What is the value of the product when the function is applied twice?"),
        sft("Tell me a story about ducks that lay eggs at the market every day."),
    ]
    assert [matches(index, row) for row in clean] == [[], [], [], []]


def test_one_shared_ngram_of_a_long_instance_is_below_the_threshold():
    found = matches(index_of(gsm8k=[GSM]), sft("Fun fact: janet's ducks lay 16 eggs per day she "
                                               "said, and nothing more."))
    assert found == []


def test_only_user_turns_are_compared():
    index = index_of(gsm8k=[GSM])
    assert matches(index, sft("What is 2 + 2?", f"Here is a similar problem: {GSM}")) == []
    assert matches(index, sft("Solve the problem.", system=GSM)) == []
    found = matches(index, sft("Hello!", "Hi, how can I help?", GSM, "18", system="Be brief."))
    assert [m.field for m in found] == ["messages[3]"]


def test_preference_rows_tulu_layout_and_completions_only():
    index = index_of(gsm8k=[GSM])
    conversation = [{"role": "user", "content": GSM}]
    tulu = {"prompt": GSM, "chosen": conversation + [{"role": "assistant", "content": "18"}],
            "rejected": conversation + [{"role": "assistant", "content": "20"}]}
    assert [m.field for m in matches(index, tulu)] == ["chosen[0]"]
    completions = {"prompt": conversation, "chosen": [{"role": "assistant", "content": "18"}],
                   "rejected": [{"role": "assistant", "content": "20"}]}
    assert [m.field for m in matches(index, completions)] == ["prompt[0]"]
    answer_only = {"chosen": [{"role": "user", "content": "Any duck problem?"},
                              {"role": "assistant", "content": GSM}],
                   "rejected": [{"role": "user", "content": "Any duck problem?"},
                                {"role": "assistant", "content": "No."}]}
    assert matches(index, answer_only) == []


def test_rlvr_rows_compare_the_prompt_not_the_ground_truth():
    index = index_of(gsm8k=[GSM], math=[MATH])
    row = {"messages": [{"role": "user", "content": f"Question: {MATH}\nAnswer:"}],
           "ground_truth": GSM, "dataset": "math"}
    assert [(m.benchmark, m.field) for m in matches(index, row)] == [("math", "messages[0]")]


def test_a_row_reports_its_best_match_for_each_benchmark():
    index = index_of(gsm8k=[GSM, GSM[:150]], math=[MATH])
    found = {m.benchmark: m for m in matches(index, sft(GSM, "ok", MATH))}
    assert set(found) == {"gsm8k", "math"}
    assert found["gsm8k"].score == 1.0 and found["math"].field == "messages[2]"


def test_instances_shorter_than_n_words_never_match():
    index = index_of(ifeval=["Write a haiku about spring."])
    assert index.too_short["ifeval"] == 1
    assert matches(index, sft("Write a haiku about spring.")) == []


def test_options_are_checked():
    with pytest.raises(ConfigError, match="threshold"):
        EvalIndex(threshold=1.0)
    with pytest.raises(ConfigError, match="n must be"):
        EvalIndex(n=0)


def test_bad_rows_are_named_by_line_and_field(tmp_path):
    with pytest.raises(BadRecord, match=r"prompt is int"):
        user_prompts({"prompt": 3, "chosen": [{"role": "user", "content": "a"}],
                      "rejected": [{"role": "user", "content": "a"}]})
    path = tmp_path / "train.jsonl"
    lines = write_jsonl(path, [sft("hello", "hi"),
                               {"messages": [{"role": "user", "content": "q"},
                                             {"role": "assistant", "content": 7}]}])
    path.write_text("".join(lines) + "{broken\n")
    index = index_of(gsm8k=[GSM])
    with pytest.raises(DataError, match=r"train\.jsonl:2: messages\[1\]\.content is int"):
        decontaminate_source(index, SourceConfig(path=str(path)), tmp_path / "out.jsonl",
                             SkipReport(skip=False))
    assert not (tmp_path / "out.jsonl").exists()
    summary = decontaminate_source(index, SourceConfig(path=str(path)), tmp_path / "out.jsonl",
                                   SkipReport(skip=True))
    assert summary.skipped == {"wrong_type": 1, "invalid_json": 1}
    assert summary.first_skipped["invalid_json"].startswith(f"{path}:3: invalid JSON")
    assert (summary.rows_read, summary.rows_kept) == (3, 1)
    assert (tmp_path / "out.jsonl").read_text() == lines[0]


def test_bad_evaluation_files_are_named(tmp_path):
    path = tmp_path / "gsm.jsonl"
    path.write_text(json.dumps({"question": GSM}) + "\n" + json.dumps({"problem": MATH}) + "\n")
    with pytest.raises(DataError, match=r"gsm\.jsonl:2: missing field 'question'"):
        load_eval_set(EvalIndex(), "gsm8k", SourceConfig(path=str(path)), "question")
    path.write_text(json.dumps({"question": ""}) + "\n")
    with pytest.raises(DataError, match=r"gsm\.jsonl:1: field 'question' must be a non-empty"):
        load_eval_set(EvalIndex(), "gsm8k", SourceConfig(path=str(path)), "question")
    path.write_text("\n")
    with pytest.raises(DataError, match="no evaluation instances"):
        load_eval_set(EvalIndex(), "gsm8k", SourceConfig(path=str(path)), "question")
    with pytest.raises(DataError, match="not found"):
        load_eval_set(EvalIndex(), "gsm8k", SourceConfig(path=str(tmp_path / "no.jsonl")), "q")


def test_kept_jsonl_lines_are_copied_byte_for_byte(tmp_path):
    path = tmp_path / "train.jsonl"
    kept = ['{"messages":[{"role":"user","content":"caf\\u00e9?"},'
            '{"role":"assistant","content":"yes"}], "id": 1.50}\n',
            json.dumps(sft("Unrelated question about ducks.", "ok"), indent=None) + "\n"]
    dirty = json.dumps(sft(GSM, "18")) + "\n"
    path.write_text(kept[0] + dirty + "\n" + kept[1].rstrip("\n"))  # blank line, no final \n
    summary = decontaminate_source(index_of(gsm8k=[GSM]), SourceConfig(path=str(path)),
                                   tmp_path / "out.jsonl", SkipReport(skip=False))
    assert (tmp_path / "out.jsonl").read_text() == "".join(kept)
    assert [row["location"] for row in summary.contaminated] == [f"{path}:2"]
    assert summary.by_benchmark == {"gsm8k": 1}


def test_other_formats_are_written_as_jsonl(tmp_path):
    records = [sft("Unrelated question about ducks.", "ok"), sft(GSM, "18"),
               {"messages": [{"role": "user", "content": "Is 1.5 > 1?"}], "ground_truth": "yes",
                "dataset": "ifeval"}]
    path = tmp_path / "train.json"
    path.write_text(json.dumps(records))
    summary = decontaminate_source(index_of(gsm8k=[GSM]), SourceConfig(path=str(path)),
                                   tmp_path / "out.jsonl", SkipReport(skip=False))
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert out == [records[0], records[2]]
    assert [row["location"] for row in summary.contaminated] == [f"{path}[record 1]"]


def test_worker_processes_give_the_same_result(tmp_path):
    rows = [sft(f"Question number {i}: how many ducks are in pond {i % 7}?", "some")
            for i in range(1500)]
    for i in (3, 700, 1499):
        rows[i] = sft(f"Row {i}. {GSM}", "18")
    rows[1000] = sft("Hi", "hello", f"Solve: {MATH}", "ok")
    path = tmp_path / "train.jsonl"
    write_jsonl(path, rows)
    index = index_of(gsm8k=[GSM], math=[MATH])
    results = [decontaminate_source(index, SourceConfig(path=str(path)),
                                    tmp_path / f"out{workers}.jsonl", SkipReport(skip=False),
                                    workers) for workers in (1, 2)]
    assert results[0].contaminated == results[1].contaminated
    assert [row["location"] for row in results[0].contaminated] == \
        [f"{path}:{i + 1}" for i in (3, 700, 1000, 1499)]
    assert (tmp_path / "out1.jsonl").read_bytes() == (tmp_path / "out2.jsonl").read_bytes()
    assert results[1].rows_kept == 1496
