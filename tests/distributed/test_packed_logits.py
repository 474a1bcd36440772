"""Logits of a packed batch equal those of each sequence run alone (fp32), at TP=1 and TP=2."""


import pytest

from tests.util import script_json

SCRIPT = "tests.scripts.packed_vs_alone"


def _diff(nproc, *args):
    return script_json([SCRIPT, *args], nproc, "max_abs_diff")


@pytest.mark.parametrize("nproc, args", [
    (1, []),
    (2, ["parallel.tp=2"]),
    (2, ["parallel.tp=2", "parallel.sp=true"]),
], ids=["tp1", "tp2", "tp2-sp"])
def test_packed_equals_alone(nproc, args):
    result = _diff(nproc, *args)
    assert result["max_abs_diff"] <= 1e-5, result
    assert result["logit_scale"] > 0.1  # the comparison is on non-trivial logits


def test_dropping_boundaries_is_detected():
    """Negative control: one cu_seqlens span over the whole pack must change the logits."""
    assert _diff(1, "--one-sequence")["max_abs_diff"] > 1e-2
