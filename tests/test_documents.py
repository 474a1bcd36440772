"""Document sources: every bad record stops preparation with file, line and reason."""

import json

import pytest

from engine.config import DataConfig, SourceConfig
from engine.data.documents import DataError, read_documents, tokenize_documents
from engine.data.tokenizer import ByteTokenizer
from tests.util import TINY, launch


def _write(tmp_path, lines):
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize("line, reason", [
    ('{"text": "ok"', "invalid JSON"),
    ('["text"]', "record is list, expected an object"),
    ('{"body": "x"}', "missing field 'text'"),
    ('{"text": 3}', "field 'text' must be a non-empty string"),
    ('{"text": ""}', "field 'text' must be a non-empty string"),
])
def test_bad_record_names_file_and_line(tmp_path, line, reason):
    path = _write(tmp_path, ['{"text": "fine"}', "", line])
    with pytest.raises(DataError, match=f"{path}:3: {reason}".replace("[", r"\[")):
        read_documents(path, "text")


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        read_documents(str(tmp_path / "absent.jsonl"), "text")
    with pytest.raises(DataError, match="no records"):
        read_documents(_write(tmp_path, [""]), "text")


def test_documents_are_cut_into_sequences(tmp_path):
    text = "abcdefghij"  # 10 bytes -> bos + 10 + eos = 12 tokens
    data = DataConfig(sources=[SourceConfig(path=_write(tmp_path, [json.dumps({"text": text})]))],
                      max_seq_len=5)
    tok = ByteTokenizer()
    seqs = tokenize_documents(data, tok)
    assert [len(s) for s in seqs] == [5, 5, 2]
    flat = [int(t) for s in seqs for t in s]
    assert flat == [tok.bos_id, *text.encode(), tok.eos_id]


def test_cli_reports_bad_data_without_traceback(tmp_path):
    bad = _write(tmp_path, ['{"text": "fine"}', '{"txt": "oops"}'])
    proc = launch(["engine.train", str(TINY), f"output_dir={tmp_path / 'run'}",
                   f"data.sources=[{{path: {bad}}}]"], timeout=120)
    assert proc.returncode == 2
    assert f"data error: {bad}:2: missing field 'text'" in proc.stderr
    assert "Traceback" not in proc.stderr
