"""tools/bench_rlvr.py without a GPU: its GRPO recipe (the 1B-shape bench recipe as stage rlvr
with the tool's overrides) passes the engine's checks, its prompts are all kept, fit the prompt
budget and go to the GSM8K verifier; the table shows each step's phases and the standalone rate.
The whole tool runs end to end on a tiny model on a CPU in about two minutes (its docstring's
command with small --prompts/--samples/--max-new-tokens and model overrides)."""

import argparse

from engine.recipe import load_recipe
from engine.stages.rlvr import prepare_prompts
import tools.bench_rlvr as bench


def test_the_grpo_recipe_is_valid_and_its_prompts_are_all_kept(tmp_path):
    args = argparse.Namespace(prompts=32, samples=8, max_new_tokens=256, steps=3)
    bench.write_prompts(tmp_path / "prompts.jsonl", args.prompts * (args.steps + 1))
    cfg = load_recipe(bench.RECIPE, bench.grpo_overrides(args, tmp_path))
    cfg.validate(1)
    assert (cfg.stage, cfg.rlvr.samples_per_prompt, cfg.rollout.max_new_tokens) == ("rlvr", 8, 256)
    assert (cfg.rlvr.kl_estimator, cfg.rlvr.kl_coef, cfg.train.cross_entropy) == ("k3", 0.01,
                                                                                   "fused")
    prompts = prepare_prompts(cfg).examples.records
    assert len(prompts) == 128
    assert {p.dataset for p in prompts} == {"gsm8k"}
    assert max(len(p.prompt_ids) for p in prompts) <= cfg.rlvr.max_prompt_tokens


def test_the_table_has_a_row_per_step_and_the_standalone_rate():
    step = {"step": 2, "step_time_s": 9.5, "generated_tokens": 65536, "tokens": 75000,
            "generate_tokens_per_s": 20000.0, "logprob_gap_mean": 0.05, "logprob_gap_max": 0.4,
            **{f"time/{p}": 1.0 for p in bench.PHASES}}
    text = bench.table({"wall_s": 120.0, "engine_start_s": 45.0, "first_refit_s": 0.02,
                        "steps": [step]},
                       {"engine_start_s": 40.0, "generated_tokens": 65536, "unseeded_s": 3.0,
                        "unseeded_tokens_per_s": 21845.3, "seeded_s": 4.0,
                        "seeded_tokens_per_s": 16384.0})
    assert "| 2 | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 9.50 | 65,536 | 20,000 | 75,000 " \
           "| 0.050 / 0.400 |" in text
    assert "engine start 45.0 s, first refit 0.02 s" in text
    assert ("65,536 tokens at 21,845 tokens/s (3.00 s; a seed per prompt as in the loop: "
            "16,384 tokens/s, 4.00 s; engine start 40.0 s)") in text
    assert "GRPO run failed:\nboom" == bench.table({"error": "boom"}, None)
