"""Shared fixtures: a one-process torch.distributed + megatron parallel state for unit tests."""

import pytest
import torch.distributed as dist


@pytest.fixture(scope="session")
def single_process():
    """World of one (gloo), megatron TP=PP=1, the CPU platform layer active where CUDA is not."""
    from megatron.core import parallel_state

    from engine import cpu_platform

    cpu_platform.activate()
    if not dist.is_initialized():
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    if not parallel_state.model_parallel_is_initialized():
        parallel_state.initialize_model_parallel(1, 1)
    yield
