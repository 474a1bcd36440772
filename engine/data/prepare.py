"""Data preparation shared by the stages: the recipe's tokenizer, a stage's tokenized examples,
and the counts that say what happened to every example (read, kept, skipped by reason,
truncated, tokens, trainable tokens) with a fingerprint of what is trained on (a resumed run
checks it). `tools/prepare_data.py` prints the same counts without
training.

    data = prepare(cfg, tokenize)     # tokenize(tokenizer, report, counts) -> Tokenized
    loader = build_loader(cfg, data, dp_size, dp_rank)
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from engine.config import Config
from engine.data.chat_template import ChatFormat
from engine.data.loader import PackedLoader, pad_multiple
from engine.data.records import SkipReport
from engine.data.tokenizer import Tokenizer, load_tokenizer
from engine.errors import ConfigError


@dataclass
class Tokenized:
    """What a stage's tokenization returns: sequences with their per-target masks, and the
    items, fields and chat format its loss and evaluator need."""

    sequences: list[np.ndarray]
    target_masks: list[np.ndarray]
    chat: ChatFormat | None = None
    items: list[tuple[int, ...]] | None = None  # default: one item per sequence
    sequence_data: dict[str, np.ndarray] = field(default_factory=dict)
    token_data: dict[str, list[np.ndarray]] = field(default_factory=dict)
    records: list | None = None  # per sequence, what else a stage keeps (RLVR: ground truths)


@dataclass
class Prepared:
    tokenizer: Tokenizer
    examples: Tokenized
    stats: dict

    @property
    def sequences(self) -> list[np.ndarray]:
        return self.examples.sequences

    @property
    def num_items(self) -> int:
        return len(self.examples.items or self.examples.sequences)


def prepare(cfg: Config, tokenize: Callable[[Tokenizer, SkipReport, Counter], Tokenized]
            ) -> Prepared:
    d = cfg.data
    tok = load_tokenizer(d.tokenizer, d.bos_token, d.eos_token, d.pad_token)
    if cfg.model.vocab_size < tok.vocab_size:
        raise ConfigError(f"model.vocab_size={cfg.model.vocab_size} is smaller than the "
                          f"tokenizer's vocabulary ({tok.vocab_size})")
    report = SkipReport(skip=d.on_bad_record == "skip")
    counts: Counter = Counter()
    examples = tokenize(tok, report, counts)
    sequences, masks = examples.sequences, examples.target_masks
    if not sequences:
        raise ConfigError("no training sequences after preparation (see the skip report)")
    skipped_bad = sum(n for r, n in report.counts.items()
                      if r not in ("too_long", "no_trainable_tokens"))
    used = sum(n for k, n in counts.items() if k.startswith("used:"))
    stats = {
        "examples_read": sum(n for k, n in counts.items() if k.startswith("read:"))
        + skipped_bad,
        "examples_used": used,
        "examples_kept": len(sequences),
        "skipped": dict(report.counts),
        "skipped_first": dict(report.first),
        "truncated": counts["truncated"],
        "sources": {k.split(":", 1)[1]: {"read": counts[k], "used": counts["used:" + k[5:]]}
                    for k in counts if k.startswith("read:")},
        "sequences": len(sequences),
        "tokens": int(sum(len(s) for s in sequences)),
        "trainable_tokens": int(sum(int(m.sum()) for m in masks)),
        "fingerprint": fingerprint(examples),
    }
    return Prepared(tok, examples, stats)


def fingerprint(examples: Tokenized) -> str:
    """A hash of exactly what is trained on: every sequence's tokens and loss mask, in order,
    and how they are grouped into items."""
    h = hashlib.blake2b(digest_size=16)
    for ids, mask in zip(examples.sequences, examples.target_masks):
        h.update(len(ids).to_bytes(8, "little"))
        h.update(np.ascontiguousarray(ids, dtype=np.int32))
        h.update(np.packbits(np.asarray(mask, dtype=bool)))
    if examples.items is not None:
        h.update(np.asarray(examples.items, dtype=np.int64).tobytes())
    return h.hexdigest()


def build_loader(cfg: Config, data: Prepared, dp_size: int, dp_rank: int) -> PackedLoader:
    ex = data.examples
    return PackedLoader(
        ex.sequences,
        target_masks=ex.target_masks,
        items=ex.items,
        sequence_data=ex.sequence_data,
        token_data=ex.token_data,
        reduction=cfg.train.loss_reduction,
        global_batch_size=cfg.data.global_batch_size,
        max_tokens_per_micro_batch=cfg.data.max_tokens_per_micro_batch,
        dp_size=dp_size,
        dp_rank=dp_rank,
        pad_id=data.tokenizer.pad_id,
        pad_multiple=pad_multiple(cfg.parallel),
        seed=cfg.seed,
        shuffle=cfg.data.shuffle,
    )
