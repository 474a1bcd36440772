"""RLVR rows: good rows of each dataset rendered through the generation prompt; every kind of bad
row named by file and line, or counted per reason with on_bad_record=skip; long prompts dropped."""

import json
from collections import Counter

import pytest

from engine.data.chat_template import ChatFormat
from engine.data.records import SkipReport
from engine.data.rlvr_prompts import load_rlvr_prompts
from engine.data.tokenizer import load_tokenizer
from engine.errors import DataError
from engine.recipe import load_recipe
from tests.util import TINY

IF_TRUTH = json.dumps({"func_name": "validate_no_commas"})
GOOD = [
    {"messages": [{"role": "user", "content": "What is 2 + 3?"}], "ground_truth": "5",
     "dataset": "gsm8k"},
    {"messages": [{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "Simplify 2/4."}],
     "ground_truth": "\\frac{1}{2}", "dataset": "MATH"},
    {"messages": [{"role": "user", "content": "List three colors without commas."}],
     "ground_truth": IF_TRUTH, "dataset": "ifeval"},
]
BAD = [  # (row, reason, message)
    ({"messages": [{"role": "system", "content": "Hi."}], "ground_truth": "1",
      "dataset": "gsm8k"}, "no_user_turn", "messages has no user turn"),
    ({"messages": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}],
      "ground_truth": "2", "dataset": "gsm8k"}, "ends_with_answer", "ends with an assistant"),
    ({"messages": [{"role": "user", "content": "Q?"}], "ground_truth": "A", "dataset": "mmlu"},
     "unknown_dataset", "dataset 'mmlu' has no verifier"),
    ({"messages": [{"role": "user", "content": "Q?"}], "dataset": "gsm8k"},
     "missing_ground_truth", "missing field 'ground_truth'"),
    ({"messages": [{"role": "user", "content": "Q?"}], "ground_truth": "{not json",
      "dataset": "ifeval"}, "bad_ground_truth", "ifeval ground truth"),
    ({"messages": [{"role": "user", "content": "Q?"}], "ground_truth": "",
      "dataset": "math"}, "bad_ground_truth", "MATH ground truth must be a non-empty string"),
]


def _setup(tmp_path, rows, skip):
    path = tmp_path / "rlvr.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_recipe(TINY, [f"data.sources=[{{path: {path}}}]", "data.chat_template=tulu",
                             f"data.on_bad_record={'skip' if skip else 'error'}"])
    return cfg, ChatFormat("tulu", load_tokenizer("byte")), path


def test_good_rows_render_through_the_generation_prompt(tmp_path):
    cfg, chat, _ = _setup(tmp_path, GOOD, skip=False)
    counts = Counter()
    prompts = load_rlvr_prompts(cfg.data, chat, 0, SkipReport(skip=False), counts, 1000)
    by_dataset = {p.dataset: p for p in prompts}  # the mixture is shuffled by the seed
    assert sorted(by_dataset) == ["gsm8k", "ifeval", "math"]
    assert by_dataset["gsm8k"].prompt_ids.tolist() == chat.prompt_ids(GOOD[0]["messages"])
    assert chat.tok.decode(by_dataset["gsm8k"].prompt_ids.tolist()).endswith("<|assistant|>\n")
    assert by_dataset["ifeval"].ground_truth == IF_TRUTH
    assert by_dataset["math"].location.endswith(":2")
    assert counts["kept:math"] == 1 and counts[f"read:{tmp_path / 'rlvr.jsonl'}"] == 3


@pytest.mark.parametrize("row, reason, message", BAD)
def test_a_bad_row_is_named_by_line(tmp_path, row, reason, message):
    cfg, chat, path = _setup(tmp_path, [GOOD[0], row], skip=False)
    with pytest.raises(DataError, match=f"{path}:2: .*{message}"):
        load_rlvr_prompts(cfg.data, chat, 0, SkipReport(skip=False), Counter(), 1000)


def test_bad_rows_are_counted_per_reason_and_long_prompts_dropped(tmp_path):
    cfg, chat, _ = _setup(tmp_path, GOOD + [row for row, _, _ in BAD], skip=True)
    report = SkipReport(skip=True)
    prompts = load_rlvr_prompts(cfg.data, chat, 0, report, Counter(), 1000)
    assert len(prompts) == 3
    assert dict(report.counts) == {"no_user_turn": 1, "ends_with_answer": 1,
                                   "unknown_dataset": 1, "missing_ground_truth": 1,
                                   "bad_ground_truth": 2}
    short = load_rlvr_prompts(cfg.data, chat, 0, report, Counter(), 30)
    assert len(short) < 3 and report.counts["prompt_too_long"] == 3 - len(short)
