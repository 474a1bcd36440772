"""Packing: best-fit decreasing, data-parallel split, THD collation, the resumable loader."""

import numpy as np
import pytest
import torch

from engine.data.loader import PackedLoader
from engine.data.packing import IGNORE_INDEX, best_fit_decreasing, collate, plan_global_batch


def test_best_fit_decreasing_never_overflows_or_splits():
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(1, 300, size=200)]
    bins = best_fit_decreasing(lengths, 512)
    assert sorted(i for b in bins for i in b) == list(range(200))
    assert all(sum(lengths[i] for i in b) <= 512 for b in bins)
    lower_bound = -(-sum(lengths) // 512)
    assert len(bins) <= lower_bound + 1


def test_best_fit_decreasing_fills_tightest_bin():
    # sorted: 6 (i0), 5 (i1), 5 (i3), 4 (i2). 6 opens A (4 left); 5 opens B (5 left); the second
    # 5 fits only B; 4 fits A exactly.
    assert best_fit_decreasing([6, 5, 4, 5], 10) == [[0, 2], [1, 3]]


def test_too_long_sequence_is_an_error():
    with pytest.raises(ValueError, match="sequence 1 has 20 tokens"):
        best_fit_decreasing([3, 20], 10)


def _rank_loads(per_rank, lengths):
    return [sum(lengths[i] for b in bins for i in b) for bins in per_rank]


def test_plan_deals_packed_micro_batches_by_load():
    lengths = [100, 90, 10, 10, 5, 5]
    per_rank = plan_global_batch(lengths, 100, 2)  # bins: [100], [90, 10], [10, 5, 5]
    assert sorted(i for bins in per_rank for b in bins for i in b) == list(range(6))
    assert sorted(_rank_loads(per_rank, lengths)) == [100, 120]
    assert all(sum(lengths[i] for i in b) <= 100 for bins in per_rank for b in bins)


def test_plan_with_few_sequences_per_rank_balances_sequences():
    lengths = [50, 40, 30, 20, 10, 10, 5, 5]  # one bin of 170 would leave three ranks idle
    per_rank = plan_global_batch(lengths, 200, 4)
    assert all(per_rank)
    assert sorted(i for r in per_rank for b in r for i in b) == list(range(8))
    assert max(_rank_loads(per_rank, lengths)) == 50
    with pytest.raises(ValueError, match="cannot feed 4"):
        plan_global_batch([1, 2, 3], 10, 4)


def test_collate_builds_thd_batch():
    a, b = np.array([10, 11, 12]), np.array([20, 21])
    mb = collate([a, b], [np.array([0.5, 0.5]), np.array([1.0])], pad_id=99, pad_multiple=4)
    assert mb.tokens.tolist() == [10, 11, 12, 20, 21, 99, 99, 99]
    assert mb.labels.tolist() == [11, 12, IGNORE_INDEX, 21, IGNORE_INDEX] + [IGNORE_INDEX] * 3
    assert mb.loss_weights.tolist() == [0.5, 0.5, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert mb.position_ids.tolist() == [0, 1, 2, 0, 1, 0, 1, 2]
    assert mb.cu_seqlens.tolist() == [0, 3, 5, 8] and mb.cu_seqlens.dtype == torch.int32
    assert mb.max_seqlen == 3 and mb.num_tokens == 5 and mb.num_sequences == 2


def _loader(seqs, dp_rank=0, dp_size=1, **kw):
    return PackedLoader(seqs, global_batch_size=4, max_tokens_per_micro_batch=16, dp_size=dp_size,
                        dp_rank=dp_rank, pad_id=0, pad_multiple=1, seed=7, shuffle=True, **kw)


def _seqs(n=10):
    return [np.arange(1, 3 + i % 7, dtype=np.int32) + 100 * i for i in range(n)]


def test_loader_is_deterministic_and_resumable():
    seqs = _seqs()
    straight = _loader(seqs)
    first = [straight.next_batch() for _ in range(5)]
    resumed = _loader(seqs)
    [resumed.next_batch() for _ in range(2)]
    state = resumed.state_dict()
    again = _loader(seqs)
    again.load_state_dict(state)
    for expected in first[2:]:
        got = again.next_batch()
        assert [m.tokens.tolist() for m in got.micro_batches] == \
            [m.tokens.tolist() for m in expected.micro_batches]


def test_loader_crosses_epochs_seamlessly_and_sees_every_sequence():
    seqs = _seqs(10)
    loader = _loader(seqs)
    seen = []
    for _ in range(5):  # 20 sequences = two epochs
        for mb in loader.next_batch().micro_batches:
            bounds = mb.cu_seqlens.tolist()
            seen += [mb.tokens[s].item() // 100 for s in bounds[:-1][:mb.num_sequences]]
    assert sorted(seen) == sorted(list(range(10)) * 2)


def test_data_parallel_shares_cover_the_global_batch_once():
    seqs = _seqs(12)
    ranks = [_loader(seqs, dp_rank=r, dp_size=2).next_batch() for r in range(2)]
    mine = [sum(mb.num_sequences for mb in b.micro_batches) for b in ranks]
    assert sum(mine) == 4 and min(mine) >= 1
    weights = sum(float(mb.loss_weights.sum()) for b in ranks for mb in b.micro_batches)
    assert weights == pytest.approx(1.0)  # token_mean: weights of the global batch sum to 1
    assert ranks[0].tokens == ranks[1].tokens  # global counts agree on every rank


def test_items_are_never_split_and_carry_their_ids():
    # Ten pairs (20 sequences): every pair lands whole in one micro-batch of one rank.
    seqs = _seqs(20)
    pairs = [(2 * k, 2 * k + 1) for k in range(10)]
    seen = []
    for rank in range(2):
        loader = _loader(seqs, dp_rank=rank, dp_size=2, items=pairs)
        for mb in loader.next_batch().micro_batches:
            ids = mb.sequence_data["item_ids"].tolist()
            firsts = [mb.tokens[s].item() // 100 for s in mb.cu_seqlens.tolist()[:mb.num_sequences]]
            assert len(ids) == mb.num_sequences == len(firsts)
            for item, first in zip(ids, firsts):
                assert first in pairs[item]  # the sequence belongs to the item it is tagged with
            assert all(ids.count(i) == 2 for i in ids)  # both halves of each pair
            assert mb.sequence_data["item_weights"].tolist() == [0.25] * len(ids)
            seen += ids
    assert len(set(seen)) == 4  # the global batch: 4 pairs, split over the two ranks


def test_item_longer_than_a_micro_batch_is_an_error():
    seqs = [np.arange(10), np.arange(9), np.arange(3)]
    with pytest.raises(ValueError, match=r"item 0 \(sequences \[0, 1\]\) has 19 tokens"):
        _loader(seqs, items=[(0, 1), (2,)])


def test_collate_lays_out_sequence_and_token_fields():
    a, b = np.array([10, 11, 12]), np.array([20, 21])
    mb = collate([a, b], [np.ones(2), np.ones(1)], pad_id=99, pad_multiple=4,
                 sequence_data={"reward": [1.5, -2.0]},
                 token_data={"ref_logprobs": [np.array([-0.5, -0.25]), np.array([-1.0])]})
    assert mb.sequence_data["reward"].tolist() == [1.5, -2.0]
    # per target, like the labels: 0 at each sequence's last token and on the padding
    assert mb.token_data["ref_logprobs"].tolist() == [-0.5, -0.25, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0]
    moved = mb.to("cpu")
    assert moved.token_data["ref_logprobs"].shape == moved.tokens.shape


def test_loader_hands_each_sequence_its_fields():
    seqs = _seqs(6)
    old = [np.full(len(s) - 1, float(i)) for i, s in enumerate(seqs)]
    loader = _loader(seqs, sequence_data={"score": np.arange(6) * 10.0}, token_data={"old": old})
    for mb in loader.next_batch().micro_batches:
        bounds = mb.cu_seqlens.tolist()
        for j in range(mb.num_sequences):
            seq = mb.tokens[bounds[j]].item() // 100
            assert mb.sequence_data["score"][j].item() == 10.0 * seq
            targets = mb.token_data["old"][bounds[j]:bounds[j + 1] - 1]
            assert torch.all(targets == float(seq))
