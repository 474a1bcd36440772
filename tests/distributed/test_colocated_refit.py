"""Refit into colocated vLLM engines (engine.rollout.colocated): for training layouts TP1, TP2,
PP2 and TP2 × PP2 with SP, and engines of TP 1 and 2 (one engine per group of rollout.tp ranks:
PP2 with two engines of TP 1, TP2 × PP2 with two of TP 2),
every engine's log-probs of fixed sequences after a refit from dummy weights equal those of a
fresh engine of the same TP on an HF export of the same weights, exactly (fp32, CPU), and the
trainer's own to 1e-4."""

import pytest

from tests.util import script_json

pytest.importorskip("vllm")

LAYOUTS = {
    "tp1-rollout1": (1, []),
    "tp2-rollout2": (2, ["parallel.tp=2", "rollout.tp=2"]),
    "pp2-rollout1x2": (2, ["parallel.pp=2", "rollout.tp=1"]),
    "tp2-pp2-sp-rollout2x2": (4, ["parallel.tp=2", "parallel.pp=2", "parallel.sp=true",
                                  "rollout.tp=2"]),
}


@pytest.mark.parametrize("layout", LAYOUTS, ids=list(LAYOUTS))
def test_refit_engines_equal_a_fresh_engine_and_the_trainer(layout, tmp_path):
    nproc, overrides = LAYOUTS[layout]
    result = script_json(["tests.scripts.colocated_refit", str(tmp_path), *overrides], nproc,
                         '"engines"', timeout=900)
    rollout_tp = 2 if "rollout.tp=2" in overrides else 1
    fresh = script_json(["tests.scripts.colocated_refit", "--fresh", str(tmp_path),
                         str(rollout_tp)], rollout_tp, marker='"fresh"', timeout=600)["fresh"]
    assert result["engine_count"] == nproc // rollout_tp
    for engine in result["engines"]:
        assert engine == fresh  # every rank of every engine: identical
    assert result["trainer_gap"] <= 1e-4, result["trainer_gap"]
