"""RLVR prompts: Tülu's RLVR rows checked, mixed and rendered for generation.

A row holds `messages` (the prompt's turns: system and user, no answer), `ground_truth` and
`dataset` (`gsm8k`, `math`, `ifeval`: which verifier scores the answers; matched in lower case,
so `MATH` is `math`). Each usable row becomes the prompt's token ids, rendered by the chat
template through the generation prompt, with its dataset and ground truth.

A row is bad — an error naming the file and line, or counted per reason with
`data.on_bad_record=skip` — when its messages are malformed, it has no user turn, it ends with an
assistant turn (an answer is generated, not given), its dataset has no verifier, or its ground
truth is one that verifier cannot use (checked by the verifier itself, which reads the ground
truth before any answer). A prompt longer than `max_prompt_tokens` is dropped and counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from engine.config import DataConfig
from engine.data.chat_template import ChatFormat
from engine.data.records import BadRecord, SkipReport, check_messages
from engine.data.sources import load_checked, take
from engine.rewards.base import BadGroundTruth
from engine.rewards.verifiers import DATASETS, verifier


@dataclass(frozen=True)
class RLVRPrompt:
    location: str  # file:line of the row
    prompt_ids: np.ndarray  # the rendered prompt, through the generation prompt
    dataset: str  # which verifier scores its answers
    ground_truth: object


def check_rlvr_row(record, messages_field: str = "messages") -> tuple[list[dict], str, object]:
    """(prompt turns, dataset, ground truth) of a row, or BadRecord saying what is wrong."""
    messages = check_messages(record, messages_field)
    if not any(m["role"] == "user" for m in messages):
        raise BadRecord("no_user_turn", f"{messages_field} has no user turn")
    if messages[-1]["role"] == "assistant":
        raise BadRecord("ends_with_answer", f"{messages_field} ends with an assistant turn; "
                                            "an RLVR prompt ends before the answer")
    dataset = record.get("dataset")
    if not isinstance(dataset, str) or dataset.lower() not in DATASETS:
        raise BadRecord("unknown_dataset", f"dataset {dataset!r} has no verifier (expected one "
                                           f"of {', '.join(DATASETS)})")
    dataset = dataset.lower()
    if "ground_truth" not in record:
        raise BadRecord("missing_ground_truth", "missing field 'ground_truth'")
    ground_truth = record["ground_truth"]
    try:
        verifier(dataset)("", ground_truth)
    except BadGroundTruth as e:
        raise BadRecord("bad_ground_truth", str(e)) from None
    return messages, dataset, ground_truth


def load_rlvr_prompts(data: DataConfig, chat: ChatFormat, seed: int, report: SkipReport,
                      counts: Counter, max_prompt_tokens: int) -> list[RLVRPrompt]:
    """Every source's share of the mixture (`take`), rendered; counts gains read/used per
    source and kept per dataset."""
    prompts = []
    for index, source in enumerate(data.sources):
        rows = load_checked(source, lambda r: check_rlvr_row(r, source.messages_field), report)
        counts[f"read:{source.path}"] = len(rows)
        chosen = take(rows, source, index, seed)
        counts[f"used:{source.path}"] = len(chosen)
        for location, (messages, dataset, ground_truth) in chosen:
            ids = np.asarray(chat.prompt_ids(messages), dtype=np.int64)
            if len(ids) > max_prompt_tokens:
                report.count("prompt_too_long", location,
                              f"{len(ids)} prompt tokens > {max_prompt_tokens}")
                continue
            prompts.append(RLVRPrompt(location, ids, dataset, ground_truth))
            counts[f"kept:{dataset}"] += 1
    return prompts
