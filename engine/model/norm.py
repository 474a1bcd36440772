"""RMSNorm for megatron's local layer spec, sequence-parallel capable.

megatron's torch fallback norm refuses sequence parallelism when apex is absent. This one marks
its weight `sequence_parallel`, so megatron's `finalize_model_grads` all-reduces the weight's
gradient over the tensor-parallel group (each rank saw a different slice of the sequence).
The arithmetic follows Hugging Face's Llama: normalize in fp32, cast back, then scale; on CUDA
it runs as two Triton kernels (kernels/rms_norm.py), plain torch elsewhere.
"""

from __future__ import annotations

import torch

from kernels.rms_norm import rms_norm


class RMSNorm(torch.nn.Module):
    def __init__(self, config, hidden_size: int, eps: float = 1e-5, **unused):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(hidden_size, dtype=config.params_dtype))
        setattr(self.weight, "sequence_parallel", config.sequence_parallel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)
