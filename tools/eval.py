"""Evaluate a model on local benchmark files, generating with vLLM.

    python -m tools.eval --model HF_DIR | RUN_DIR | CHECKPOINT --bench NAME=FILE [--bench ...]
        [--tokenizer byte|DIR] [--template tulu|llama3|tokenizer] [--max-new-tokens 512]
        [--temperature 0] [--n 1] [--seed 0] [--math-rule flex|math_verify] [--limit N]
        [--dtype bfloat16|float32] [--tp 1] [--max-model-len N] [--out DIR]

NAME is chat, gsm8k, math or ifeval (engine/evaluation/benchmarks.py says what each file holds
and how it is scored). An engine run dir or checkpoint is exported to Hugging Face format on the
fly (into --out); its recipe gives the tokenizer and chat template unless the flags do. Greedy
by default; with --n > 1 every sample is scored and the metrics average over them. Writes
OUT/NAME.jsonl (per example: id, prompt, answer per sample, scores) and OUT/summary.json, and
prints a table of every benchmark's metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import yaml

from engine.cli import run_main
from engine.data.chat_template import ChatFormat
from engine.data.tokenizer import load_tokenizer
from engine.errors import ConfigError
from engine.evaluation.benchmarks import BENCHMARKS, Scores, load_benchmark

_CHUNK = 64  # prompts per generate call: one progress step


def model_recipe(model: Path) -> dict:
    """The recipe an engine run dir or checkpoint was trained with ({} for an HF dir)."""
    if (model / "config.yaml").is_file():
        return yaml.safe_load((model / "config.yaml").read_text()) or {}
    if (model / "metadata.json").is_file() or (model / "checkpoints").is_dir():
        from engine.checkpoint.train_state import read_meta
        from engine.checkpoint.weights import find_checkpoint

        return read_meta(find_checkpoint(model)).get("recipe") or {}
    return {}


def hf_directory(model: Path, work: Path) -> Path:
    """`model` itself when it is an HF directory, else its export (through the converter)."""
    if (model / "config.json").is_file():
        return model
    from engine.hf.exporter import export_hf

    out = work / "hf"
    export_hf(model, out, overwrite=True)
    return out


def parse_benches(specs: list[str]) -> list[tuple[str, str]]:
    benches = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or name not in BENCHMARKS:
            raise ConfigError(f"--bench {spec!r}: expected NAME=FILE with NAME one of "
                              f"{', '.join(BENCHMARKS)}")
        benches.append((name, path))
    return benches


def generate_answers(engine, chat: ChatFormat, prompts: list[list[dict]], spec,
                     label: str) -> list[list[str]]:
    """`spec.n` answer texts per prompt (stop tokens dropped), with a progress bar."""
    from tqdm import tqdm

    answers = []
    with tqdm(total=len(prompts), desc=label, unit="prompt", file=sys.stderr) as bar:
        for first in range(0, len(prompts), _CHUNK):
            chunk = [chat.prompt_ids(p) for p in prompts[first:first + _CHUNK]]
            for completions in engine.generate(chunk, spec):
                answers.append([chat.tok.decode([t for t in c.token_ids
                                                 if t not in chat.stop_ids])
                                for c in completions])
            bar.update(len(chunk))
    return answers


def score_samples(bench, answers: list[list[str]]) -> Scores:
    """Each sample scored alone; metrics averaged over samples, per-example scores listed."""
    per_sample = [bench.score([a[k] for a in answers]) for k in range(len(answers[0]))]
    summary = {metric: sum(s.summary[metric] for s in per_sample) / len(per_sample)
               for metric in per_sample[0].summary}
    per_example = [{"samples": [s.per_example[i] for s in per_sample]}
                   for i in range(len(answers))]
    return Scores(summary, per_example)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.eval",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--bench", action="append", required=True, metavar="NAME=FILE")
    parser.add_argument("--tokenizer")
    parser.add_argument("--template")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--n", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--math-rule", default="flex")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--tp", type=int, default=1)
    parser.add_argument("--max-model-len", type=int, help="default: the model's context")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    benches = parse_benches(args.bench)
    model = Path(args.model)
    if not model.exists():
        raise ConfigError(f"--model {model}: no such file or directory")
    data = model_recipe(model).get("data", {})
    tokenizer = args.tokenizer or data.get("tokenizer") or str(model)
    template = args.template or data.get("chat_template") or "tokenizer"
    chat = ChatFormat(template, load_tokenizer(tokenizer))
    loaded = [load_benchmark(name, path, args.math_rule, args.limit) for name, path in benches]
    out = Path(args.out or tempfile.mkdtemp(prefix="eval-"))
    out.mkdir(parents=True, exist_ok=True)
    from engine.rollout.vllm_engine import RolloutEngine, SamplingSpec

    spec = SamplingSpec(n=args.n, temperature=args.temperature,
                        max_new_tokens=args.max_new_tokens, seed=args.seed)
    summary = {}
    with RolloutEngine(hf_directory(model, out), stop_token_ids=sorted(chat.stop_ids),
                       max_model_len=args.max_model_len, tp=args.tp, dtype=args.dtype,
                       seed=args.seed) as engine:
        for bench in loaded:
            answers = generate_answers(engine, chat, bench.prompts, spec, bench.name)
            scores = score_samples(bench, answers)
            summary[bench.name] = {"instances": len(answers), **scores.summary}
            with open(out / f"{bench.name}.jsonl", "w") as f:
                for i, (prompt, sampled) in enumerate(zip(bench.prompts, answers)):
                    f.write(json.dumps({"id": bench.ids[i], "prompt": prompt,
                                        "answers": sampled, **scores.per_example[i]}) + "\n")
    settings = {k: getattr(args, k) for k in ("model", "temperature", "n", "max_new_tokens",
                                              "math_rule", "seed", "dtype")}
    (out / "summary.json").write_text(json.dumps({"settings": settings, "tokenizer": tokenizer,
                                                  "template": template, "results": summary},
                                                 indent=1))
    print("| benchmark | instances | metric | value |\n|---|---|---|---|")
    for name, result in summary.items():
        for metric, value in result.items():
            if metric != "instances":
                print(f"| {name} | {result['instances']} | {metric} | {100 * value:.1f}% |")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
