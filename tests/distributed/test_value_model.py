"""A value model (HF `LlamaForSequenceClassification`, one label) trained with the `value` loss
on fixed rollouts: TP=2 × PP=2 with SP gives one process's losses, values and gradient norms,
and the loss falls as the values move toward the returns."""

from tests.util import script_json


def _train(hf_dir, nproc, *overrides):
    return script_json(["tests.scripts.value_training", str(hf_dir), *overrides], nproc, "{")


def test_value_training_at_tp2_pp2_sp_matches_one_process(hf_models):
    one = _train(hf_models["llama-value"], 1)
    assert one["loss"][0] > one["loss"][1] > one["loss"][2]
    four = _train(hf_models["llama-value"], 4, "parallel.tp=2", "parallel.pp=2",
                  "parallel.sp=true")
    for key in ("loss", "value_mean", "grad_norm"):
        for a, b in zip(one[key], four[key]):
            assert abs(a - b) <= 1e-5 * max(1.0, abs(a)), (key, one, four)
