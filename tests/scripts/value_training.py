"""A value model (HF one-label sequence classifier) trained a few steps with the `value` loss on
fixed rollouts, at the launch's layout: the same numbers at any TP/PP/SP/DP as in one process.

    [torchrun --nproc-per-node N] python -m tests.scripts.value_training HF_VALUE_DIR [key=value]

Rollouts: six token sequences of a seeded generator; the second half of each is the "answer"
(its targets trained, token_mean), with seeded old values and returns per answer token. Prints
{"loss": [...], "value_mean": [...], "grad_norm": [...]} per step from global rank 0.
"""

import argparse
import json

import numpy as np
import torch.distributed as dist

from engine.cli import parse
from engine.data.loader import PackedLoader, pad_multiple
from engine.hf.importer import load_hf_weights
from engine.launch.process_groups import shutdown
from engine.losses.registry import get_loss
from engine.train.optimizer import build_optimizer, wrap_for_training
from engine.train.step import TrainStep
from tests.scripts.model_at_layout import model_at_layout

STEPS = 3


def rollouts(vocab: int):
    rng = np.random.default_rng(0)
    sequences = [rng.integers(1, vocab, size=n) for n in (31, 24, 40, 17, 28, 35)]
    masks, old, returns = [], [], []
    for s in sequences:
        mask = np.zeros(len(s) - 1)
        mask[len(s) // 2:] = 1.0
        masks.append(mask)
        old.append(rng.normal(0.0, 1.0, len(s) - 1) * mask)
        returns.append(rng.normal(0.5, 1.0, len(s) - 1) * mask)
    return sequences, masks, {"old_values": old, "returns": returns}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("hf_dir")
    args, overrides = parse(parser)
    cfg, layout, model = model_at_layout(None, [
        f"model.init_from_hf={args.hf_dir}", "data.sources=[{path: unused}]",
        f"train.max_steps={STEPS}", "optim.lr=1e-4", "optim.min_lr=1e-4",
        "optim.decay=constant", "data.max_seq_len=64", "data.max_tokens_per_micro_batch=64",
        *overrides])
    load_hf_weights(model, cfg.model, args.hf_dir, layout.tp)
    model = wrap_for_training(model.train(), cfg)
    optimizer, scheduler = build_optimizer(model, cfg, STEPS, 0)
    step = TrainStep(model, optimizer, scheduler, layout,
                     get_loss("value", real_vocab_size=cfg.model.vocab_size, value_coef=0.1))
    sequences, masks, token_data = rollouts(cfg.model.vocab_size)
    loader = PackedLoader(sequences, global_batch_size=len(sequences),
                          max_tokens_per_micro_batch=cfg.data.max_tokens_per_micro_batch,
                          dp_size=layout.dp, dp_rank=layout.dp_rank, pad_id=0,
                          pad_multiple=pad_multiple(cfg.parallel), seed=0, shuffle=False,
                          target_masks=masks, token_data=token_data)
    out = {"loss": [], "value_mean": [], "grad_norm": []}
    for _ in range(STEPS):
        result = step(loader.next_batch().micro_batches)
        out["loss"].append(result.metrics["loss"])
        out["value_mean"].append(result.metrics["value_mean"])
        out["grad_norm"].append(result.grad_norm)
    if dist.get_rank() == 0:
        print(json.dumps(out), flush=True)
    shutdown()


if __name__ == "__main__":
    main()
