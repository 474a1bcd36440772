"""Plain-text documents from JSONL files, tokenized into training sequences.

Each line of a source is a JSON object whose `text_field` holds a non-empty string. A document
becomes bos + tokens + eos and is cut into sequences of at most `max_seq_len` tokens. A bad line
stops preparation with `file:line: reason`; nothing is skipped silently.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.config import DataConfig


class DataError(ValueError):
    """Bad input data; the message names the file, the line and the field."""


def read_documents(path: str, text_field: str) -> list[str]:
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{path}: data file not found")
    texts = []
    with file.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{number}: invalid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{number}: record is {type(record).__name__}, "
                                f"expected an object")
            if text_field not in record:
                raise DataError(f"{path}:{number}: missing field {text_field!r}")
            text = record[text_field]
            if not isinstance(text, str) or not text:
                raise DataError(f"{path}:{number}: field {text_field!r} must be a non-empty "
                                f"string")
            texts.append(text)
    if not texts:
        raise DataError(f"{path}: no records")
    return texts


def tokenize_documents(data: DataConfig, tokenizer) -> list[np.ndarray]:
    """Every source's documents as int32 token sequences of 2..max_seq_len tokens."""
    sequences = []
    for source in data.sources:
        for text in read_documents(source.path, source.text_field):
            ids = [tokenizer.bos_id, *tokenizer.encode(text), tokenizer.eos_id]
            for start in range(0, len(ids) - 1, data.max_seq_len):
                piece = ids[start:start + data.max_seq_len]
                if len(piece) >= 2:  # a sequence needs one input and one target
                    sequences.append(np.asarray(piece, dtype=np.int32))
    return sequences
