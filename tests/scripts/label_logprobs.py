"""Per-token log-probabilities of the labels from the forward-only pass, at the launch's layout.

    [torchrun --nproc-per-node N] python -m tests.scripts.label_logprobs [key=value ...]

The tiny recipe's model (seeded, layout-free init) on three packed micro-batches of byte-encoded
text; prints {"logprobs": [[...] per micro-batch]} (real tokens only) from the rank that holds
them (last pipeline stage, first tensor-parallel rank), and each sequence's last token (which has
no label).
"""

import argparse
import json

import numpy as np

from engine.cli import parse
from engine.data.packing import collate
from engine.data.tokenizer import ByteTokenizer
from engine.launch.process_groups import shutdown
from engine.model.init import init_weights
from engine.train.schedule import label_logprobs
from tests.scripts.model_at_layout import model_at_layout
from tests.scripts.packed_vs_alone import TEXTS
from tests.util import TINY


def main():
    _, overrides = parse(argparse.ArgumentParser())
    cfg, layout, model = model_at_layout(TINY, overrides)
    init_weights(model, cfg.model, cfg.seed)
    tok = ByteTokenizer()
    seqs = [np.asarray([tok.bos_id, *tok.encode(t)], dtype=np.int32) for t in TEXTS]
    pad = cfg.parallel.tp if cfg.parallel.sp else 1
    mbs = [collate(group, [np.ones(len(s) - 1) for s in group], tok.pad_id, pad)
           for group in (seqs[:2], seqs[2:], seqs[::-1])]
    out = label_logprobs(model, mbs, cfg.model.vocab_size, layout.device, layout.is_last_stage)
    if out is not None and layout.tp_rank == 0:
        print(json.dumps({"logprobs": [lp[:mb.num_tokens].tolist() for lp, mb in zip(out, mbs)],
                          "last_tokens": [[end - 1 for end in mb.cu_seqlens[1:].tolist()
                                           if end <= mb.num_tokens] for mb in mbs]}), flush=True)
    shutdown()


if __name__ == "__main__":
    main()
