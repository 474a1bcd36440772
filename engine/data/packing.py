"""Packing sequences into THD micro-batches.

A global batch of sequences is packed best-fit-decreasing into micro-batches of at most
`capacity` tokens, which are dealt to data-parallel ranks by token load (`plan_global_batch`).
No sequence is ever split. `collate` turns one bin into the packed batch format of ARCHITECTURE §4: tokens
concatenated, `cu_seqlens`, positions restarting at 0 per sequence, labels shifted inside each
sequence (-100 at its last token), and a per-token loss weight. A micro-batch is padded to a
multiple of `pad_multiple` (sequence parallelism splits tokens over TP ranks) with one extra
padding "sequence" whose weights are zero, so padding never attends to or from real tokens.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np
import torch

IGNORE_INDEX = -100


def best_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices of `lengths` grouped into bins of total <= capacity (longest first, tightest fit)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (remaining capacity, bin index), sorted
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"sequence {i} has {n} tokens, more than a micro-batch holds "
                             f"({capacity})")
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            room, b = free.pop(k)
            bins[b].append(i)
            bisect.insort(free, (room - n, b))
        else:
            bins.append([i])
            bisect.insort(free, (capacity - n, len(bins) - 1))
    return bins


def _least_loaded_first(sizes: list[int], ranks: int) -> list[list[int]]:
    """Item indices dealt largest first to the rank with the least load (then fewest items)."""
    shares: list[list[int]] = [[] for _ in range(ranks)]
    load = [0] * ranks
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        r = min(range(ranks), key=lambda j: (load[j], len(shares[j]), j))
        shares[r].append(i)
        load[r] += sizes[i]
    return shares


def plan_global_batch(lengths: list[int], capacity: int, ranks: int) -> list[list[list[int]]]:
    """Micro-batches (lists of sequence indices) for each data-parallel rank.

    The whole batch is packed best-fit-decreasing and the micro-batches are dealt to ranks by
    token load. When there are fewer micro-batches than ranks (few sequences per rank), the
    sequences themselves are dealt by token load and each rank packs its own share, so every
    rank gets work and the loads stay balanced.
    """
    if len(lengths) < ranks:
        raise ValueError(f"{len(lengths)} sequences cannot feed {ranks} data-parallel ranks")
    bins = best_fit_decreasing(lengths, capacity)
    if len(bins) >= ranks:
        shares = _least_loaded_first([sum(lengths[i] for i in b) for b in bins], ranks)
        return [[bins[b] for b in share] for share in shares]
    shares = _least_loaded_first(lengths, ranks)
    return [[[share[i] for i in b] for b in best_fit_decreasing([lengths[i] for i in share],
                                                               capacity)]
            for share in shares]


@dataclass
class MicroBatch:
    """One packed micro-batch (THD), tensors on the CPU until `to(device)`."""

    tokens: torch.Tensor  # [t] int64
    labels: torch.Tensor  # [t] int64, IGNORE_INDEX where no target
    loss_weights: torch.Tensor  # [t] float32
    position_ids: torch.Tensor  # [t] int64
    cu_seqlens: torch.Tensor  # [n + 1] int32 (padding counts as one more sequence)
    max_seqlen: int
    num_sequences: int  # real sequences
    num_tokens: int  # real tokens

    def to(self, device) -> "MicroBatch":
        moved = {k: v.to(device, non_blocking=True) for k, v in vars(self).items()
                 if isinstance(v, torch.Tensor)}
        return MicroBatch(**{**vars(self), **moved})


def collate(sequences: list[np.ndarray], weights: list[np.ndarray], pad_id: int,
            pad_multiple: int) -> MicroBatch:
    """Pack sequences (token ids) and their per-target loss weights (len - 1 each)."""
    tokens, labels, loss_w, positions, bounds = [], [], [], [], [0]
    for seq, w in zip(sequences, weights):
        n = len(seq)
        tokens.append(seq)
        labels.append(np.concatenate([seq[1:], [IGNORE_INDEX]]))
        loss_w.append(np.concatenate([w, [0.0]]).astype(np.float32))
        positions.append(np.arange(n))
        bounds.append(bounds[-1] + n)
    real = bounds[-1]
    pad = -real % pad_multiple
    if pad:
        tokens.append(np.full(pad, pad_id))
        labels.append(np.full(pad, IGNORE_INDEX))
        loss_w.append(np.zeros(pad, dtype=np.float32))
        positions.append(np.arange(pad))
        bounds.append(real + pad)
    lengths = np.diff(bounds)
    return MicroBatch(
        tokens=torch.from_numpy(np.concatenate(tokens).astype(np.int64)),
        labels=torch.from_numpy(np.concatenate(labels).astype(np.int64)),
        loss_weights=torch.from_numpy(np.concatenate(loss_w)),
        position_ids=torch.from_numpy(np.concatenate(positions).astype(np.int64)),
        cu_seqlens=torch.tensor(bounds, dtype=torch.int32),
        max_seqlen=int(lengths.max()),
        num_sequences=len(sequences),
        num_tokens=real,
    )
