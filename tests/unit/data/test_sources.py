"""Sources (JSONL, JSON, Parquet, saved datasets), mixtures, and every kind of bad record:
an error naming file + line/record + reason, or a counted skip."""

import json
from collections import Counter

import pytest

from engine.config import DataConfig, SourceConfig
from engine.data.documents import tokenize_documents
from engine.data.records import SkipReport, check_messages
from engine.errors import DataError
from engine.data.sources import load_checked, read_source, take
from engine.data.tokenizer import ByteTokenizer

GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}

BAD_LINES = [  # (JSONL line, reason counted, message)
    ('{"messages": [', "invalid_json", "invalid JSON"),
    ('[1, 2]', "not_an_object", "record is list, expected an object"),
    ('{"id": 3}', "missing_messages", "missing field 'messages'"),
    ('{"messages": "hi"}', "wrong_type", "messages is str, expected a list"),
    ('{"messages": []}', "empty_messages", "messages is empty"),
    ('{"messages": ["hi"]}', "wrong_type", r"messages\[0\] is str, expected an object"),
    ('{"messages": [{"role": "bot", "content": "x"}]}', "unknown_role",
     r"messages\[0\].role 'bot' is not one of system, user, assistant"),
    ('{"messages": [{"content": "x"}]}', "wrong_type", r"messages\[0\].role is missing"),
    ('{"messages": [{"role": "user", "content": 5}]}', "wrong_type",
     r"messages\[0\].content is int, expected a string"),
    ('{"messages": [{"role": "user", "content": "  "}]}', "empty_content",
     r"messages\[0\].content is empty"),
]


def _jsonl(tmp_path, lines, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return SourceConfig(path=str(path))


@pytest.mark.parametrize("line, reason, message", BAD_LINES, ids=[b[1] + str(i) for i, b in
                                                                  enumerate(BAD_LINES)])
def test_bad_record_stops_with_file_line_and_reason(tmp_path, line, reason, message):
    source = _jsonl(tmp_path, [json.dumps(GOOD), "", line])
    with pytest.raises(DataError, match=f"{source.path}:3: {message}"):
        load_checked(source, check_messages, SkipReport(skip=False))


def test_bad_records_are_counted_per_reason_when_skipping(tmp_path):
    source = _jsonl(tmp_path, [json.dumps(GOOD)] + [b[0] for b in BAD_LINES])
    report = SkipReport(skip=True)
    good = load_checked(source, check_messages, report)
    assert len(good) == 1
    assert report.counts == Counter(b[1] for b in BAD_LINES)
    assert report.first["unknown_role"].startswith(f"{source.path}:8: ")


def test_formats_json_parquet_and_saved_datasets(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset, DatasetDict

    records = [GOOD, {"messages": [{"role": "user", "content": "a"},
                                   {"role": "assistant", "content": "b"}]}]
    (tmp_path / "d.json").write_text(json.dumps(records))
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "d.parquet")
    Dataset.from_list(records).save_to_disk(str(tmp_path / "ds"))
    DatasetDict({"train": Dataset.from_list(records[:1]), "test": Dataset.from_list(records)}) \
        .save_to_disk(str(tmp_path / "dd"))
    for path, split, n, where in (("d.json", None, 2, "[record 1]"), ("d.parquet", None, 2, "[row 1]"),
                                  ("ds", None, 2, "[row 1]"), ("dd", None, 1, "[row 0]"),
                                  ("dd", "test", 2, "[row 1]")):
        source = SourceConfig(path=str(tmp_path / path), split=split)
        got = load_checked(source, check_messages, SkipReport(skip=False))
        assert len(got) == n and got[-1][0].endswith(where)
        assert got[0][1] == GOOD["messages"]
    with pytest.raises(DataError, match="no split 'dev'"):
        list(read_source(SourceConfig(path=str(tmp_path / "dd"), split="dev")))
    with pytest.raises(DataError, match="data source not found"):
        list(read_source(SourceConfig(path=str(tmp_path / "none.jsonl"))))
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unknown source format"):
        list(read_source(SourceConfig(path=str(tmp_path / "x.csv"))))
    (tmp_path / "bad.json").write_text('{"a": 1}')
    with pytest.raises(DataError, match="must hold a list of records"):
        list(read_source(SourceConfig(path=str(tmp_path / "bad.json"))))


def test_mixture_fraction_count_and_repeat_are_deterministic():
    items = list(range(10))
    half = take(items, SourceConfig(path="a", fraction=0.5), 0, seed=1)
    assert len(half) == 5 and len(set(half)) == 5
    assert half == take(items, SourceConfig(path="a", fraction=0.5), 0, seed=1)
    assert half != take(items, SourceConfig(path="a", fraction=0.5), 0, seed=2)
    assert sorted(take(items, SourceConfig(path="a"), 0, seed=1)) == items
    twice = take(items, SourceConfig(path="a", fraction=2.0), 0, seed=1)
    assert sorted(twice) == sorted(items * 2)
    assert len(take(items, SourceConfig(path="a", count=13), 1, seed=1)) == 13
    assert take(items, SourceConfig(path="a", count=0), 1, seed=1) == []


def test_documents_are_cut_into_sequences(tmp_path):
    source = _jsonl(tmp_path, [json.dumps({"text": "abcdefghij"})])
    tok = ByteTokenizer()
    counts = Counter()
    seqs = tokenize_documents(DataConfig(sources=[source], max_seq_len=5), tok, 0,
                              SkipReport(skip=False), counts)
    assert [len(s) for s in seqs] == [5, 5, 2]  # bos + 10 bytes + eos = 12 tokens
    assert [int(t) for s in seqs for t in s] == [tok.bos_id, *b"abcdefghij", tok.eos_id]
    assert counts[f"read:{source.path}"] == 1


def test_invalid_utf8_is_a_bad_record_of_its_own_line(tmp_path):
    path = tmp_path / "data.jsonl"
    bad = b'{"messages": [{"role": "user", "content": "caf\xe9"}]}'
    path.write_bytes(b"\n".join([json.dumps(GOOD).encode(), bad, json.dumps(GOOD).encode()]))
    source = SourceConfig(path=str(path))
    with pytest.raises(DataError, match=f"{path}:2: invalid UTF-8 \\(byte 0xe9 at column 47\\)"):
        load_checked(source, check_messages, SkipReport(skip=False))
    report = SkipReport(skip=True)
    assert len(load_checked(source, check_messages, report)) == 2
    assert report.counts == Counter({"invalid_utf8": 1})
    whole = tmp_path / "data.json"
    whole.write_bytes(b"[\n" + json.dumps(GOOD).encode() + b",\n" + bad + b"\n]")
    with pytest.raises(DataError, match=f"{whole}:3: invalid UTF-8 \\(byte 0xe9"):
        list(read_source(SourceConfig(path=str(whole))))
