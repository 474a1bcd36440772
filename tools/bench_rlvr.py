"""GRPO steps of the Llama-3.2-1B shape on one GPU: time per phase, refit time and generation
tokens/s, beside standalone vLLM generating the same answers in the same job.

    python -m tools.bench_rlvr [--steps 3] [--prompts 32] [--samples 8] [--max-new-tokens 256]
        [--no-standalone] [--out results.json] [--work DIR] [key=value ...]  # recipe overrides

The engine trains `recipes/bench/llama-1b-shape.yaml` as stage `rlvr` (random weights; GRPO
with Tülu 3.1's k3 KL at β 0.01, the fused head, one optimizer step per rollout batch) on
counting prompts (`--prompts` per step, `--samples` answers each: 32 × 8 = 256 answers of up to
256 tokens; a random model almost never emits eos, so nearly every answer runs to the limit,
and every reward is 0: the work per step is a real step's, the learning signal is not). It runs
`python -m engine.train` in a fresh process and reads its metrics.jsonl; the vLLM engine start
and the first refit come from its train.log. Standalone vLLM (`vllm.LLM` alone in another fresh
process: the same config, memory fraction and sampling, `ignore_eos`) then generates the same
number of answers from prompts of the same length, once with one engine-wide seed and once with
a seed per prompt as the loop samples. Prints a Markdown table per step (seconds
per phase: generate, sleep, score, log-probs, train, refit; generated and trained tokens/s) and
both generation rates, and writes everything as JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.cli import parse, run_main

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "bench" / "llama-1b-shape.yaml"
PROMPT_TOKENS = 64  # rlvr.max_prompt_tokens: the rendered counting prompts are shorter
PHASES = ("generate", "sleep", "score", "logprobs", "train", "refit")
LOGGED = {"engine_start_s": r"rollout: .* started in ([0-9.]+)s",
          "first_refit_s": r"rollout: weights into the engines in ([0-9.]+)s"}


def write_prompts(path: Path, count: int) -> None:
    """`count` GSM8K-verified counting prompts (distinct start numbers)."""
    with open(path, "w") as f:
        for start in range(11, 11 + count):
            f.write(json.dumps({"messages": [{"role": "user",
                                              "content": f"Count from {start} to {start + 3}."}],
                                "ground_truth": str(start + 3), "dataset": "gsm8k"}) + "\n")


def grpo_overrides(args, work: Path) -> list[str]:
    longest = PROMPT_TOKENS + args.max_new_tokens
    return ["stage=rlvr", f"output_dir={work / 'run'}",
            f"data.sources=[{{path: {work / 'prompts.jsonl'}}}]", "data.chat_template=tulu",
            "data.shuffle=true", f"data.global_batch_size={args.prompts}",
            f"data.max_tokens_per_micro_batch={max(16384, longest)}",
            f"rollout.max_new_tokens={args.max_new_tokens}", "rollout.temperature=1.0",
            f"rlvr.samples_per_prompt={args.samples}", f"rlvr.max_prompt_tokens={PROMPT_TOKENS}",
            "rlvr.kl_coef=0.01", "rlvr.kl_estimator=k3", "rlvr.mini_batches=1",
            "optim.lr=5.0e-7", "optim.min_lr=5.0e-7", "optim.decay=constant",
            "train.cross_entropy=fused", "train.loss_reduction=token_mean",
            f"train.max_steps={args.steps}", "checkpoint.every_steps=0"]


def grpo_run(args, work: Path, overrides: list[str]) -> dict:
    """The engine's GRPO run in a fresh process: its metrics per step and what its log says."""
    cmd = [sys.executable, "-m", "engine.train", str(RECIPE), *grpo_overrides(args, work),
           *overrides]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        return _failure(proc)
    log = (work / "run" / "train.log").read_text()
    found = {key: float(m.group(1)) for key, pattern in LOGGED.items()
             if (m := re.search(pattern, log))}
    metrics = [json.loads(line) for line in
               (work / "run" / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {"wall_s": wall, **found, "steps": metrics}


def standalone(config_dir: str, prompt_lengths: list[int], samples: int, max_new_tokens: int,
               memory_fraction: float, dtype: str) -> dict:
    """vLLM alone: the engine's config (dummy weights), `samples` answers of exactly
    `max_new_tokens` per prompt, with each sampled token's log-prob; timed twice: as a user
    would sample (one engine-wide seed), and with a seed per prompt as the RLVR loop does (vLLM
    then draws each request's samples from its own generator)."""
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    start = time.perf_counter()
    llm = LLM(model=config_dir, skip_tokenizer_init=True, load_format="dummy", dtype=dtype,
              gpu_memory_utilization=memory_fraction, seed=0,
              max_model_len=max(prompt_lengths) + max_new_tokens,
              logprobs_mode="processed_logprobs")
    result = {"engine_start_s": time.perf_counter() - start}

    def params(seed):
        return SamplingParams(n=samples, temperature=1.0, max_tokens=max_new_tokens, logprobs=0,
                              ignore_eos=True, detokenize=False, seed=seed)

    prompts = [TokensPrompt(prompt_token_ids=[65 + (i + j) % 26 for j in range(n)])
               for i, n in enumerate(prompt_lengths)]
    llm.generate(prompts[:1], params(None), use_tqdm=False)  # warm-up
    for name, sampling in (("unseeded", params(None)),
                           ("seeded", [params(i) for i in range(len(prompts))])):
        start = time.perf_counter()
        outputs = llm.generate(prompts, sampling, use_tqdm=False)
        seconds = time.perf_counter() - start
        tokens = sum(len(c.token_ids) for out in outputs for c in out.outputs)
        result.update({"generated_tokens": tokens, f"{name}_s": seconds,
                       f"{name}_tokens_per_s": tokens / seconds})
    return result


def standalone_run(run: dict, args, work: Path) -> dict:
    """`standalone` in a fresh process, on the GRPO run's engine config and prompt lengths."""
    step = run["steps"][-1]
    answers = args.prompts * args.samples
    prompt_tokens = round((step["tokens"] - step["generated_tokens"]) / answers)
    spec = {"config_dir": str(work / "run" / "rollout_model"),
            "prompt_lengths": [prompt_tokens] * args.prompts, "samples": args.samples,
            "max_new_tokens": args.max_new_tokens, "memory_fraction": args.memory_fraction,
            "dtype": args.dtype}
    cmd = [sys.executable, "-m", "tools.bench_rlvr", "--standalone-spec", json.dumps(spec)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        return _failure(proc)
    return [json.loads(line) for line in proc.stdout.splitlines()
            if line.startswith('{"engine_start_s"')][-1]


def _failure(proc: subprocess.CompletedProcess) -> dict:
    return {"error": proc.stderr[-3000:].strip() or f"exit status {proc.returncode}"}


def table(run: dict, alone: dict | None) -> str:
    if "error" in run:
        return f"GRPO run failed:\n{run['error']}"
    head = ["step", *(f"{p} s" for p in PHASES), "step s", "answer tokens", "generate tok/s",
            "train tok/s", "vLLM–trainer |Δ log p| mean / max"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in run["steps"]:
        cells = [str(m["step"]), *(f"{m.get(f'time/{p}', 0.0):.2f}" for p in PHASES),
                 f"{m['step_time_s']:.2f}", f"{m['generated_tokens']:,}",
                 f"{m['generate_tokens_per_s']:,.0f}",
                 f"{m['tokens'] / m['time/train']:,.0f}",
                 f"{m.get('logprob_gap_mean', float('nan')):.3f} / "
                 f"{m.get('logprob_gap_max', float('nan')):.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(f"engine start {run.get('engine_start_s', float('nan')):.1f} s, first refit "
                 f"{run.get('first_refit_s', float('nan')):.2f} s, whole run "
                 f"{run['wall_s']:.0f} s")
    if alone is not None:
        lines.append("standalone vLLM: " + (f"failed: {alone['error'].splitlines()[-1]}"
                                            if "error" in alone else
                     f"{alone['generated_tokens']:,} tokens at "
                     f"{alone['unseeded_tokens_per_s']:,.0f} tokens/s ({alone['unseeded_s']:.2f} s;"
                     f" a seed per prompt as in the loop: {alone['seeded_tokens_per_s']:,.0f} "
                     f"tokens/s, {alone['seeded_s']:.2f} s; engine start "
                     f"{alone['engine_start_s']:.1f} s)"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_rlvr",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--memory-fraction", type=float, default=0.4,
                        help="vLLM's share of GPU memory (rollout.gpu_memory_fraction)")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--no-standalone", action="store_true")
    parser.add_argument("--out")
    parser.add_argument("--work", help="folder for prompts and the run (default: temporary)")
    parser.add_argument("--standalone-spec", help=argparse.SUPPRESS)  # the fresh process's job
    args, overrides = parse(parser, argv)
    if args.standalone_spec:
        print(json.dumps(standalone(**json.loads(args.standalone_spec))))
        return 0
    overrides = [f"rollout.gpu_memory_fraction={args.memory_fraction}",
                 f"rollout.dtype={args.dtype}", *overrides]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp).resolve()
        work.mkdir(parents=True, exist_ok=True)
        write_prompts(work / "prompts.jsonl", args.prompts * (args.steps + 1))
        run = grpo_run(args, work, overrides)
        alone = None if args.no_standalone or "error" in run else \
            standalone_run(run, args, work)
    print(table(run, alone))
    if args.out:
        Path(args.out).write_text(json.dumps({"overrides": overrides, "grpo": run,
                                              "standalone": alone}, indent=1))
    return 0 if "error" not in run else 1


if __name__ == "__main__":
    sys.exit(run_main(main))
