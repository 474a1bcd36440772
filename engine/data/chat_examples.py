"""Chat examples: checked, mixed, templated, tokenized with assistant-only masks.

An example longer than `data.max_seq_len` is truncated or dropped (`data.overflow`), counted
either way; an example left with no trainable token is dropped and counted.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from engine.config import DataConfig
from engine.data.chat_template import ChatFormat
from engine.data.records import SkipReport, check_messages
from engine.data.sources import load_checked, take


def tokenize_chats(data: DataConfig, fmt: ChatFormat, seed: int, report: SkipReport,
                   counts: Counter) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(sequences, target masks); counts gains read/kept/truncated per the whole mixture."""
    sequences, masks = [], []
    for index, source in enumerate(data.sources):
        examples = load_checked(source, lambda r: check_messages(r, source.messages_field),
                                report)
        counts[f"read:{source.path}"] = len(examples)
        chosen = take(examples, source, index, seed)
        counts[f"used:{source.path}"] = len(chosen)
        for location, messages in chosen:
            ids, trainable = fmt.tokenize_chat(messages)
            if len(ids) > data.max_seq_len:
                if data.overflow == "drop":
                    report.count("too_long", location, f"{len(ids)} tokens > data.max_seq_len")
                    continue
                ids, trainable = ids[:data.max_seq_len], trainable[:data.max_seq_len]
                counts["truncated"] += 1
            target_mask = trainable[1:]
            if not target_mask.any():
                report.count("no_trainable_tokens", location, "no assistant token to train on")
                continue
            sequences.append(ids)
            masks.append(target_mask)
    return sequences, masks
