"""Convert checkpoints between Hugging Face and the engine.

    python tools/convert_checkpoint.py hf-to-engine --hf DIR --out DIR
    python tools/convert_checkpoint.py engine-to-hf --ckpt RUN/checkpoints/step_N --out DIR
        [--tokenizer DIR] [--dtype bf16|fp32|fp16]     (--ckpt RUN: its newest checkpoint)

hf-to-engine writes a weights-only engine checkpoint (start a run from it with
`model.init_from_checkpoint: DIR`; it loads at any TP/PP layout). engine-to-hf reads a checkpoint
saved at any TP/PP/DP layout and writes sharded safetensors, model.safetensors.index.json,
config.json and generation_config.json (+ the tokenizer's files) that `transformers` and vLLM
load as they are. Both stream one layer at a time and print a JSON summary (bytes, seconds,
GB/s, peak resident memory). A recipe can also read an HF directory directly:
`model.init_from_hf: DIR`.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

# The repository root replaces this script's folder on the path: tools/profile.py must not
# shadow the standard library's `profile` module.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from engine.config import ConfigError  # noqa: E402


def _num_layers(args) -> int:
    from engine.checkpoint import latest
    from engine.convert import read_hf_config

    if args.command == "hf-to-engine":
        return int(read_hf_config(args.hf).get("num_hidden_layers", 0))
    ckpt = Path(args.ckpt)
    if (ckpt / "checkpoints").is_dir() and latest(ckpt / "checkpoints"):
        ckpt = latest(ckpt / "checkpoints")[1]
    from megatron.core import dist_checkpointing

    try:
        return dist_checkpointing.load_common_state_dict(str(ckpt))["meta"]["model"]["num_layers"]
    except (FileNotFoundError, KeyError):
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    from_hf = sub.add_parser("hf-to-engine")
    from_hf.add_argument("--hf", required=True)
    from_hf.add_argument("--out", required=True)
    to_hf = sub.add_parser("engine-to-hf")
    to_hf.add_argument("--ckpt", required=True)
    to_hf.add_argument("--out", required=True)
    to_hf.add_argument("--tokenizer")
    to_hf.add_argument("--dtype", choices=("bf16", "fp32", "fp16"))
    args = parser.parse_args()

    from engine.export import export_hf
    from engine.import_hf import import_hf

    start = time.perf_counter()
    try:
        def progress(layer):
            """A progress bar on stderr: embedding and final norm first, then each layer."""
            done, total = (0 if layer is None else layer + 1), progress.layers
            bar = "#" * (30 * done // max(total, 1))
            print(f"\r[{bar:<30}] {done}/{total} layers", end="", file=sys.stderr, flush=True)

        progress.layers = _num_layers(args)

        if args.command == "hf-to-engine":
            result = import_hf(args.hf, args.out, progress)
        else:
            result = export_hf(args.ckpt, args.out, args.tokenizer, args.dtype, progress)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    result.update(seconds=seconds, gb_per_s=result["bytes"] / seconds / 1e9,
                  peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    print(file=sys.stderr)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
