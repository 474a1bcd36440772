"""Seeds for Python, NumPy, torch and megatron's model-parallel RNG tracker."""

from __future__ import annotations

import random

import numpy as np
import torch

from engine.compat import platform


def seed_everything(seed: int) -> None:
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # CUDA RNG states cannot be forked on the CPU: there megatron's inference tracker is used.
    model_parallel_cuda_manual_seed(seed, inference_rng_tracker=not platform.has_cuda())
