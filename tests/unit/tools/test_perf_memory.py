"""`python -m tools.perf memory` on RLVR recipes: the reference (GRPO and PPO with a KL term) and
PPO's value model count as other models, and the generation phase is reported beside the
engines' share; other stages hold no other model."""

import pytest

from engine.metrics.memory import GIB, RESERVE_BYTES
from engine.recipe import load_recipe
from tests.util import ROOT
from tools.perf import memory


@pytest.mark.parametrize("name, reference, value", [
    ("rlvr", True, False), ("ppo", True, True), ("sft", False, False)])
def test_memory_counts_the_models_an_rlvr_run_holds(name, reference, value):
    cfg = load_recipe(ROOT / f"recipes/tiny/{name}.yaml", ["model.init_from_checkpoint=null"])
    out = memory(cfg, world_size=1, gpu_gib=80)
    assert (out["other_models_gib"] > 0) == (reference or value)
    if name == "sft":
        assert "generation_peak_gib" not in out
        return
    assert (out["reference_model"], out["value_model"]) == (reference, value)
    assert out["engines_gib"] == pytest.approx(cfg.rollout.gpu_memory_fraction * 80)
    assert out["generation_peak_gib"] == pytest.approx(
        out["model_state_gib"] + out["other_models_gib"] + RESERVE_BYTES / GIB + out["engines_gib"])
    assert out["generation_fits"] is True


def test_without_a_kl_term_there_is_no_reference():
    cfg = load_recipe(ROOT / "recipes/tiny/rlvr.yaml",
                      ["model.init_from_checkpoint=null", "rlvr.kl_coef=0"])
    out = memory(cfg, world_size=1, gpu_gib=80)
    assert out["reference_model"] is False and out["other_models_gib"] == 0
    assert out["generation_peak_gib"] == pytest.approx(
        out["model_state_gib"] + RESERVE_BYTES / GIB + out["engines_gib"])
