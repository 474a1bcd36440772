"""Single-GPU training throughput on the Llama-3.2-1B shape: the engine's step, unpacked and
packed, at two micro-batch budgets, and the torch-native peer in the same job, in one table.

    python -m tools.bench_throughput [--variants 4x4096,1x16384,...] [--steps 10] [--warmup 3]
        [--vary KEY V1,V2 ...] [--peer ../shared/bench/peer_baseline.py | --no-peer]
        [--out results.json] [--work DIR] [key=value ...]   # overrides: every engine variant

Every variant trains `recipes/bench/llama-1b-shape.yaml` (16,384 tokens per optimizer step)
in a fresh process (`python -m tools.perf step`) on documents written to --work:
  4x4096          4 documents of 4,096 tokens, one per micro-batch
  4x4096-packed   16 documents (2,048 + 1,024 + 512 + 512 per 4,096-token micro-batch)
  1x16384         the 4 documents in one micro-batch of 16,384 tokens
  1x16384-packed  the 16 documents in one micro-batch
each once per combination of the --vary settings (recipe keys: `--vary train.cross_entropy
te,fused --vary train.transformer_impl auto,local` runs four per variant).
The peer (Hugging Face transformers, with Liger kernels when importable) trains the same shape
on 4 × 4,096 tokens per step; its script also times the shape's GEMMs and flash attention
alone (the floor no implementation beats). Prints a Markdown table — tokens/s, TFLOP/s, MFU,
peak memory, seconds per step and per phase — and writes every measurement as JSON to --out.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from engine.cli import parse, run_main
from engine.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "bench" / "llama-1b-shape.yaml"
PACKED_GROUP = (2048, 1024, 512, 512)
# name: (documents file, tokens per micro-batch, documents per optimizer step)
VARIANTS = {
    "4x4096": ("docs_4096.jsonl", 4096, 4),
    "4x4096-packed": ("docs_packed.jsonl", 4096, 16),
    "1x16384": ("docs_4096.jsonl", 16384, 4),
    "1x16384-packed": ("docs_packed.jsonl", 16384, 16),
}


def write_documents(folder: Path, steps: int) -> None:
    """Random-letter texts for the byte tokenizer (n - 2 characters = n tokens with bos, eos)."""
    rng = random.Random(0)
    alphabet = "abcdefghijklmnopqrstuvwxyz      .,\n"

    def text(tokens: int) -> str:
        return json.dumps({"text": "".join(rng.choices(alphabet, k=tokens - 2))}) + "\n"

    with open(folder / "docs_4096.jsonl", "w") as f:
        f.writelines(text(4096) for _ in range(4 * steps))
    with open(folder / "docs_packed.jsonl", "w") as f:
        f.writelines(text(n) for _ in range(4 * steps) for n in PACKED_GROUP)


def engine_variant(name: str, setting: tuple[str, ...], work: Path, args,
                   overrides: list[str]) -> dict:
    docs, budget, batch = VARIANTS[name]
    overrides = [*setting, *overrides]
    cmd = [sys.executable, "-m", "tools.perf", "step", str(RECIPE),
           "--warmup", str(args.warmup), "--steps", str(args.steps),
           f"data.sources=[{{path: {work / docs}}}]", f"output_dir={work / 'run'}",
           f"data.max_tokens_per_micro_batch={budget}", f"data.global_batch_size={batch}",
           *overrides]
    return _json_of(cmd)


def peers(script: str, args) -> list[dict]:
    """The peer's step (with Liger when importable) and its GEMM + attention floor."""
    liger = importlib.util.find_spec("liger_kernel") is not None
    cmd = [sys.executable, script, "--seq", "4096", "--batch", "4", "--steps", str(args.steps),
           "--ceiling", *(["--liger"] if liger else [])]
    proc = _run(cmd)
    if proc.returncode:
        return [{"name": "HF transformers", "error": _failure(proc)}]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    for r in rows:
        r["name"] = {"hf": "HF transformers", "hf+liger": "HF transformers + Liger"}.get(
            r["run"], r["run"])
    return rows


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def _failure(proc: subprocess.CompletedProcess) -> str:
    return proc.stderr[-2000:].strip() or f"exit status {proc.returncode}"


def _json_of(cmd: list[str]) -> dict:
    """The JSON object a command prints last (its stderr tail on failure)."""
    proc = _run(cmd)
    if proc.returncode:
        return {"error": _failure(proc)}
    out = proc.stdout
    return json.loads(out[out.index("{"):])


def combinations(varied: list[list[str]]) -> list[tuple[str, ...]]:
    """Every combination of the --vary values as key=value overrides ([()] for none)."""
    axes = []
    for key, values in varied:
        if not all(part.isidentifier() for part in key.split(".")) or not values.strip(","):
            raise ConfigError(f"--vary takes a recipe key and its values, as in --vary "
                              f"train.cross_entropy te,fused; got {key} {values}")
        axes.append([f"{key}={v}" for v in values.split(",") if v])
    return list(itertools.product(*axes))


def table(rows: list[dict]) -> str:
    lines = ["| run | tokens/s | TFLOP/s | MFU | peak GiB | s/step | forward-backward "
             "| optimizer |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | failed: {r['error'].splitlines()[-1][:80]} "
                         "| | | | | | |")
            continue
        tokens = r.get("tokens_per_s_per_gpu", r.get("tokens_per_s"))
        tflops = r.get("tflops_per_gpu")
        mfu, peak = r.get("mfu"), r.get("peak_memory_gib", r.get("peak_mem_gib"))
        phases = r.get("phase_seconds_per_step", {})
        step = r.get("seconds_per_step", r.get("step_s"))
        cells = [r["name"], f"{tokens:,.0f}" if tokens else "—",
                 f"{tflops:.0f}" if tflops else "—",
                 f"{100 * mfu:.1f}%" if mfu is not None else "—",
                 f"{peak:.1f}" if peak is not None else "—",
                 f"{step:.3f}" if step is not None else "—",
                 f"{phases['forward_backward']:.3f}" if phases else "—",
                 f"{phases['optimizer']:.3f}" if phases else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_throughput",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--vary", action="append", default=[], nargs=2,
                        metavar=("KEY", "V1,V2"),
                        help="run every variant once per value of this recipe key")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--peer", default=str(ROOT.parent / "shared/bench/peer_baseline.py"))
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--out")
    parser.add_argument("--work", help="folder for the documents (default: a temporary one)")
    args, overrides = parse(parser, argv)
    names = [n for n in args.variants.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ConfigError(f"unknown variant {unknown[0]!r}; known: {', '.join(VARIANTS)}")
    settings = combinations(args.vary)
    if not args.no_peer and not Path(args.peer).is_file():
        raise ConfigError(f"peer script not found: {args.peer} (--peer PATH or --no-peer)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp).resolve()
        work.mkdir(parents=True, exist_ok=True)
        write_documents(work, args.warmup + args.steps)
        for name in names:
            for setting in settings:
                label = f"engine {name}" + (f" ({', '.join(setting)})" if setting else "")
                rows.append({"name": label, **engine_variant(name, setting, work, args,
                                                             overrides)})
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    if not args.no_peer:
        rows += peers(args.peer, args)
    print(table(rows))
    if args.out:
        Path(args.out).write_text(json.dumps({"overrides": overrides, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
