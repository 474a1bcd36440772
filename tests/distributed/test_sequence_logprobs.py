"""DPO's per-sequence reference log-probs: sequences packed into one micro-batch give what each
gives in a pass of its own, and the values are the same at PP=2 and TP=2 × PP=2 with SP as in
one process (fp32)."""


import pytest

from tests.util import script_json

TOLERANCE = 1e-5


def _logprobs(nproc, *args):
    return script_json(["tests.scripts.sequence_logprobs", *args], nproc, '{"packed"')


@pytest.fixture(scope="module")
def single():
    return _logprobs(1)


def _close(a, b):
    return len(a) == len(b) and max(abs(x - y) for x, y in zip(a, b)) <= TOLERANCE


def test_packed_equals_alone_in_one_process(single):
    assert single["packed_micro_batches"] < len(single["packed"])  # sequences do share a pack
    assert len(set(single["packed"])) == len(single["packed"])  # all different, all real
    assert all(v < -1 for v in single["packed"])
    assert _close(single["packed"], single["alone"])


@pytest.mark.parametrize("nproc, layout", [
    (2, ["parallel.pp=2"]),
    (4, ["parallel.tp=2", "parallel.pp=2", "parallel.sp=true"]),
], ids=["pp2", "tp2-pp2-sp"])
def test_packed_equals_alone_and_single_process_at_layout(single, nproc, layout):
    result = _logprobs(nproc, *layout)
    assert _close(result["packed"], result["alone"])
    assert _close(result["packed"], single["packed"])
