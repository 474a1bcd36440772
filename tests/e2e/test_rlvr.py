"""The RLVR stage end to end on the tiny recipe, from the tiny SFT model: vLLM generates, the
verifiers score, GRPO trains, the weights go back into vLLM; every step logs its rollout
metrics and phase times, and held-out rows are scored per dataset. A run interrupted by SIGTERM
resumes to the uninterrupted run's numbers; old log-probs from a separate forward pass give
the run whose training forward gives them; a run at TP2 × PP2 with SP, the fused output layer
and loss, and two rollout engines of TP 2 matches one process; an engine that dies mid-run is
rebuilt and no step is lost or repeated."""

import json

import pytest

from tests.util import ROOT, assert_same_metrics, launch, stop_after_first_step, train

pytest.importorskip("vllm")

RLVR = ROOT / "recipes" / "tiny" / "rlvr.yaml"
SMALL = ["train.max_steps=3", "data.global_batch_size=8", "rlvr.samples_per_prompt=4",
         "rollout.max_new_tokens=24"]
NO_EVAL = "eval.sources=[]"
COMPARED = ("loss", "reward", "accuracy", "kl", "policy_loss", "entropy", "answer_tokens")


def _overrides(tiny_sft_run, *extra):
    return [f"model.init_from_checkpoint={tiny_sft_run}", *SMALL, *extra]


@pytest.fixture(scope="module")
def straight(tiny_sft_run, tmp_path_factory):
    """The reference run; it alone evaluates the held-out rows (before and after), so the other
    runs, which do not, also show that evaluating leaves training's numbers alone."""
    out = tmp_path_factory.mktemp("rlvr") / "run"
    return out, train(out, _overrides(tiny_sft_run, "eval.every_steps=0"), recipe=RLVR)


def test_every_step_logs_rollout_metrics_and_phases(straight):
    _, metrics = straight
    assert [m["step"] for m in metrics] == [1, 2, 3]
    for m in metrics:
        assert 0 <= m["accuracy"] <= 1 and m["reward"] == pytest.approx(10 * m["accuracy"])
        per_dataset = [m[f"accuracy/{d}"] for d in ("gsm8k", "ifeval")]  # the recipe's mix
        assert min(per_dataset) <= m["accuracy"] <= max(per_dataset)
        assert 0 <= m["truncated"] <= 1
        assert 0 < m["answer_tokens"] <= m["answer_tokens_max"] <= 24
        assert m["logprob_gap_max"] < 1e-3  # vLLM and the trainer on the same fp32 weights
        assert m["generate_tokens_per_s"] > 0 and m["rollout_rebuilds"] == 0
        for phase in ("generate", "score", "logprobs", "train", "refit"):
            assert m[f"time/{phase}"] > 0
        assert 0 <= m["time/sleep"] < m["time/generate"]  # CPU: no sleep mode, nothing to do
        # one update per rollout batch: on-policy, the old log-probs are the training forward's
        assert m["ratio"] == pytest.approx(1.0, abs=1e-12) and m["clip_fraction"] == 0
    assert metrics[0]["kl"] == pytest.approx(0.0, abs=1e-9)  # the policy is the reference
    assert metrics[-1]["kl"] > 0


def test_held_out_rows_are_scored_before_and_after_per_dataset(straight):
    out, _ = straight
    before, after = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert (before["step"], after["step"]) == (0, 3)
    n = {"gsm8k": 36, "ifeval": 18}  # the held-out file's rows
    for result in (before, after):
        for name, scale in (("eval_accuracy", 1), ("eval_reward", 10)):
            overall = sum(n[d] * result[f"{name}/{d}"] for d in n) / sum(n.values())
            assert 0 <= result[name] <= scale and result[name] == pytest.approx(overall)


def test_sigterm_then_resume_reproduces_the_run(straight, tiny_sft_run, tmp_path):
    out = tmp_path / "run"
    stop_after_first_step(out, _overrides(tiny_sft_run, NO_EVAL), RLVR)
    resumed = train(out, _overrides(tiny_sft_run, NO_EVAL), recipe=RLVR)
    assert_same_metrics(straight[1], resumed, COMPARED, 0.0)  # fp32, one process: identical


def test_old_logprobs_from_a_separate_forward_pass_give_the_same_run(straight, tiny_sft_run,
                                                                      tmp_path):
    """The default takes them from the training forward (one pass fewer); `recompute` runs the
    forward pass before training that several updates per rollout batch need."""
    metrics = train(tmp_path / "run", _overrides(tiny_sft_run, "rlvr.old_logprobs=recompute",
                                                 NO_EVAL), recipe=RLVR)
    assert_same_metrics(straight[1], metrics, COMPARED + ("logprob_gap_mean", "ratio"), 1e-6)


def test_tp2_pp2_sp_with_two_rollout_engines_matches_one_process(straight, tiny_sft_run,
                                                                tmp_path):
    """Also with the output layer fused with the loss (the reference run computes logits): its
    log-probs, entropy and GRPO loss, and those of the reference model, are the logits'."""
    metrics = train(tmp_path / "run", _overrides(tiny_sft_run, "parallel.tp=2", "parallel.pp=2",
                                                 "parallel.sp=true", "rollout.tp=2",
                                                 "train.cross_entropy=fused", NO_EVAL),
                    nproc=4, recipe=RLVR)
    assert_same_metrics(straight[1], metrics, COMPARED, 1e-4)


def test_a_dead_engine_is_rebuilt_and_no_step_is_lost(straight, tiny_sft_run, tmp_path):
    out = tmp_path / "run"
    proc = launch(["tests.scripts.rlvr_engine_dies", "2", str(RLVR), f"output_dir={out}",
                   *_overrides(tiny_sft_run, NO_EVAL)])
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "rebuilding it from the current weights" in (out / "train.log").read_text()
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["rollout_rebuilds"] for m in metrics] == [0, 1, 1]
    assert_same_metrics(straight[1], metrics, COMPARED, 0.0)
