"""Stage `pretrain`: next-token loss on plain-text documents (`data.sources[*].text_field`).

Every token after the first of each piece of a document is a target; the loss is cross-entropy
reduced per `train.loss_reduction`. No evaluator (held-out chats need stage `sft`).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from engine.config import Config
from engine.data.documents import tokenize_documents
from engine.data.prepare import Prepared, Tokenized, prepare
from engine.errors import ConfigError
from engine.losses.registry import get_loss
from engine.stages.base import Stage


def _tokenize(cfg: Config, tokenizer, report, counts) -> Tokenized:
    sequences = tokenize_documents(cfg.data, tokenizer, cfg.seed, report, counts)
    return Tokenized(sequences, [np.ones(len(s) - 1, dtype=bool) for s in sequences])


def prepare_documents(cfg: Config) -> Prepared:
    return prepare(cfg, partial(_tokenize, cfg))


def next_token_loss(cfg: Config):
    return get_loss("cross_entropy", real_vocab_size=cfg.model.vocab_size,
                    kernel=cfg.train.cross_entropy)


def validate(cfg: Config) -> None:
    if cfg.eval.sources:
        raise ConfigError("eval.sources holds chat data, which needs stage: sft")


STAGE = Stage(name="pretrain", prepare=prepare_documents, loss=next_token_loss,
              validate=validate)
