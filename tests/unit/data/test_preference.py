"""Preference pairs: both record layouts, the loss on the final answer only, every kind of bad
pair named (file:line and field) or counted, over-long pairs truncated or dropped, and each pair
one item."""

import json
from collections import Counter

import pytest

from engine.config import DataConfig, SourceConfig
from engine.data.chat_template import ChatFormat
from engine.data.preference import check_pair, tokenize_pairs
from engine.data.records import SkipReport
from engine.data.tokenizer import ByteTokenizer
from engine.errors import DataError

USER = {"role": "user", "content": "What is 2 + 2?"}
GOOD = {"id": "a", "prompt": "What is 2 + 2?",
        "chosen": [USER, {"role": "assistant", "content": "4"}],
        "rejected": [USER, {"role": "assistant", "content": "5"}]}
FMT = ChatFormat("tulu", ByteTokenizer())


def _tokenize(tmp_path, records, on_bad="error", **data):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    cfg = DataConfig(sources=[SourceConfig(path=str(path))], **data)
    report, counts = SkipReport(skip=on_bad == "skip"), Counter()
    return tokenize_pairs(cfg, FMT, 0, report, counts), report, counts, path


def _trained_text(ids, mask):
    return FMT.tok.decode([int(t) for t, m in zip(ids[1:], mask) if m])


def test_tulu_pairs_train_only_the_final_answer(tmp_path):
    two_turns = {**GOOD, "chosen": [{"role": "system", "content": "Be brief."}, USER,
                                    {"role": "assistant", "content": "Four."},
                                    {"role": "user", "content": "Sure?"},
                                    {"role": "assistant", "content": "Yes, 4."}]}
    two_turns["rejected"] = two_turns["chosen"][:-1] + [{"role": "assistant", "content": "No."}]
    (seqs, masks, items), _, _, _ = _tokenize(tmp_path, [GOOD, two_turns])
    assert items == [(0, 1), (2, 3)]
    eos = "<|end_of_text|>"
    assert [_trained_text(s, m) for s, m in zip(seqs, masks)] == \
        ["4" + eos, "5" + eos, "Yes, 4." + eos, "No." + eos]
    assert FMT.tok.decode(seqs[2]).count("Four.") == 1  # earlier turns are context only


def test_completion_only_layout_equals_whole_conversations(tmp_path):
    variant = {"prompt": [USER], "chosen": [{"role": "assistant", "content": "4"}],
               "rejected": [{"role": "assistant", "content": "5"}]}
    assert check_pair(variant) == check_pair(GOOD)


BAD = [
    ({**GOOD, "rejected": None}, "wrong_type", "rejected is NoneType"),
    ({k: v for k, v in GOOD.items() if k != "chosen"}, "missing_side", "missing field 'chosen'"),
    ({**GOOD, "chosen": [USER, {"role": "assistant", "content": " "}]}, "empty_content",
     "chosen[1].content is empty"),
    ({**GOOD, "rejected": [{"role": "user", "content": "What is 3 + 3?"},
                           {"role": "assistant", "content": "5"}]}, "prompt_mismatch",
     "chosen and rejected differ before the answer (chosen[0] vs rejected[0])"),
    ({**GOOD, "chosen": [USER]}, "last_turn_not_assistant", "chosen[0].role is 'user'"),
    ({**GOOD, "rejected": GOOD["chosen"]}, "identical_pair",
     "chosen[1].content and rejected[1].content are the same"),
    ({**GOOD, "chosen": [USER, {"role": "bot", "content": "4"}]}, "unknown_role",
     "chosen[1].role 'bot' is not one of"),
]


@pytest.mark.parametrize("record, reason, message", BAD, ids=[b[1] for b in BAD])
def test_bad_pair_stops_with_file_line_and_field(tmp_path, record, reason, message):
    with pytest.raises(DataError) as error:
        _tokenize(tmp_path, [GOOD, record])
    assert str(error.value).startswith(f"{tmp_path / 'pairs.jsonl'}:2: {message}")


def test_bad_pairs_are_counted_when_skipping(tmp_path):
    (seqs, _, items), report, counts, path = _tokenize(
        tmp_path, [GOOD, "{broken"] + [b[0] for b in BAD], on_bad="skip")
    assert len(items) == 1 and len(seqs) == 2
    assert report.counts == Counter({"invalid_json": 1, **Counter(b[1] for b in BAD)})
    assert report.first["identical_pair"].startswith(f"{path}:8: ")
    assert counts[f"read:{path}"] == 1


def test_long_pairs_are_truncated_or_dropped_and_counted(tmp_path):
    long = {**GOOD, "chosen": [USER, {"role": "assistant", "content": "4" * 80}]}
    all_prompt = {**GOOD, "chosen": [{"role": "user", "content": "x" * 80},
                                     {"role": "assistant", "content": "4"}],
                  "rejected": [{"role": "user", "content": "x" * 80},
                               {"role": "assistant", "content": "5"}]}
    (seqs, masks, items), report, counts, _ = _tokenize(
        tmp_path, [GOOD, long, all_prompt], on_bad="skip", max_seq_len=48)
    assert len(items) == 2 and counts["truncated"] == 2
    assert all(len(s) <= 48 for s in seqs) and all(m.any() for m in masks)
    assert report.counts == Counter({"no_trainable_tokens": 1})  # the answer was cut away
    (_, _, items), report, _, _ = _tokenize(tmp_path, [GOOD, long], on_bad="skip",
                                            max_seq_len=48, overflow="drop")
    assert len(items) == 1 and report.counts == Counter({"too_long": 1})
