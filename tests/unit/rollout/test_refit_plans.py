"""The refit's plans (engine.rollout.refit.plans_from): who holds which slices of a tensor, whether
the gathered slices are the tensor as they stand, and the layouts it refuses."""

import pytest

from engine.rollout.refit import plans_from

def _rank(rank, stage, tp_rank, **held):
    """What a rank tells the others: {tensor: (global shape, [(offset, shape) of its slices])}."""
    return rank, stage, tp_rank, held


def test_column_parallel_slices_in_tp_order_are_the_tensor():
    plans = plans_from([_rank(0, 0, 0, qkv=((12, 4), [((0, 0), (6, 4))])),
                        _rank(1, 0, 1, qkv=((12, 4), [((6, 0), (6, 4))]))], tp=2)
    plan = plans["qkv"]
    assert plan.shape == (12, 4) and plan.buffer_numel == 24
    assert [h.rank for h in plan.holders] == [0, 1] and plan.rows_in_order


def test_holders_are_put_in_tp_order_whatever_order_they_arrive_in():
    plans = plans_from([_rank(5, 1, 1, t=((4,), [((2,), (2,))])),
                        _rank(4, 1, 0, t=((4,), [((0,), (2,))]))], tp=2)
    assert [h.tp_rank for h in plans["t"].holders] == [0, 1] and plans["t"].rows_in_order


def test_row_parallel_and_gate_up_slices_need_placing():
    proj = plans_from([_rank(0, 0, 0, t=((4, 6), [((0, 0), (4, 3))])),
                       _rank(1, 0, 1, t=((4, 6), [((0, 3), (4, 3))]))], tp=2)["t"]
    assert not proj.rows_in_order
    # fc1 at TP=2: each rank holds its gate rows and its up rows, two slices
    fc1 = plans_from([_rank(0, 0, 0, t=((8, 2), [((0, 0), (2, 2)), ((4, 0), (2, 2))])),
                      _rank(1, 0, 1, t=((8, 2), [((2, 0), (2, 2)), ((6, 0), (2, 2))]))],
                     tp=2)["t"]
    assert not fc1.rows_in_order and fc1.buffer_numel == 8


def test_one_holder_of_a_whole_tensor():
    plan = plans_from([_rank(3, 1, 0, norm=((16,), [((0,), (16,))])),
                       _rank(2, 0, 0)], tp=2)["norm"]
    assert [h.rank for h in plan.holders] == [3] and plan.rows_in_order


@pytest.mark.parametrize("everyone, message", [
    ([_rank(0, 0, 0, t=((4,), [((0,), (2,))])), _rank(1, 1, 1, t=((4,), [((2,), (2,))]))],
     "stages [0, 1]"),
    ([_rank(0, 0, 0, t=((6,), [((0,), (2,))])), _rank(1, 0, 1, t=((6,), [((2,), (2,))]))],
     "hold 4 values of a (6,) tensor"),
    ([_rank(0, 0, 0, t=((4,), [((0,), (2,))])), _rank(2, 0, 2, t=((4,), [((2,), (2,))]))],
     "TP ranks [0, 2]"),
], ids=["two-stages", "not-covered", "tp-gap"])
def test_layouts_the_refit_cannot_gather_are_refused_by_name(everyone, message):
    with pytest.raises(RuntimeError, match="t: ") as e:
        plans_from(everyone, tp=3 if "TP ranks" in message else 2)
    assert message in str(e.value)
