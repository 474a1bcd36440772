"""Measure conversion memory and speed on a random Llama-shaped HF model of a chosen size.

    python -m tools.bench_convert [--hidden 1024 --layers 24 --ffn 2816 --vocab 32000] [--dir D]

Builds the model with `transformers` (fp32, random), saves it as sharded safetensors, then runs
`python -m tools.convert_checkpoint hf-to-engine` and `engine-to-hf` in fresh processes and
prints, for each, the model size, seconds, GB/s and peak resident memory (and its ratio to the
model size).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_model(args, hf: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=args.hidden, intermediate_size=args.ffn,
                         num_hidden_layers=args.layers, num_attention_heads=args.heads,
                         num_key_value_heads=args.kv_heads, vocab_size=args.vocab,
                         tie_word_embeddings=False)
    with torch.device("cpu"):
        model = LlamaForCausalLM(config)
    model.save_pretrained(hf, max_shard_size="500MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--ffn", type=int, default=2816)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    parser.add_argument("--make-model-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench_convert_"))
    hf = work / "hf"
    if args.make_model_only:
        make_model(args, hf)
        return
    if not (hf / "config.json").exists():
        # In a child process: a converter started from a parent that once held the model would
        # inherit its peak resident memory (ru_maxrss survives fork and exec).
        subprocess.run([sys.executable, "-m", "tools.bench_convert", *sys.argv[1:], "--dir",
                        str(work), "--make-model-only"], check=True, cwd=ROOT)
    size = sum(p.stat().st_size for p in hf.glob("*.safetensors"))
    results = {"model_bytes": size, "model_gb": size / 1e9}
    for name, cmd in (
            ("hf_to_engine", ["hf-to-engine", "--hf", str(hf), "--out", str(work / "engine")]),
            ("engine_to_hf", ["engine-to-hf", "--ckpt", str(work / "engine"), "--out",
                              str(work / "hf_back")])):
        out = subprocess.run([sys.executable, "-m", "tools.convert_checkpoint", *cmd],
                             check=True, capture_output=True, text=True, cwd=ROOT).stdout
        r = json.loads(out[out.index("{"):])
        results[name] = {"seconds": r["seconds"], "gb_per_s": r["gb_per_s"],
                         "peak_rss_gib": r["peak_rss_gib"],
                         "peak_rss_over_model_size": r["peak_rss_gib"] * 2**30 / size}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
