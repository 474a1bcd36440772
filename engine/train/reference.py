"""Log-probabilities of a fixed model over a whole data set, by one forward-only pass at the
run's layout: DPO's reference log-probs (per sequence, computed before training so that no
reference model is held during it), RLVR's old and reference log-probs (per token), and a value
model's values (per token).

    logps = sequence_logprobs(model, sequences, masks, layout, cfg, pad_id)  # [n], every rank
    per_token = token_logprobs(model, sequences, layout, cfg, pad_id)       # [len - 1] each
    values = token_values(value_model, sequences, layout, cfg, pad_id)      # [len - 1] each

Each data-parallel replica takes a share of the data set's micro-batches (packed
best-fit-decreasing into `data.max_tokens_per_micro_batch`), its last pipeline stage sums the
label log-probs over each sequence's target tokens (those with a mask) or keeps them per token,
and one all-reduce gives every rank the whole array. The values do not depend on the layout
beyond fp reduction order.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.distributed as dist

from engine.config import Config
from engine.data.loader import pad_multiple
from engine.data.packing import best_fit_decreasing, collate
from engine.launch.layout import Layout
from engine.losses.cross_entropy import label_logprobs, tempered
from engine.losses.preference import sequence_sums
from engine.model.build import vocab_logits
from engine.metrics.log import log
from engine.train.schedule import forward_collect

_CHUNK = 64  # micro-batches per schedule call (and per progress line)


def _replica_outputs(model, sequences: list[np.ndarray], masks: list[np.ndarray],
                     layout: Layout, cfg: Config, pad_id: int, fn, what: str):
    """(bin of sequence indices, fn(mb, logits)) for this replica's share of the micro-batches,
    on the one rank per replica that keeps them (last stage, TP rank 0); nothing elsewhere."""
    bins = best_fit_decreasing([len(s) for s in sequences], cfg.data.max_tokens_per_micro_batch)
    mine = bins[layout.dp_rank::layout.dp]
    pad = pad_multiple(cfg.parallel)
    was_training = model.training
    model.eval()
    for first in range(0, len(mine), _CHUNK):
        chunk = mine[first:first + _CHUNK]
        micro_batches = [collate([sequences[i] for i in b], [masks[i] for i in b], pad_id, pad)
                         for b in chunk]
        out = forward_collect(model, micro_batches, fn, layout.device, layout.is_last_stage)
        if out is not None and layout.tp_rank == 0:  # one copy per replica
            yield from zip(chunk, out)
        if len(mine) > _CHUNK:
            log.info("%s: %d/%d micro-batches of this replica", what,
                     min(first + _CHUNK, len(mine)), len(mine))
    model.train(was_training)


@torch.no_grad()
def sequence_logprobs(model, sequences: list[np.ndarray], masks: list[np.ndarray],
                      layout: Layout, cfg: Config, pad_id: int) -> np.ndarray:
    """Σ log p(label) over the masked targets of each sequence, for every sequence."""
    start = time.perf_counter()
    totals = torch.zeros(len(sequences), dtype=torch.float64, device=layout.device)
    vocab = cfg.model.vocab_size

    def sums(mb, logits):
        token_logps = label_logprobs(logits, mb.labels, vocab, cfg.train.cross_entropy)
        return sequence_sums(token_logps, (mb.loss_weights > 0).float(), mb.cu_seqlens,
                             mb.num_sequences)[0]

    for b, values in _replica_outputs(model, sequences, masks, layout, cfg, pad_id, sums,
                                      "reference log-probs"):
        totals[torch.as_tensor(b, device=layout.device)] = values
    dist.all_reduce(totals)
    log.info("reference log-probs of %d sequences in %.1fs", len(sequences),
             time.perf_counter() - start)
    return totals.cpu().numpy()


@torch.no_grad()
def token_logprobs(model, sequences: list[np.ndarray], layout: Layout, cfg: Config,
                   pad_id: int, temperature: float = 1.0) -> list[np.ndarray]:
    """log p(token | the tokens before it) for every token of each sequence but the first
    (len - 1 values per sequence, float64), on every rank, under softmax(logits / temperature):
    RLVR's old and reference log-probs."""
    vocab = cfg.model.vocab_size

    def per_token(mb, logits):
        return label_logprobs(tempered(logits, temperature), mb.labels, vocab,
                              cfg.train.cross_entropy)

    return _per_position(model, sequences, layout, cfg, pad_id, per_token, "log-probs")


@torch.no_grad()
def token_values(model, sequences: list[np.ndarray], layout: Layout, cfg: Config,
                 pad_id: int) -> list[np.ndarray]:
    """A value model's value at every position of each sequence but the last (len - 1 per
    sequence, float64; position i has seen tokens 0..i), on every rank: PPO's old values."""
    return _per_position(model, sequences, layout, cfg, pad_id,
                         lambda mb, logits: vocab_logits(logits, 1)[:, 0], "values")


def _per_position(model, sequences: list[np.ndarray], layout: Layout, cfg: Config, pad_id: int,
                  fn, what: str) -> list[np.ndarray]:
    """fn(mb, logits) -> one value per packed position, kept for the positions that have a
    label (all but each sequence's last), gathered to every rank."""
    sizes = [len(s) - 1 for s in sequences]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    flat = torch.zeros(int(offsets[-1]), dtype=torch.float64, device=layout.device)
    ones = [np.ones(n) for n in sizes]
    for b, values in _replica_outputs(model, sequences, ones, layout, cfg, pad_id, fn, what):
        start = 0
        for i in b:
            flat[offsets[i]:offsets[i + 1]] = values[start:start + sizes[i]]
            start += sizes[i] + 1
    dist.all_reduce(flat)
    flat = flat.cpu().numpy()
    return [flat[offsets[i]:offsets[i + 1]] for i in range(len(sequences))]
