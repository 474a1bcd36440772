"""Engine logits of a Hugging Face model (loaded through `model.init_from_hf`) against
`transformers` logits of the same directory, fp32, at the launch's TP/PP layout.

    [torchrun --nproc-per-node N] python tests/scripts/hf_parity.py HF_DIR [--engine-ckpt DIR]
        [key=value ...]

With --engine-ckpt the engine's weights come from that training checkpoint (saved at any
layout) instead of HF_DIR, whose config.json still gives the architecture: this checks an
exported checkpoint against the engine that trained it. Two sequences are packed into one THD micro-batch for the engine and run one at a time through
`transformers`. Prints {"max_abs_diff": ..., "logit_scale": ...} from the rank that holds the
logits (last pipeline stage, first tensor-parallel rank).
"""

import json
import sys
from functools import partial
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from megatron.core import parallel_state  # noqa: E402
from megatron.core.pipeline_parallel import get_forward_backward_func  # noqa: E402

from engine import dist as edist  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.data.packing import collate  # noqa: E402
from engine.models import build_model, padded_vocab_size, vocab_logits  # noqa: E402
from engine.step import forward_packed  # noqa: E402
from engine.weights import load_checkpoint_weights, load_hf_weights  # noqa: E402


def engine_logits(model, mb, vocab):
    """Forward only through megatron's schedule (pipeline-aware); logits on the last stage."""
    def step(data_iterator, model):
        batch = next(data_iterator)
        return forward_packed(model, batch), partial(lambda out, non_loss_data: out)

    outputs = get_forward_backward_func()(
        forward_step_func=step, data_iterator=iter([mb]), model=[model], num_microbatches=1,
        seq_length=mb.tokens.numel(), micro_batch_size=1, forward_only=True,
        collect_non_loss_data=True)
    if not parallel_state.is_pipeline_last_stage():
        return None
    return vocab_logits(outputs[0], vocab)[0]


def main():
    hf_dir, args = sys.argv[1], sys.argv[2:]
    engine_ckpt = args[args.index("--engine-ckpt") + 1] if "--engine-ckpt" in args else None
    overrides = [a for a in args if "=" in a]
    cfg = load_config(None, [f"model.init_from_hf={hf_dir}", "data.sources=[{path: unused}]",
                             "train.max_steps=1", *overrides])
    env = edist.launch_env()
    cfg.validate(env.world_size)
    layout = edist.init_distributed(cfg, env)
    edist.seed_everything(cfg.seed)
    model = build_model(cfg, layout).eval()
    if engine_ckpt:
        load_checkpoint_weights(model, engine_ckpt)
    else:
        load_hf_weights(model, cfg.model, hf_dir, padded_vocab_size(cfg.model, layout.tp))
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, cfg.model.vocab_size, size=n) for n in (37, 21)]
    pad = cfg.parallel.tp if cfg.parallel.sp else 1
    mb = collate(seqs, [np.ones(len(s) - 1) for s in seqs], 0, pad).to(layout.device)
    with torch.no_grad():
        logits = engine_logits(model, mb, cfg.model.vocab_size)
    if logits is not None and layout.tp_rank == 0:
        from transformers import AutoModelForCausalLM

        hf = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
        with torch.no_grad():
            ref = torch.cat([hf(torch.as_tensor(s)[None]).logits[0] for s in seqs])
        ours = logits[:sum(len(s) for s in seqs)]
        print(json.dumps({"max_abs_diff": (ours - ref).abs().max().item(),
                          "logit_scale": ref.abs().max().item()}), flush=True)
    edist.shutdown()


if __name__ == "__main__":
    main()
