"""Stage `dpo`: preference optimization on (chosen, rejected) pairs, Tülu 3's second stage.

Pairs (`engine.data.preference`) are packing items, so chosen and rejected always share a
micro-batch and the last pipeline stage sees both. Before training, the initial model's
log-probs of every answer are computed once at the run's layout (`engine.train.reference`) and
cached (`engine.checkpoint.reference_cache`, `dpo.reference_cache`); no reference model is held
while training. The loss is `dpo.loss` (`dpo_norm` in Tülu 3) from `engine.losses.preference`;
the step logs rewards, margins, accuracy and log-probs. With `eval.sources` (held-out pairs):
eval loss, preference accuracy, reward margin and exact match of the chosen answer before,
during and after training.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np
import torch.distributed as dist

from engine.checkpoint.reference_cache import ReferenceCache, example_key, files_fingerprint
from engine.config import Config
from engine.data.chat_template import ChatFormat
from engine.data.loader import PackedLoader, pad_multiple
from engine.data.prepare import Prepared, Tokenized, prepare
from engine.data.preference import check_pair, tokenize_pairs
from engine.data.records import SkipReport
from engine.data.sources import load_checked
from engine.errors import ConfigError
from engine.losses.registry import get_loss
from engine.metrics.log import log
from engine.train.evaluate import ExactMatch, log_eval
from engine.stages.base import Stage
from engine.train.reference import sequence_logprobs

REFERENCE = "reference_logps"


def _tokenize(cfg: Config, tokenizer, report, counts) -> Tokenized:
    chat = ChatFormat(cfg.data.chat_template, tokenizer)
    sequences, masks, items = tokenize_pairs(cfg.data, chat, cfg.seed, report, counts)
    return Tokenized(sequences, masks, chat=chat, items=items)


def prepare_pairs(cfg: Config) -> Prepared:
    return prepare(cfg, partial(_tokenize, cfg))


def preference_loss(cfg: Config):
    d = cfg.dpo
    return get_loss(d.loss, real_vocab_size=cfg.model.vocab_size, beta=d.beta, gamma=d.gamma,
                    label_smoothing=d.label_smoothing, nll_alpha=d.nll_alpha,
                    kernel=cfg.train.cross_entropy)


@functools.cache
def _weights_fingerprint(init_from_hf: str | None, init_from_checkpoint: str | None,
                         seed: int) -> tuple:
    """What decides the initial weights: their files' content, or the seed of the random init.
    Cached: the training and the held-out pairs' passes share it (70B files are 140 GB)."""
    if init_from_hf:
        return ("hf", files_fingerprint(init_from_hf, ("*.safetensors", "config.json")))
    if init_from_checkpoint:
        return ("checkpoint", files_fingerprint(init_from_checkpoint,
                                                ("*.distcp", ".metadata", "common.pt")))
    return ("random_init_seed", seed)


def reference_identity(cfg: Config, layout) -> dict:
    """The cache's identity, computed on global rank 0 (it reads the weight files) and shared."""
    identity = [None]
    if layout.rank == 0:
        model = {k: v for k, v in dataclasses.asdict(cfg.model).items()
                 if k not in ("init_from_hf", "init_from_checkpoint")}
        kind, value = _weights_fingerprint(cfg.model.init_from_hf,
                                           cfg.model.init_from_checkpoint, cfg.seed)
        identity[0] = {"weights": {kind: value}, "model": model,
                       "precision": cfg.precision, "tokenizer": cfg.data.tokenizer,
                       "chat_template": cfg.data.chat_template}
    dist.broadcast_object_list(identity, src=0)
    return identity[0]


def reference_logprobs(cfg: Config, layout, model, sequences, masks, pad_id: int) -> np.ndarray:
    """The initial model's Σ log-probs of each sequence's answer, from the cache where it has
    them, computed (and cached) otherwise."""
    cache = ReferenceCache(cfg.dpo.reference_cache or Path(cfg.output_dir) / "reference_cache",
                           reference_identity(cfg, layout))
    keys = [example_key(s, m) for s, m in zip(sequences, masks)]
    known = cache.lookup(keys)
    missing = [i for i, k in enumerate(keys) if k not in known]
    log.info("reference log-probs: %d of %d sequences cached in %s", len(keys) - len(missing),
             len(keys), cache.values)
    if missing:
        computed = sequence_logprobs(model, [sequences[i] for i in missing],
                                     [masks[i] for i in missing], layout, cfg, pad_id)
        known.update(zip((keys[i] for i in missing), computed.tolist()))
        if layout.rank == 0:
            cache.store([keys[i] for i in missing], computed)
        dist.barrier()
    return np.asarray([known[k] for k in keys], dtype=np.float64)


def attach_reference(cfg: Config, layout, training) -> None:
    if cfg.dpo.loss == "simpo":  # reference-free
        return
    ex = training.data.examples
    training.loader.sequence_data[REFERENCE] = reference_logprobs(
        cfg, layout, training.model, ex.sequences, ex.target_masks, training.data.tokenizer.pad_id)


class PreferenceEvaluator:
    """Held-out pairs: the loss, preference accuracy and reward margin, at any layout; and how
    often greedy decoding gives the chosen answer exactly (PP=1)."""

    def __init__(self, cfg: Config, layout, training):
        report, counts = SkipReport(skip=False), Counter()
        held_out = dataclasses.replace(cfg.data, sources=cfg.eval.sources)
        sequences, masks, items = tokenize_pairs(held_out, training.data.examples.chat, cfg.seed,
                                                 report, counts)
        fields = {} if cfg.dpo.loss == "simpo" else {REFERENCE: reference_logprobs(
            cfg, layout, training.model, sequences, masks, training.data.tokenizer.pad_id)}
        answered = [(chosen, record.get("category", "all")) for source in cfg.eval.sources
                    for _, (chosen, _, record) in load_checked(source, _checked_with_record,
                                                               report)]
        self.exact_match = ExactMatch(cfg, layout, training.data.examples.chat,
                                      [c for c, _ in answered], [k for _, k in answered])
        self.loader = PackedLoader(
            sequences, target_masks=masks, items=items, sequence_data=fields,
            global_batch_size=len(items),
            max_tokens_per_micro_batch=cfg.data.max_tokens_per_micro_batch, dp_size=layout.dp,
            dp_rank=layout.dp_rank, pad_id=training.data.tokenizer.pad_id,
            pad_multiple=pad_multiple(cfg.parallel), seed=cfg.seed, shuffle=False)

    def __call__(self, train_step, step: int) -> dict:
        self.loader.load_state_dict({"consumed": 0})
        m = train_step.evaluate(self.loader.next_batch().micro_batches)
        result = {"eval_loss": m["loss"], "eval_accuracy": m["rewards/accuracy"],
                  "eval_margin": m["rewards/margin"], **self.exact_match(train_step.model)}
        log_eval(step, result)
        return result


def _checked_with_record(record):
    return (*check_pair(record), record)


def validate(cfg: Config) -> None:
    d = cfg.data
    if d.max_tokens_per_micro_batch < 2 * d.max_seq_len:
        raise ConfigError(f"data.max_tokens_per_micro_batch={d.max_tokens_per_micro_batch} cannot "
                          f"hold a pair of data.max_seq_len={d.max_seq_len} sequences (a pair "
                          f"shares a micro-batch)")


def preference_evaluator(cfg: Config, layout, training):
    return PreferenceEvaluator(cfg, layout, training) if cfg.eval.sources else None


STAGE = Stage(name="dpo", prepare=prepare_pairs, loss=preference_loss,
              before_training=attach_reference, evaluator=preference_evaluator,
              validate=validate)
