"""PPO on the RLVR loop end to end (the tiny PPO recipe, from the tiny SFT model): a value model
trained beside the policy on GAE returns, its metrics logged every step; SIGTERM then resume
reproduces the run exactly (value model, its optimizer and schedule included), and so does a
resume at DP2 with the distributed optimizer; TP2 × PP2 with SP and two rollout engines matches
one process; the value model exports to an HF
...ForSequenceClassification whose values `transformers` computes as the engine did, and a reward
model in HF format starts a run's value model."""

import json

import pytest

from engine.hf.safetensors_io import HFReader
from tests.util import ROOT, assert_same_metrics, launch, script_json, stop_after_first_step, train

pytest.importorskip("vllm")

PPO = ROOT / "recipes" / "tiny" / "ppo.yaml"
SMALL = ["train.max_steps=3", "data.global_batch_size=16", "rlvr.epochs=2",
         "rlvr.mini_batches=2", "rollout.max_new_tokens=24"]
NO_EVAL = "eval.sources=[]"
COMPARED = ("loss", "reward", "accuracy", "kl", "policy_loss", "entropy", "answer_tokens",
            "value_loss", "value_mean", "return_mean", "value_grad_norm", "kl_penalty")


def _overrides(tiny_sft_run, *extra):
    return [f"model.init_from_checkpoint={tiny_sft_run}", *SMALL, *extra]


@pytest.fixture(scope="module")
def straight(tiny_sft_run, tmp_path_factory):
    """The reference run; it alone evaluates the held-out rows (before and after)."""
    out = tmp_path_factory.mktemp("ppo") / "run"
    return out, train(out, _overrides(tiny_sft_run, "eval.every_steps=0"), recipe=PPO)


def _export_value(ckpt, out):
    proc = launch(["tools.convert_checkpoint", "engine-to-hf", "--ckpt", str(ckpt), "--out",
                   str(out), "--part", "value"], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_every_step_trains_the_value_model_and_logs_it(straight):
    _, metrics = straight
    assert [m["step"] for m in metrics] == [1, 2, 3]
    for m in metrics:
        # Tülu 3's shaping: ×10 for a right answer, −10 instead for one that never stopped
        assert -10 * m["truncated"] <= m["reward"] <= 10 * m["accuracy"]
        if m["truncated"] == 0:
            assert m["reward"] == pytest.approx(10 * m["accuracy"])
        assert m["value_loss"] > 0 and m["value_grad_norm"] > 0 and m["value_lr"] == 1e-3
        assert 0 <= m["value_clip_fraction"] <= 1 and m["advantage_raw_std"] > 0
        assert m["generated_tokens"] == pytest.approx(16 * m["answer_tokens"])
        assert m["logprob_gap_max"] < 1e-3
    # the head starts at zero: the first rollout's values are 0, so they explain nothing
    assert metrics[0]["value_explained_variance"] == pytest.approx(0.0, abs=1e-9)
    assert metrics[0]["kl_penalty"] == pytest.approx(0.0, abs=1e-9)  # the policy is the reference
    assert metrics[-1]["value_mean"] != 0.0
    assert any(abs(m["ratio"] - 1) > 1e-6 for m in metrics)  # 4 updates per rollout: off-policy


def test_the_log_names_each_model_and_counts_prompt_tokens(straight):
    log = (straight[0] / "train.log").read_text()
    for built in ("INFO model: llama,", "reference model (frozen): llama,",
                  "value model: llama (value head),"):
        assert built in log
    assert " prompt tokens" in log and "0 trainable" not in log


def test_held_out_rows_are_scored_before_and_after(straight):
    out, _ = straight
    evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [0, 3]
    for e in evals:
        assert 0 <= e["eval_reward"] <= 10 and 0 <= e["eval_accuracy"] <= 1
        assert {"eval_reward/gsm8k", "eval_reward/ifeval"} <= set(e)


def test_sigterm_then_resume_reproduces_the_run(straight, tiny_sft_run, tmp_path):
    out = tmp_path / "run"
    stop_after_first_step(out, _overrides(tiny_sft_run, NO_EVAL), PPO)
    resumed = train(out, _overrides(tiny_sft_run, NO_EVAL), recipe=PPO)
    assert_same_metrics(straight[1], resumed, COMPARED, 0.0)  # fp32, one process: identical


def test_dp2_with_the_distributed_optimizer_resumes_and_matches_one_process(straight, tiny_sft_run,
                                                                           tmp_path):
    """Two steps, then a resume to three (the recipe's step count changed, as allowed): the
    value model's sharded Adam states come back, and the run equals one process's."""
    out, dp2 = tmp_path / "run", ["parallel.distributed_optimizer=true", NO_EVAL]
    first = train(out, _overrides(tiny_sft_run, *dp2, "train.max_steps=2"), nproc=2,
                  recipe=PPO)
    resumed = train(out, _overrides(tiny_sft_run, *dp2, "checkpoint.allow_changes=[train]"),
                    nproc=2, recipe=PPO)
    assert "resumed from" in (out / "train.log").read_text()
    assert_same_metrics(straight[1], first + resumed[2:], COMPARED, 1e-4)


def test_tp2_pp2_sp_matches_one_process_and_its_value_model_exports(straight, tiny_sft_run,
                                                                  tmp_path):
    out = tmp_path / "run"
    metrics = train(out, _overrides(tiny_sft_run, "parallel.tp=2", "parallel.pp=2",
                                    "parallel.sp=true", "parallel.distributed_optimizer=true",
                                    "rollout.tp=2", NO_EVAL), nproc=4, recipe=PPO)
    assert_same_metrics(straight[1], metrics, COMPARED, 1e-4)
    hf = tmp_path / "value-hf"
    _export_value(out, hf)
    assert json.loads((hf / "config.json").read_text())["architectures"] == \
        ["LlamaForSequenceClassification"]
    result = script_json(["tests.scripts.hf_parity", str(hf), "--engine-ckpt",
                          str(out / "checkpoints" / "step_3"), "--part", "value"], 1,
                         "max_abs_diff")
    assert result["max_abs_diff"] <= 1e-5 and result["logit_scale"] > 0, result


def test_a_reward_model_in_hf_format_starts_the_value_model(straight, tiny_sft_run, tmp_path):
    reward_model = tmp_path / "reward-model"
    _export_value(straight[0], reward_model)
    out = tmp_path / "run"
    train(out, _overrides(tiny_sft_run, f"value.init_from_hf={reward_model}", "value.lr=0.0",
                          "train.max_steps=1", NO_EVAL), recipe=PPO)
    _export_value(out, tmp_path / "again")
    original, again = HFReader(reward_model), HFReader(tmp_path / "again")
    assert sorted(original.names()) == sorted(again.names())
    for name in original.names():
        assert original.get(name).equal(again.get(name)), name
