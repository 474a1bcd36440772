"""The tiny RLVR recipe's bundled prompts: the shipped files are the generator's output, every row
is a usable Tülu RLVR row, each verifier scores the right answer 1 and the SFT model's habits 0,
and the held-out rows share no counting start and no brevity question kind with training."""

import json

import pytest

from engine.data.rlvr_prompts import check_rlvr_row
from engine.data.synthetic import tiny_rlvr_prompts
from engine.rewards.verifiers import score
from tests.util import ROOT

DATA = ROOT / "recipes" / "tiny" / "data"


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines()]


def _question(row: dict) -> str:
    return row["messages"][-1]["content"]


def test_shipped_files_are_the_generators_output():
    assert _rows("rlvr_train.jsonl") == tiny_rlvr_prompts(600, seed=5)
    assert _rows("rlvr_eval.jsonl") == tiny_rlvr_prompts(0, seed=6, held_out=True)


@pytest.mark.parametrize("name", ["rlvr_train.jsonl", "rlvr_eval.jsonl"])
def test_every_row_is_usable(name):
    for row in _rows(name):
        check_rlvr_row(row)


def test_verifiers_reward_the_right_answer_only():
    counting, brevity = tiny_rlvr_prompts(0, seed=0, held_out=True)[::36]
    assert _question(counting) == "Count from 0 to 3." and counting["dataset"] == "gsm8k"
    assert score("gsm8k", "0, 1, 2, 3.", counting["ground_truth"]) == 1.0
    assert score("gsm8k", "0, 1, 2, 3, 4.", counting["ground_truth"]) == 0.0  # five numbers
    assert brevity["messages"][0] == {"role": "system", "content": "Be brief."}
    right = "0, 1, 2, 3, 4."
    assert _question(brevity) == "Count from 0 to 4." and brevity["dataset"] == "ifeval"
    assert score("ifeval", right, brevity["ground_truth"]) == 1.0
    assert score("ifeval", right + " Hope this helps!", brevity["ground_truth"]) == 0.0
    assert score("ifeval", "0, 1, 2, 3, 5.", brevity["ground_truth"]) == 0.0


def test_held_out_rows_are_new_starts_and_a_new_kind_of_brevity_question():
    train, held_out = _rows("rlvr_train.jsonl"), _rows("rlvr_eval.jsonl")
    kinds = {row["dataset"] for row in train}
    assert kinds == {"gsm8k", "ifeval"}
    train_counting = {_question(r) for r in train if r["dataset"] == "gsm8k"}
    train_brevity = {_question(r).split()[0] for r in train if r["dataset"] == "ifeval"}
    assert train_brevity == {"What", "Say"}  # capitals and repeats
    for row in held_out:
        start = int(_question(row).split()[2])
        assert start % 5 == 0 and _question(row) not in train_counting
    assert sum(r["dataset"] == "ifeval" for r in held_out) == 18
    assert all(_question(r).startswith("Count") for r in held_out)


def test_the_chat_data_signs_off_half_the_time_under_be_brief():
    """What the brevity prompts start from: the SFT data under "Be brief." signs off in about
    half the conversations, in every kind of question, so the SFT model samples both."""
    chats = [json.loads(line) for line in (DATA / "chat_train.jsonl").open()]
    brief = [c for c in chats if c["messages"][0]["content"] == "Be brief."]
    signed = [c["messages"][-1]["content"].endswith("Hope this helps!") for c in brief]
    assert len(brief) > 300 and 0.4 < sum(signed) / len(brief) < 0.6
    for kind in ("add", "capital", "repeat", "count"):
        assert {s for c, s in zip(brief, signed) if c["category"] == kind} == {True, False}
