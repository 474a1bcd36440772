"""vLLM's in-place weight loading (engine.rollout's `load_weights`) against a fresh engine: an
engine started on model A, given all of model B's HF-named tensors, scores fixed sequences
exactly as an engine started on B does; its version check refuses stale weights.

    python -m tests.scripts.vllm_refit HF_DIR_A WORK_DIR

B is A with every weight perturbed (transformers, saved to WORK_DIR/b). Prints one JSON line.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from engine.rollout.vllm_engine import RolloutEngine, SamplingSpec


def perturbed_copy(hf_a: str, out: Path) -> Path:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hf_a, dtype=torch.float32)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    model.save_pretrained(out)
    return out


def hf_tensors(directory: Path) -> list[tuple[str, torch.Tensor]]:
    tensors = {}
    for shard in sorted(directory.glob("*.safetensors")):
        tensors.update(load_file(shard))
    return sorted(tensors.items())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("hf_a")
    parser.add_argument("work")
    args = parser.parse_args()
    hf_b = perturbed_copy(args.hf_a, Path(args.work) / "b")
    rng = np.random.default_rng(0)
    sequences = [rng.integers(3, 250, size=n).tolist() for n in (12, 30, 7)]
    common = {"stop_token_ids": [2], "max_model_len": 256, "dtype": "float32", "seed": 0}
    with RolloutEngine(args.hf_a, **common) as engine:
        before = engine.sequence_logprobs(sequences)
        engine.generate([sequences[0]], SamplingSpec(max_new_tokens=4))  # fill the prefix cache
        engine.load_weights(hf_tensors(hf_b), version=1)
        after = engine.sequence_logprobs(sequences, version=1)
        answer = engine.generate([sequences[0]], SamplingSpec(max_new_tokens=8), version=1)
        try:
            engine.generate([sequences[0]], SamplingSpec(max_new_tokens=1), version=0)
            refused = False
        except RuntimeError:
            refused = True
    with RolloutEngine(str(hf_b), **common) as fresh:
        expected = fresh.sequence_logprobs(sequences)
        fresh_answer = fresh.generate([sequences[0]], SamplingSpec(max_new_tokens=8))

    def gap(a, b):
        return max(abs(x - y) for s, t in zip(a, b) for x, y in zip(s, t))

    print(json.dumps({"refit_vs_fresh": gap(after, expected), "before_vs_fresh": gap(before, expected),
                      "same_answer": answer[0][0].token_ids == fresh_answer[0][0].token_ids,
                      "tokens_scored": sum(len(s) for s in after), "stale_refused": refused}),
          flush=True)


if __name__ == "__main__":
    main()
