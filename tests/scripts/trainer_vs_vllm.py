"""Trainer and vLLM on the same weights: the tiny recipe's model (one process) written as an HF
directory from its live weights (engine.rollout.refit), served by vLLM, and the per-token
log-probs of fixed sequences compared with the trainer's own; then the trainer's weights change
(as after an optimizer step), are refit into the running engine, and are compared again.

    python -m tests.scripts.trainer_vs_vllm WORK_DIR

Prints one JSON line: the largest |Δ| before the change, after it without a refit (the stale
engine), and after the refit.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from engine.data.packing import collate
from engine.data.tokenizer import ByteTokenizer
from engine.hf.config import hf_config_from_model
from engine.launch.process_groups import shutdown
from engine.model.init import init_weights
from engine.rollout.refit import hf_weights
from engine.rollout.vllm_engine import RolloutEngine
from engine.train.schedule import label_logprobs
from tests.scripts.model_at_layout import model_at_layout
from tests.scripts.packed_vs_alone import TEXTS
from tests.util import TINY


def trainer_logprobs(model, cfg, layout, sequences):
    mbs = [collate([np.asarray(s)], [np.ones(len(s) - 1)], 0, 1) for s in sequences]
    out = label_logprobs(model, mbs, cfg.model.vocab_size, layout.device, True)
    return [lp[:len(s) - 1].tolist() for lp, s in zip(out, sequences)]


def gap(a, b):
    return max(abs(x - y) for s, t in zip(a, b) for x, y in zip(s, t))


def main():
    work = Path(sys.argv[1])
    cfg, layout, model = model_at_layout(TINY, [])
    init_weights(model, cfg.model, cfg.seed)
    hf = work / "hf"
    hf.mkdir(parents=True)
    save_file({n: t.contiguous() for n, t in hf_weights(model, cfg.model)},
              hf / "model.safetensors")
    (hf / "config.json").write_text(json.dumps(hf_config_from_model(cfg.model, "float32")))
    tok = ByteTokenizer()
    sequences = [[tok.bos_id, *tok.encode(t)] for t in TEXTS]
    with RolloutEngine(str(hf), stop_token_ids=[tok.eos_id], max_model_len=512,
                       dtype="float32") as engine:
        start = gap(engine.sequence_logprobs(sequences), trainer_logprobs(model, cfg, layout,
                                                                          sequences))
        generator = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.02 * torch.randn(p.shape, generator=generator))
        changed = trainer_logprobs(model, cfg, layout, sequences)
        stale = gap(engine.sequence_logprobs(sequences), changed)
        engine.load_weights(list(hf_weights(model, cfg.model)), version=1)
        refit = gap(engine.sequence_logprobs(sequences, version=1), changed)
    print(json.dumps({"initial": start, "stale": stale, "after_refit": refit,
                      "tokens": sum(len(s) - 1 for s in sequences)}), flush=True)
    shutdown()


if __name__ == "__main__":
    main()
