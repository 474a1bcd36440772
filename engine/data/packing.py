"""Packing into THD micro-batches.

A global batch of *items* — a sequence, or a group of sequences that must share a micro-batch,
such as a chosen/rejected pair — is packed best-fit-decreasing into micro-batches of at most
`capacity` tokens, which are dealt to data-parallel ranks by token load (`plan_global_batch`,
on item lengths). No item and no sequence is ever split. `collate` turns one bin into the packed
batch format: tokens concatenated, `cu_seqlens`, positions restarting at 0 per sequence, labels
shifted inside each sequence (-100 at its last token), a per-token loss weight, and the stage's
own fields: per sequence (`sequence_data`: item ids, rewards, ...) and per target token
(`token_data`: reference or old log-probs, advantages, ...). A micro-batch is padded to a
multiple of `pad_multiple` (sequence parallelism splits tokens over TP ranks) with one extra
padding "sequence" whose weights and token fields are zero, so padding never attends to or from
real tokens.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

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
    """Micro-batches (lists of indices into `lengths`: items) for each data-parallel rank.

    The whole batch is packed best-fit-decreasing and the micro-batches are dealt to ranks by
    token load. When there are fewer micro-batches than ranks (few items per rank), the items
    themselves are dealt by token load and each rank packs its own share, so every rank gets
    work and the loads stay balanced.
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
    sequence_data: dict[str, torch.Tensor] = field(default_factory=dict)  # [num_sequences] each
    token_data: dict[str, torch.Tensor] = field(default_factory=dict)  # [t] each, per target

    def to(self, device) -> "MicroBatch":
        """The micro-batch on `device`; to a GPU through pinned memory, so that the copies queue
        behind the device's work instead of waiting for it (as copies from pageable memory do)."""
        pin = torch.device(device).type == "cuda"

        def move(v):
            return (v.pin_memory() if pin else v).to(device, non_blocking=True)

        moved = {k: move(v) for k, v in vars(self).items() if isinstance(v, torch.Tensor)}
        return MicroBatch(**{**vars(self), **moved,
                             "sequence_data": {k: move(v) for k, v in self.sequence_data.items()},
                             "token_data": {k: move(v) for k, v in self.token_data.items()}})


def _per_target(values: list[np.ndarray], pad: int) -> torch.Tensor:
    """Per-target arrays (len - 1 per sequence) laid out like the labels: 0 at each sequence's
    last token and on the padding."""
    parts = [np.concatenate([v, [0.0]]).astype(np.float32) for v in values]
    return torch.from_numpy(np.concatenate(parts + [np.zeros(pad, dtype=np.float32)]))


def collate(sequences: list[np.ndarray], weights: list[np.ndarray], pad_id: int,
            pad_multiple: int, sequence_data: dict[str, list] | None = None,
            token_data: dict[str, list[np.ndarray]] | None = None) -> MicroBatch:
    """Pack sequences (token ids) with their per-target loss weights (len - 1 each), and the
    stage's fields: one value per sequence, or one array of len - 1 per sequence."""
    tokens, labels, positions, bounds = [], [], [], [0]
    for seq in sequences:
        n = len(seq)
        tokens.append(seq)
        labels.append(np.concatenate([seq[1:], [IGNORE_INDEX]]))
        positions.append(np.arange(n))
        bounds.append(bounds[-1] + n)
    real = bounds[-1]
    pad = -real % pad_multiple
    if pad:
        tokens.append(np.full(pad, pad_id))
        labels.append(np.full(pad, IGNORE_INDEX))
        positions.append(np.arange(pad))
        bounds.append(real + pad)
    lengths = np.diff(bounds)
    return MicroBatch(
        tokens=torch.from_numpy(np.concatenate(tokens).astype(np.int64)),
        labels=torch.from_numpy(np.concatenate(labels).astype(np.int64)),
        loss_weights=_per_target(weights, pad),
        position_ids=torch.from_numpy(np.concatenate(positions).astype(np.int64)),
        cu_seqlens=torch.tensor(bounds, dtype=torch.int32),
        max_seqlen=int(lengths.max()),
        num_sequences=len(sequences),
        num_tokens=real,
        sequence_data={k: torch.as_tensor(np.asarray(v)) for k, v in
                       (sequence_data or {}).items()},
        token_data={k: _per_target(v, pad) for k, v in (token_data or {}).items()},
    )
