"""Stage `sft`: supervised fine-tuning on chats (Tülu format), loss on assistant tokens only.

Conversations are templated (`data.chat_template`) and tokenized with assistant-only masks,
too-long ones truncated or dropped (`data.overflow`); the loss is cross-entropy reduced per
`train.loss_reduction` (`sum` in Tülu 3). With `eval.sources`, held-out chats are evaluated
before, during and after training: loss per assistant token and greedy exact match.
"""

from __future__ import annotations

from functools import partial

from engine.config import Config
from engine.data.chat_examples import tokenize_chats
from engine.data.chat_template import ChatFormat
from engine.data.prepare import Prepared, Tokenized, prepare
from engine.stages.base import Stage
from engine.stages.pretrain import next_token_loss
from engine.train.evaluate import ChatEvaluator


def _tokenize(cfg: Config, tokenizer, report, counts) -> Tokenized:
    chat = ChatFormat(cfg.data.chat_template, tokenizer)
    sequences, masks = tokenize_chats(cfg.data, chat, cfg.seed, report, counts)
    return Tokenized(sequences, masks, chat=chat)


def prepare_chats(cfg: Config) -> Prepared:
    return prepare(cfg, partial(_tokenize, cfg))


def chat_evaluator(cfg: Config, layout, training):
    if not cfg.eval.sources:
        return None
    return ChatEvaluator(cfg, layout, training.data.examples.chat)


STAGE = Stage(name="sft", prepare=prepare_chats, loss=next_token_loss, evaluator=chat_evaluator)
