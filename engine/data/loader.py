"""The global-batch loader: deterministic order, packed micro-batches per data-parallel rank.

Items (a sequence, or sequences that must share a micro-batch, such as a preference pair) are
visited in a permutation drawn from (seed, epoch); epochs follow one another without a seam, so
a step always takes exactly `global_batch_size` items, packed into micro-batches dealt to
data-parallel ranks by token load (`plan_global_batch`). Every rank plans the global batch from
lengths alone (cheap) and collates only its own share, so all pipeline stages of a replica see
the same micro-batches and the loss weights carry the global normalization. Each sequence's
micro-batch carries its item's index in the data set (`sequence_data["item_ids"]`) and the
item's share of the global batch (`sequence_data["item_weights"]`, 1 / items per step) beside
the stage's own fields. The position (`consumed`) is the whole state: `state_dict()` /
`load_state_dict()` make the order resumable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.config import ParallelConfig
from engine.data.packing import MicroBatch, collate, plan_global_batch
from engine.losses.reduction import reduction_weights


def pad_multiple(parallel: ParallelConfig) -> int:
    """Sequence parallelism splits each micro-batch's tokens evenly over the TP ranks."""
    return parallel.tp if parallel.sp else 1


@dataclass
class GlobalBatch:
    """This rank's micro-batches of one optimizer step, and counts over the whole batch."""

    micro_batches: list[MicroBatch]
    lengths: list[int]  # of every sequence in the global batch
    target_tokens: int  # tokens with a loss weight > 0, global
    token_budget: int  # micro-batches × capacity, global (for packing efficiency)

    @property
    def tokens(self) -> int:
        """Real tokens in the global batch."""
        return sum(self.lengths)


class PackedLoader:
    def __init__(self, sequences: list[np.ndarray], *, global_batch_size: int,
                 max_tokens_per_micro_batch: int, dp_size: int, dp_rank: int, pad_id: int,
                 pad_multiple: int, seed: int, shuffle: bool, reduction: str = "token_mean",
                 target_masks: list[np.ndarray] | None = None,
                 items: list[tuple[int, ...]] | None = None,
                 sequence_data: dict[str, np.ndarray] | None = None,
                 token_data: dict[str, list[np.ndarray]] | None = None):
        if not sequences:
            raise ValueError("no training sequences")
        self.sequences = sequences
        self.target_masks = target_masks or [np.ones(len(s) - 1, dtype=bool) for s in sequences]
        self.items = items or [(i,) for i in range(len(sequences))]
        self.item_lengths = [sum(len(sequences[i]) for i in item) for item in self.items]
        for k, n in enumerate(self.item_lengths):
            if n > max_tokens_per_micro_batch:
                raise ValueError(f"item {k} (sequences {list(self.items[k])}) has {n} tokens, "
                                 f"more than a micro-batch holds ({max_tokens_per_micro_batch})")
        self.sequence_data = sequence_data or {}
        self.token_data = token_data or {}
        self.global_batch_size = global_batch_size
        self.capacity = max_tokens_per_micro_batch
        self.dp_size, self.dp_rank = dp_size, dp_rank
        self.pad_id, self.pad_multiple = pad_id, pad_multiple
        self.seed, self.shuffle, self.reduction = seed, shuffle, reduction
        self.consumed = 0
        self._order_epoch, self._order = -1, None

    def _index(self, position: int) -> int:
        epoch, offset = divmod(position, len(self.items))
        if epoch != self._order_epoch:
            n = len(self.items)
            self._order = (np.random.default_rng([self.seed, epoch]).permutation(n)
                           if self.shuffle else np.arange(n))
            self._order_epoch = epoch
        return int(self._order[offset])

    @property
    def epoch(self) -> float:
        return self.consumed / len(self.items)

    def next_items(self) -> list[int]:
        """The next global batch's item ids, without packing them (RLVR's prompts)."""
        ids = [self._index(self.consumed + i) for i in range(self.global_batch_size)]
        self.consumed += self.global_batch_size
        return ids

    def _plan(self) -> tuple[list[int], list[list[list[int]]]]:
        """Next global batch: item ids, and per rank its bins (positions into the ids)."""
        ids = self.next_items()
        lengths = [self.item_lengths[i] for i in ids]
        return ids, plan_global_batch(lengths, self.capacity, self.dp_size)

    def next_batch(self) -> GlobalBatch:
        ids, per_rank = self._plan()
        seq_ids = [s for i in ids for s in self.items[i]]
        masks = [self.target_masks[s] for s in seq_ids]
        weights = reduction_weights(masks, self.reduction)
        starts = np.cumsum([0] + [len(self.items[i]) for i in ids])  # item j's positions
        micro_batches = []
        for bin_ in per_rank[self.dp_rank]:
            positions = [p for j in bin_ for p in range(starts[j], starts[j + 1])]
            seqs = [seq_ids[p] for p in positions]
            micro_batches.append(collate(
                [self.sequences[s] for s in seqs], [weights[p] for p in positions], self.pad_id,
                self.pad_multiple,
                sequence_data={"item_ids": [ids[j] for j in bin_ for _ in self.items[ids[j]]],
                               "item_weights": [1.0 / len(ids)] * len(seqs),
                               **{k: v[seqs] for k, v in self.sequence_data.items()}},
                token_data={k: [v[s] for s in seqs] for k, v in self.token_data.items()}))
        return GlobalBatch(
            micro_batches=micro_batches,
            lengths=[len(self.sequences[s]) for s in seq_ids],
            target_tokens=int(sum(m.sum() for m in masks)),
            token_budget=sum(len(bins) for bins in per_rank) * self.capacity,
        )

    def packing_stats(self, steps: int) -> dict:
        """Plan `steps` global batches from the current position (and return to it)."""
        start, micro_batches, tokens, rank_tokens = self.consumed, 0, 0, []
        for _ in range(steps):
            ids, per_rank = self._plan()
            micro_batches += sum(len(bins) for bins in per_rank)
            loads = [sum(self.item_lengths[ids[j]] for b in bins for j in b)
                     for bins in per_rank]
            tokens += sum(loads)
            rank_tokens.append(loads)
        self.consumed = start
        balance = [sum(l) / (len(l) * max(l)) for l in rank_tokens]
        return {
            "steps": steps,
            "micro_batches": micro_batches,
            "micro_batches_per_step_per_rank": micro_batches / (steps * self.dp_size),
            "packing_efficiency": tokens / (micro_batches * self.capacity),
            "dp_balance": sum(balance) / len(balance),
        }

    def state_dict(self) -> dict:
        return {"consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        self.consumed = int(state["consumed"])
