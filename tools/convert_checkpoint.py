"""Convert checkpoints between Hugging Face and the engine.

    python -m tools.convert_checkpoint hf-to-engine --hf DIR --out DIR
    python -m tools.convert_checkpoint engine-to-hf --ckpt RUN/checkpoints/step_N --out DIR
        [--tokenizer DIR] [--dtype bf16|fp32|fp16] [--overwrite] [--part value]
                                                       (--ckpt RUN: its newest checkpoint)

hf-to-engine writes a weights-only engine checkpoint (start a run from it with
`model.init_from_checkpoint: DIR`; it loads at any TP/PP layout). engine-to-hf reads a checkpoint
saved at any TP/PP/DP layout and writes sharded safetensors, model.safetensors.index.json,
config.json and generation_config.json (+ the tokenizer's files) that `transformers` and vLLM
load as they are; its --out must be new or empty (--overwrite: replace the model files in it).
`--part value` exports a PPO run's value model instead of the policy (an HF
...ForSequenceClassification with one label).
Both stream one layer at a time and print a JSON summary (bytes, seconds, GB/s, peak resident
memory). A recipe can also read an HF directory directly: `model.init_from_hf: DIR`.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from engine.checkpoint.weights import find_checkpoint, stored_model_config
from engine.cli import run_main
from engine.hf.config import read_hf_config
from engine.hf.exporter import export_hf
from engine.hf.importer import import_hf


def _num_layers(args) -> int:
    if args.command == "hf-to-engine":
        return int(read_hf_config(args.hf).get("num_hidden_layers", 0))
    return stored_model_config(find_checkpoint(args.ckpt), args.part)[0].num_layers


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.convert_checkpoint",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    from_hf = sub.add_parser("hf-to-engine")
    from_hf.add_argument("--hf", required=True)
    from_hf.add_argument("--out", required=True)
    to_hf = sub.add_parser("engine-to-hf")
    to_hf.add_argument("--ckpt", required=True)
    to_hf.add_argument("--out", required=True)
    to_hf.add_argument("--tokenizer")
    to_hf.add_argument("--dtype", choices=("bf16", "fp32", "fp16"))
    to_hf.add_argument("--overwrite", action="store_true",
                       help="replace the model files of a non-empty --out")
    to_hf.add_argument("--part", choices=("value",),
                       help="a model saved beside the policy (PPO's value model)")
    args = parser.parse_args()
    start = time.perf_counter()
    layers = _num_layers(args)

    def progress(layer):
        """A progress bar on stderr: embedding and final norm first, then each layer."""
        done = 0 if layer is None else layer + 1
        bar = "#" * (30 * done // max(layers, 1))
        print(f"\r[{bar:<30}] {done}/{layers} layers", end="", file=sys.stderr, flush=True)

    if args.command == "hf-to-engine":
        result = import_hf(args.hf, args.out, progress)
    else:
        result = export_hf(args.ckpt, args.out, args.tokenizer, args.dtype, progress,
                           overwrite=args.overwrite, part=args.part)
    seconds = time.perf_counter() - start
    result.update(seconds=seconds, gb_per_s=result["bytes"] / seconds / 1e9,
                  peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    print(file=sys.stderr)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
