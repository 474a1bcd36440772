"""Greedy generation with the training model (PP=1, any TP), for in-run evaluation.

All prompts decode together as one packed THD batch, recomputed in full at every new token:
no KV cache, which is fine for the short answers of evaluation sets. Rollouts for RL use vLLM.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.data.packing import collate
from engine.model.build import vocab_logits
from engine.train.schedule import forward_logits


@torch.no_grad()
def greedy_generate(model, prompts: list[list[int]], *, max_new_tokens: int, stop_ids: set[int],
                    real_vocab_size: int, pad_id: int, pad_multiple: int,
                    device: torch.device) -> list[list[int]]:
    """New tokens for every prompt, until a stop token (not included) or `max_new_tokens`."""
    outputs: list[list[int]] = [[] for _ in prompts]
    active = list(range(len(prompts)))
    for _ in range(max_new_tokens):
        if not active:
            break
        seqs = [np.asarray(prompts[i] + outputs[i], dtype=np.int64) for i in active]
        mb = collate(seqs, [np.zeros(len(s) - 1) for s in seqs], pad_id, pad_multiple).to(device)
        logits = vocab_logits(forward_logits(model, mb), real_vocab_size)
        last = mb.cu_seqlens[1:len(seqs) + 1].long() - 1
        next_ids = logits[last].argmax(-1).tolist()
        still = []
        for i, token in zip(active, next_ids):
            if token not in stop_ids:
                outputs[i].append(token)
                still.append(i)
        active = still
    return outputs
