"""Refit at a training layout into colocated vLLM engines of their own TP size, against a fresh
engine on an HF export of the same weights and against the trainer itself.

    torchrun --nproc-per-node N -m tests.scripts.colocated_refit WORK_DIR [key=value ...]
    torchrun --nproc-per-node TP -m tests.scripts.colocated_refit --fresh WORK_DIR TP

The first form builds the tiny model at the layout of the overrides (parallel.*, rollout.tp),
starts the colocated engines on dummy weights, refits them with the trainer's weights, scores
fixed sequences with every engine, and writes the weights as an HF directory (WORK_DIR/hf). It
prints one JSON line: each engine's log-probs, and the largest |Δ| between them and the
trainer's own (`engine.train.reference.token_logprobs`). The second form prints the log-probs of
a fresh engine of the same tensor-parallel size started on WORK_DIR/hf (vLLM's TP changes the
fp32 reduction order, so only an engine of the same TP can be compared exactly).
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch.distributed as dist
from safetensors.torch import save_file

from engine.hf.config import hf_config_from_model
from engine.model.init import init_weights
from engine.rollout.colocated import ColocatedRollout
from engine.rollout.refit import hf_weights
from engine.rollout.vllm_engine import RolloutEngine
from engine.train.reference import token_logprobs
from tests.scripts.model_at_layout import model_at_layout
from tests.util import TINY

SEQUENCES = [[int(t) for t in np.random.default_rng(n).integers(3, 250, size=n)]
             for n in (12, 30, 7, 19)]
COMMON = ["rlvr.max_prompt_tokens=64", "rollout.max_new_tokens=16", "stage=rlvr"]


def colocated(work: Path, overrides: list[str]) -> None:
    cfg, layout, model = model_at_layout(TINY, [*COMMON, *overrides])
    init_weights(model, cfg.model, cfg.seed)
    rollout = ColocatedRollout(cfg, layout, [2], work)
    rollout.refit(model, version=1)
    engine_logprobs = rollout.engine.sequence_logprobs(SEQUENCES, version=1)
    trainer = token_logprobs(model, [np.asarray(s) for s in SEQUENCES], layout, cfg, pad_id=0)
    gap = max(float(np.abs(np.asarray(e) - t).max()) for e, t in zip(engine_logprobs, trainer))
    tensors = {name: t.contiguous() for name, t in hf_weights(model, cfg.model)}
    every_engine = [None] * layout.world_size
    dist.all_gather_object(every_engine, engine_logprobs)
    if layout.rank == 0:
        hf = work / "hf"
        hf.mkdir(parents=True, exist_ok=True)
        save_file(tensors, hf / "model.safetensors")
        (hf / "config.json").write_text(json.dumps(hf_config_from_model(cfg.model, "float32")))
        print(json.dumps({"engines": every_engine, "trainer_gap": gap,
                          "world": layout.world_size, "engine_count": rollout.engines}),
              flush=True)
    rollout.shutdown()


def fresh(work: Path, tp: int) -> None:
    """A fresh engine of tensor-parallel size `tp` (run under torchrun with `tp` processes)."""
    if tp > 1:
        dist.init_process_group("gloo")
    with RolloutEngine(str(work / "hf"), stop_token_ids=[2], max_model_len=80, tp=tp,
                       dtype="float32", distributed=tp > 1) as engine:
        logprobs = engine.sequence_logprobs(SEQUENCES)
    if not dist.is_initialized() or dist.get_rank() == 0:
        print(json.dumps({"fresh": logprobs}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--fresh":
        fresh(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        colocated(Path(sys.argv[1]), sys.argv[2:])
