"""Per-sequence log-probabilities of a fixed model over a whole data set, by one forward-only
pass at the run's layout: DPO's reference log-probs, computed before training so that no
reference model is held during it.

    logps = sequence_logprobs(model, sequences, masks, layout, cfg)   # [n] float64, every rank

Each data-parallel replica takes a share of the data set's micro-batches (packed
best-fit-decreasing into `data.max_tokens_per_micro_batch`), its last pipeline stage sums the
label log-probs over each sequence's target tokens (those with a mask), and one all-reduce gives
every rank the whole array. The values do not depend on the layout beyond fp reduction order.
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
from engine.losses.cross_entropy import label_logprobs
from engine.losses.preference import sequence_sums
from engine.metrics.log import log
from engine.train.schedule import forward_collect

_CHUNK = 64  # micro-batches per schedule call (and per progress line)


@torch.no_grad()
def sequence_logprobs(model, sequences: list[np.ndarray], masks: list[np.ndarray],
                      layout: Layout, cfg: Config, pad_id: int) -> np.ndarray:
    """Σ log p(label) over the masked targets of each sequence, for every sequence."""
    start = time.perf_counter()
    bins = best_fit_decreasing([len(s) for s in sequences], cfg.data.max_tokens_per_micro_batch)
    mine = bins[layout.dp_rank::layout.dp]
    totals = torch.zeros(len(sequences), dtype=torch.float64, device=layout.device)
    vocab, pad = cfg.model.vocab_size, pad_multiple(cfg.parallel)

    def sums(mb, logits):
        token_logps = label_logprobs(logits, mb.labels, vocab, cfg.train.cross_entropy)
        return sequence_sums(token_logps, (mb.loss_weights > 0).float(), mb.cu_seqlens,
                             mb.num_sequences)[0]

    was_training = model.training
    model.eval()
    for first in range(0, len(mine), _CHUNK):
        chunk = mine[first:first + _CHUNK]
        micro_batches = [collate([sequences[i] for i in b], [masks[i] for i in b], pad_id, pad)
                         for b in chunk]
        out = forward_collect(model, micro_batches, sums, layout.device, layout.is_last_stage)
        if out is not None and layout.tp_rank == 0:  # one copy per replica
            for b, values in zip(chunk, out):
                totals[torch.as_tensor(b, device=layout.device)] = values
        log.info("reference log-probs: %d/%d micro-batches of this replica",
                 min(first + _CHUNK, len(mine)), len(mine))
    model.train(was_training)
    dist.all_reduce(totals)
    log.info("reference log-probs of %d sequences in %.1fs", len(sequences),
             time.perf_counter() - start)
    return totals.cpu().numpy()
