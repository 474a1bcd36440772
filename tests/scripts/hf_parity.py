"""Engine logits of a Hugging Face model (loaded through `model.init_from_hf`) against
`transformers` logits of the same directory, at the launch's TP/PP layout.

    [torchrun --nproc-per-node N] python -m tests.scripts.hf_parity HF_DIR [--engine-ckpt DIR
        [--part value]] [key=value ...]

With --engine-ckpt the engine's weights come from that training checkpoint (saved at any
layout; with --part, a model saved beside the policy: PPO's value model) instead of HF_DIR,
whose config.json still gives the architecture: this checks an exported checkpoint against the
engine that trained it. Two sequences are packed into one THD
micro-batch for the engine (forward only through megatron's schedule, so any PP works) and run
one at a time through `transformers` in fp32 on the CPU. A value model's per-token values are
compared with its HF `score` head on every token's last hidden state. With `precision=bf16` the
engine runs in bf16 (TE's layers on a GPU with TransformerEngine). Prints {"max_abs_diff": ...,
"logit_scale": ...} from the rank that holds the logits (last stage, first TP rank).
"""

import argparse
import json

import numpy as np
import torch

from engine.checkpoint.weights import load_checkpoint_weights
from engine.cli import parse
from engine.data.packing import collate
from engine.hf.importer import load_hf_weights
from engine.launch.process_groups import shutdown
from engine.model.build import vocab_logits
from engine.model.spec import uses_transformer_engine
from engine.train.schedule import forward_collect
from tests.scripts.model_at_layout import model_at_layout


def _reference(hf_dir: str, head: str, sequence) -> torch.Tensor:
    """transformers' logits [t, vocab] (or per-token values [t, 1]) of one sequence, fp32."""
    import transformers

    auto = transformers.AutoModelForCausalLM if head == "lm" else \
        transformers.AutoModelForSequenceClassification
    hf = auto.from_pretrained(hf_dir, dtype=torch.float32).eval()
    ids = torch.as_tensor(sequence)[None]
    with torch.no_grad():
        if head == "lm":
            return hf(ids).logits[0]
        return hf.score(hf.model(ids).last_hidden_state)[0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("hf_dir")
    parser.add_argument("--engine-ckpt")
    parser.add_argument("--part")
    args, overrides = parse(parser)
    cfg, layout, model = model_at_layout(None, [f"model.init_from_hf={args.hf_dir}",
                                                "data.sources=[{path: unused}]",
                                                "train.max_steps=1", *overrides])
    if args.engine_ckpt:
        load_checkpoint_weights(model, args.engine_ckpt, args.part)
    else:
        load_hf_weights(model, cfg.model, args.hf_dir, layout.tp)
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, cfg.model.vocab_size, size=n) for n in (37, 21)]
    pad = cfg.parallel.tp if cfg.parallel.sp else 1
    mb = collate(seqs, [np.ones(len(s) - 1) for s in seqs], 0, pad)
    logits = forward_collect(model, [mb], lambda mb, out: vocab_logits(out, cfg.model.output_size),
                             layout.device, layout.is_last_stage)
    if logits is not None and layout.tp_rank == 0:
        ref = torch.cat([_reference(args.hf_dir, cfg.model.head, s) for s in seqs])
        ours = logits[0][:sum(len(s) for s in seqs)].float().cpu()
        print(json.dumps({"max_abs_diff": (ours - ref).abs().max().item(),
                          "logit_scale": ref.abs().max().item(),
                          "transformer_engine": uses_transformer_engine(cfg)}), flush=True)
    shutdown()


if __name__ == "__main__":
    main()
