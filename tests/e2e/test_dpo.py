"""Stage dpo on the tiny recipe: the first step's loss is log 2 (policy = reference), the
reference log-probs are cached and reused, the loss does not depend on the micro-batch token
budget (pairs are never split), and a run stopped by SIGTERM resumes bit for bit."""

import json
import math

from engine.checkpoint.train_state import latest
from tests.util import ROOT, stop_after_first_step, train

TINY_DPO = ROOT / "recipes" / "tiny" / "dpo.yaml"
PAIRS = ROOT / "recipes" / "tiny" / "data" / "pref_train.jsonl"
# From random init (the recipe starts from the tiny SFT run), on 96 pairs, without held-out eval.
SMALL = ["model.init_from_checkpoint=null", f"data.sources=[{{path: {PAIRS}, count: 96}}]",
         "data.global_batch_size=16", "data.max_seq_len=128", "train.max_steps=4",
         "optim.warmup_ratio=null",
         "optim.warmup_steps=1", "train.log_every=1", "eval.sources=[]"]


def _log(out):
    return (out / "train.log").read_text()


def test_first_step_is_log2_and_the_reference_cache_is_reused(tmp_path):
    first = train(tmp_path / "a", SMALL, recipe=TINY_DPO)
    assert math.isclose(first[0]["loss"], math.log(2), rel_tol=1e-6)
    assert first[0]["rewards/margin"] == 0 and first[-1]["loss"] != first[0]["loss"]
    for key in ("rewards/chosen", "rewards/rejected", "rewards/accuracy", "logps/chosen",
                "logps/rejected", "tokens_per_s", "tflops_per_gpu"):
        assert key in first[-1]
    assert "reference log-probs: 0 of 192 sequences cached" in _log(tmp_path / "a")
    cache = tmp_path / "a" / "reference_cache"
    again = train(tmp_path / "b", SMALL + [f"dpo.reference_cache={cache}"], recipe=TINY_DPO)
    assert "reference log-probs: 192 of 192 sequences cached" in _log(tmp_path / "b")
    assert [r["loss"] for r in again] == [r["loss"] for r in first]


def test_loss_does_not_depend_on_the_token_budget(tmp_path):
    def budget(tokens):
        return SMALL + [f"data.max_tokens_per_micro_batch={tokens}"]

    wide = train(tmp_path / "wide", budget(2048), recipe=TINY_DPO)
    narrow = train(tmp_path / "narrow", budget(256), recipe=TINY_DPO)
    assert narrow[0]["micro_batches"] > wide[0]["micro_batches"]
    for a, b in zip(wide, narrow):
        assert abs(a["loss"] - b["loss"]) <= 1e-6 and a["tokens"] == b["tokens"]


def test_sigterm_mid_run_then_resume_is_bit_identical(tmp_path):
    """SIGTERM during training: a checkpoint at the next step boundary, exit for requeue; the
    requeued run reuses the cached reference log-probs and continues bit for bit."""
    steps = SMALL + ["train.max_steps=6"]  # the later override wins
    straight = train(tmp_path / "straight", steps, recipe=TINY_DPO)
    out = tmp_path / "stopped"
    stop_after_first_step(out, steps, TINY_DPO)
    stopped_at = latest(out / "checkpoints")[0]
    assert 1 <= stopped_at < 6
    resumed = train(out, steps, recipe=TINY_DPO)
    log = _log(out)
    assert f"resumed from {out / 'checkpoints' / f'step_{stopped_at}'}" in log
    assert "192 of 192 sequences cached" in log
    assert [(r["loss"], r["grad_norm"]) for r in resumed] == \
        [(r["loss"], r["grad_norm"]) for r in straight]


def test_held_out_pairs_are_scored_before_and_after(tmp_path):
    held_out = ROOT / "recipes" / "tiny" / "data" / "pref_eval.jsonl"
    train(tmp_path, SMALL + [f"eval.sources=[{{path: {held_out}, count: 24}}]",
                             "eval.max_new_tokens=16"], recipe=TINY_DPO)
    evals = [json.loads(line) for line in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [0, 4]
    before, after = evals
    assert math.isclose(before["eval_loss"], math.log(2), rel_tol=1e-6)
    assert before["eval_accuracy"] == 0 and before["eval_margin"] == 0  # policy = reference
    assert after["eval_loss"] != before["eval_loss"] and after["eval_margin"] != 0
    assert before["eval_exact_match"] == 0  # random init answers nothing right
    assert any(key.startswith("eval_exact_match/") for key in after)
