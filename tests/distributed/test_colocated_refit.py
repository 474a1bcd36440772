"""Refit into colocated vLLM engines (engine.rollout.colocated): for training layouts TP1, TP2,
PP2 and TP2 × PP2 with SP, and engines of TP 1 and 2 (one engine per group of rollout.tp ranks:
PP2 with two engines of TP 1, TP2 × PP2 with two of TP 2),
every engine's log-probs of fixed sequences after a refit from dummy weights equal those of a
fresh engine of the same TP on an HF export of the same weights, exactly (fp32, CPU), and the
trainer's own to 1e-4. The initial weights do not depend on the layout, so one fresh engine per
TP serves every layout: each layout's export must equal the one it was started on, bit for bit."""

import pytest
import torch
from safetensors.torch import load_file

from tests.util import script_json

pytest.importorskip("vllm")

LAYOUTS = {
    "tp1-rollout1": (1, []),
    "tp2-rollout2": (2, ["parallel.tp=2", "rollout.tp=2"]),
    "pp2-rollout1x2": (2, ["parallel.pp=2", "rollout.tp=1"]),
    "tp2-pp2-sp-rollout2x2": (4, ["parallel.tp=2", "parallel.pp=2", "parallel.sp=true",
                                  "rollout.tp=2"]),
}


@pytest.fixture(scope="module")
def fresh_engines():
    """rollout TP -> (the export a fresh engine of that TP started on, its log-probs)."""
    return {}


def _fresh(fresh_engines, work, rollout_tp):
    if rollout_tp not in fresh_engines:
        logprobs = script_json(["tests.scripts.colocated_refit", "--fresh", str(work),
                                str(rollout_tp)], rollout_tp, marker='"fresh"',
                               timeout=600)["fresh"]
        fresh_engines[rollout_tp] = (load_file(work / "hf" / "model.safetensors"), logprobs)
    return fresh_engines[rollout_tp]


@pytest.mark.parametrize("layout", LAYOUTS, ids=list(LAYOUTS))
def test_refit_engines_equal_a_fresh_engine_and_the_trainer(layout, tmp_path, fresh_engines):
    nproc, overrides = LAYOUTS[layout]
    result = script_json(["tests.scripts.colocated_refit", str(tmp_path), *overrides], nproc,
                         '"engines"', timeout=900)
    rollout_tp = 2 if "rollout.tp=2" in overrides else 1
    weights, fresh = _fresh(fresh_engines, tmp_path, rollout_tp)
    exported = load_file(tmp_path / "hf" / "model.safetensors")
    assert exported.keys() == weights.keys()
    assert all(torch.equal(exported[k], weights[k]) for k in weights)  # the fresh engine's
    assert result["engine_count"] == nproc // rollout_tp
    for engine in result["engines"]:
        assert engine == fresh  # every rank of every engine: identical
    assert result["trainer_gap"] <= 1e-4, result["trainer_gap"]
