"""Preference pairs (DPO): checked, mixed, templated, tokenized as (chosen, rejected) items.

Two record layouts, both with `chosen` and `rejected` message lists ending in the assistant's
answer:
- Tülu's (`allenai/llama-3.1-tulu-3-8b-preference-mixture`): `chosen` and `rejected` are whole
  conversations that share every turn but the last; `prompt` is a string (informative only);
- completions only: `prompt` is the shared message list and `chosen` / `rejected` hold what
  follows it.

The loss covers the final assistant turn (its content and end-of-turn token). A bad pair — a
missing or malformed side, an empty message, sides whose prompts differ, a last turn that is not
the assistant's, identical answers — stops preparation naming file, record and field, or is
counted under its reason with `data.on_bad_record: skip`. A pair longer than `data.max_seq_len`
on either side is truncated (counted; dropped and counted if a side is left with nothing to
train on) or dropped (`data.overflow: drop`, counted).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from engine.config import DataConfig
from engine.data.chat_template import ChatFormat
from engine.data.records import BadRecord, SkipReport, check_messages
from engine.data.sources import load_checked, take


def check_pair(record) -> tuple[list[dict], list[dict]]:
    """(chosen conversation, rejected conversation) of a preference record, or BadRecord."""
    if not isinstance(record, dict):
        raise BadRecord("not_an_object", f"record is {type(record).__name__}, expected an object")
    for side in ("chosen", "rejected"):
        if side not in record:
            raise BadRecord("missing_side", f"missing field {side!r}")
    chosen, rejected = check_messages(record, "chosen"), check_messages(record, "rejected")
    prompt = record.get("prompt")
    if isinstance(prompt, list):  # completions only, after a shared prompt
        prompt = check_messages(record, "prompt")
        chosen, rejected = prompt + chosen, prompt + rejected
    for side, messages in (("chosen", chosen), ("rejected", rejected)):
        if messages[-1]["role"] != "assistant":
            raise BadRecord("last_turn_not_assistant", f"{side}[{len(messages) - 1}].role is "
                                                       f"{messages[-1]['role']!r}, expected the "
                                                       f"assistant's answer last")
    if chosen[:-1] != rejected[:-1]:
        turn = next((i for i, (a, b) in enumerate(zip(chosen[:-1], rejected[:-1])) if a != b),
                    min(len(chosen), len(rejected)) - 1)
        raise BadRecord("prompt_mismatch", f"chosen and rejected differ before the answer "
                                           f"(chosen[{turn}] vs rejected[{turn}])")
    if chosen[-1]["content"].strip() == rejected[-1]["content"].strip():
        raise BadRecord("identical_pair", f"chosen[{len(chosen) - 1}].content and "
                                          f"rejected[{len(rejected) - 1}].content are the same")
    return chosen, rejected


def tokenize_pairs(data: DataConfig, fmt: ChatFormat, seed: int, report: SkipReport,
                   counts: Counter) -> tuple[list[np.ndarray], list[np.ndarray],
                                             list[tuple[int, int]]]:
    """(sequences, target masks, items): each pair's chosen then rejected sequence, and the
    item (index of chosen, index of rejected) that keeps them in one micro-batch."""
    sequences, masks, items = [], [], []
    for index, source in enumerate(data.sources):
        pairs = load_checked(source, check_pair, report)
        counts[f"read:{source.path}"] = len(pairs)
        chosen_pairs = take(pairs, source, index, seed)
        counts[f"used:{source.path}"] = len(chosen_pairs)
        for location, (chosen, rejected) in chosen_pairs:
            sides = [fmt.tokenize_chat(m, last_turn_only=True) for m in (chosen, rejected)]
            if max(len(ids) for ids, _ in sides) > data.max_seq_len:
                if data.overflow == "drop":
                    report.count("too_long", location, f"a side has more than data.max_seq_len="
                                                       f"{data.max_seq_len} tokens")
                    continue
                sides = [(ids[:data.max_seq_len], mask[:data.max_seq_len]) for ids, mask in sides]
                counts["truncated"] += 1
            if not all(mask[1:].any() for _, mask in sides):
                report.count("no_trainable_tokens", location,
                             "a side has no answer token left to train on")
                continue
            items.append((len(sequences), len(sequences) + 1))
            for ids, mask in sides:
                sequences.append(ids)
                masks.append(mask[1:])
    return sequences, masks, items
