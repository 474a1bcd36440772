"""Logits of a packed (THD) micro-batch vs the same sequences run one at a time (the unpacked
SBHD path; with sequence parallelism, a pack holding that sequence alone).

    [torchrun --nproc-per-node 2] python -m tests.scripts.packed_vs_alone [--one-sequence]
        [key=value ...]

Prints one JSON line {"max_abs_diff": ..., "sequences": [...]} from rank 0. `--one-sequence`
is the negative control: the pack's boundaries are dropped (cu_seqlens = [0, total]), so later
sequences attend to earlier ones and the logits must differ. On a GPU with TransformerEngine the
packed pass goes through TE's THD attention.
"""

import argparse
import json

import numpy as np
import torch

from engine.cli import parse
from engine.data.packing import collate
from engine.data.tokenizer import ByteTokenizer
from engine.launch.process_groups import shutdown
from engine.model.build import vocab_logits
from engine.model.spec import uses_transformer_engine
from engine.model.init import init_weights
from engine.train.schedule import forward_packed
from tests.scripts.model_at_layout import model_at_layout
from tests.util import TINY

TEXTS = ["The capital of Peru is Lima. 3 + 4 = 7.", "Counting: 5, 6, 7, 8, 9.",
         "The owl hoots. 9 times 9 is 81. The capital of Japan is Tokyo. 1 + 1 = 2."]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--one-sequence", action="store_true")
    args, overrides = parse(parser)
    cfg, layout, model = model_at_layout(TINY, overrides, whole_model=True)
    init_weights(model, cfg.model, cfg.seed)
    tok = ByteTokenizer()
    seqs = [np.asarray([tok.bos_id, *tok.encode(t)], dtype=np.int32) for t in TEXTS]
    pad = cfg.parallel.tp if cfg.parallel.sp else 1
    mb = collate(seqs, [np.ones(len(s) - 1) for s in seqs], tok.pad_id, pad).to(layout.device)
    bounds = mb.cu_seqlens.tolist()
    if args.one_sequence:
        mb.cu_seqlens = mb.cu_seqlens[[0, -1]]
        mb.max_seqlen = bounds[-1]
    with torch.no_grad():
        packed = vocab_logits(forward_packed(model, mb), cfg.model.vocab_size)[0]
        worst = 0.0
        for i, seq in enumerate(seqs):
            if cfg.parallel.sp:  # SP splits tokens over TP ranks: a pack of one, padded
                one = collate([seq], [np.ones(len(seq) - 1)], tok.pad_id, pad).to(layout.device)
                out = forward_packed(model, one)
            else:  # the unpacked SBHD path
                ids = torch.as_tensor(seq, dtype=torch.long, device=layout.device)[None]
                pos = torch.arange(len(seq), device=layout.device)[None]
                out = model(input_ids=ids, position_ids=pos, attention_mask=None)
            alone = vocab_logits(out, cfg.model.vocab_size)[0, :len(seq)]
            diff = (packed[bounds[i]:bounds[i + 1]] - alone).abs().max().item()
            worst = max(worst, diff)
    if layout.is_logger:
        print(json.dumps({"max_abs_diff": worst, "sequences": [len(s) for s in seqs],
                          "logit_scale": packed.abs().max().item(),
                          "transformer_engine": uses_transformer_engine(cfg)}))
    shutdown()


if __name__ == "__main__":
    main()
