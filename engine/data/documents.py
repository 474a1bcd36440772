"""Plain-text documents, tokenized into training sequences.

Each record's `text_field` holds a non-empty string. A document becomes bos + tokens + eos and is
cut into sequences of at most `max_seq_len` tokens; every token after the first is a target.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from engine.config import DataConfig, SourceConfig
from engine.data.records import SkipReport, check_text
from engine.data.sources import load_checked, take


def read_documents(source: SourceConfig, report: SkipReport) -> list[str]:
    return [text for _, text in load_checked(source, lambda r: check_text(r, source.text_field),
                                             report)]


def tokenize_documents(data: DataConfig, tokenizer, seed: int, report: SkipReport,
                       counts: Counter) -> list[np.ndarray]:
    sequences = []
    for index, source in enumerate(data.sources):
        texts = read_documents(source, report)
        chosen = take(texts, source, index, seed)
        counts[f"read:{source.path}"], counts[f"used:{source.path}"] = len(texts), len(chosen)
        for text in chosen:
            ids = [*([tokenizer.bos_id] if tokenizer.bos_id is not None else []),
                   *tokenizer.encode(text), tokenizer.eos_id]
            # A 1-token tail has no target of its own; its token was the previous piece's last.
            for start in range(0, len(ids) - 1, data.max_seq_len):
                piece = ids[start:start + data.max_seq_len]
                if len(piece) >= 2:
                    sequences.append(np.asarray(piece, dtype=np.int32))
    return sequences
