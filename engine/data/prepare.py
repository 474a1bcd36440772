"""Data preparation for a run: tokenizer, sequences and target masks, and the counts that say
what happened to every example (read, kept, skipped by reason, truncated, tokens, trainable
tokens). `tools/prepare_data.py` prints the same counts without training.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from engine.config import Config, ConfigError
from engine.data.chat import ChatFormat
from engine.data.documents import tokenize_documents
from engine.data.loader import PackedLoader
from engine.data.records import SkipReport
from engine.data.sft import tokenize_chats
from engine.data.tokenizer import Tokenizer, load_tokenizer


@dataclass
class Prepared:
    tokenizer: Tokenizer
    chat: ChatFormat | None
    sequences: list[np.ndarray]
    target_masks: list[np.ndarray]
    stats: dict


def prepare(cfg: Config) -> Prepared:
    d = cfg.data
    tok = load_tokenizer(d.tokenizer, d.bos_token, d.eos_token, d.pad_token)
    if cfg.model.vocab_size < tok.vocab_size:
        raise ConfigError(f"model.vocab_size={cfg.model.vocab_size} is smaller than the "
                          f"tokenizer's vocabulary ({tok.vocab_size})")
    report = SkipReport(skip=d.on_bad_record == "skip")
    counts: Counter = Counter()
    chat = None
    if cfg.stage == "sft":
        chat = ChatFormat(d.chat_template, tok)
        sequences, masks = tokenize_chats(d, chat, cfg.seed, report, counts)
    else:
        sequences = tokenize_documents(d, tok, cfg.seed, report, counts)
        masks = [np.ones(len(s) - 1, dtype=bool) for s in sequences]
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
    }
    return Prepared(tok, chat, sequences, masks, stats)


def pad_multiple(cfg: Config) -> int:
    """Sequence parallelism splits each micro-batch's tokens evenly over the TP ranks."""
    return cfg.parallel.tp if cfg.parallel.sp else 1


def build_loader(cfg: Config, data: Prepared, dp_size: int, dp_rank: int) -> PackedLoader:
    return PackedLoader(
        data.sequences,
        target_masks=data.target_masks,
        reduction=cfg.train.loss_reduction,
        global_batch_size=cfg.data.global_batch_size,
        max_tokens_per_micro_batch=cfg.data.max_tokens_per_micro_batch,
        dp_size=dp_size,
        dp_rank=dp_rank,
        pad_id=data.tokenizer.pad_id,
        pad_multiple=pad_multiple(cfg),
        seed=cfg.seed,
        shuffle=cfg.data.shuffle,
    )
