"""Per-sequence reference log-probs (`engine.train.reference.sequence_logprobs`, DPO's cache)
of sequences packed together vs each sequence in a pass of its own, at the launch's layout.

    [torchrun --nproc-per-node N] python -m tests.scripts.sequence_logprobs [key=value ...]

The tiny recipe's model (seeded, layout-free init); twelve byte-encoded sequences of different
lengths, each with a loss mask over its second half (as an answer after a prompt). Prints
{"packed": [...], "alone": [...], "packed_micro_batches": n} from global rank 0 (every rank
holds the same values).
"""

import argparse
import json

import numpy as np

from engine.cli import parse
from engine.data.packing import best_fit_decreasing
from engine.data.tokenizer import ByteTokenizer
from engine.launch.process_groups import shutdown
from engine.model.init import init_weights
from engine.train.reference import sequence_logprobs
from tests.scripts.model_at_layout import model_at_layout
from tests.scripts.packed_vs_alone import TEXTS
from tests.util import TINY


def main():
    _, overrides = parse(argparse.ArgumentParser())
    cfg, layout, model = model_at_layout(TINY, overrides)
    init_weights(model, cfg.model, cfg.seed)
    tok = ByteTokenizer()
    sequences, masks = [], []
    for i in range(12):
        body = " ".join(TEXTS[j % len(TEXTS)] for j in range(i, i + 1 + i % 4))
        text = f"Example {i}: {body}"
        ids = np.asarray([tok.bos_id, *tok.encode(text)], dtype=np.int32)
        mask = np.zeros(len(ids) - 1, dtype=bool)
        mask[len(mask) // 2:] = True
        sequences.append(ids)
        masks.append(mask)
    packed = sequence_logprobs(model, sequences, masks, layout, cfg, tok.pad_id)
    alone = [sequence_logprobs(model, [s], [m], layout, cfg, tok.pad_id)[0]
             for s, m in zip(sequences, masks)]
    if layout.rank == 0:
        bins = best_fit_decreasing([len(s) for s in sequences],
                                   cfg.data.max_tokens_per_micro_batch)
        print(json.dumps({"packed": packed.tolist(), "alone": [float(a) for a in alone],
                          "packed_micro_batches": len(bins)}), flush=True)
    shutdown()


if __name__ == "__main__":
    main()
