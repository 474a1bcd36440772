"""The forward-only log-probabilities of the labels (DPO's reference cache, RL, evaluation) are
the same at TP=2 × PP=2 (+ SP) as in a single process, and are real log-probabilities."""

import math

import pytest

from tests.util import script_json


def _logprobs(nproc, *args):
    return script_json(["tests.scripts.label_logprobs", *args], nproc, '{"logprobs"')


@pytest.fixture(scope="module")
def single():
    return _logprobs(1)


def test_single_process_values_are_log_probabilities(single):
    values = [v for mb in single["logprobs"] for v in mb]
    assert len(single["logprobs"]) == 3 and all(v <= 0 for v in values)
    assert math.isfinite(sum(values)) and sum(v < -1 for v in values) > len(values) / 2
    for mb, ends in zip(single["logprobs"], single["last_tokens"]):
        assert len(ends) >= 1 and all(mb[i] == 0 for i in ends)  # no label after a sequence


@pytest.mark.parametrize("nproc, layout", [
    (2, ["parallel.pp=2"]),
    (4, ["parallel.tp=2", "parallel.pp=2", "parallel.sp=true"]),
], ids=["pp2", "tp2-pp2-sp"])
def test_layouts_match_single_process(single, nproc, layout):
    parallel = _logprobs(nproc, *layout)["logprobs"]
    for a, b in zip(single["logprobs"], parallel):
        assert len(a) == len(b)
        assert max(abs(x - y) for x, y in zip(a, b)) <= 1e-5
