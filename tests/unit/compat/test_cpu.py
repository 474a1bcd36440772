"""The CPU platform layer redirects megatron-core's CUDA calls and nothing else."""

import pytest
import torch

from engine.compat import cpu as cpu_platform

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the layer is CPU-only")


def test_activate_is_idempotent_and_scoped():
    import megatron.core.optimizer.clip_grads as clip_grads
    import megatron.core.pipeline_parallel.schedules as schedules

    assert cpu_platform.activate() and cpu_platform.activate()
    assert cpu_platform.is_active()
    # Redirected inside megatron: "cuda" literals and current_device() land on the CPU.
    assert schedules.torch.zeros([], device="cuda").device.type == "cpu"
    assert schedules.torch.cuda.current_device() == "cpu"
    schedules.torch.cuda.synchronize()
    with schedules.torch.cuda.stream(schedules.torch.cuda.Stream()):
        pass
    # Everything else is torch itself.
    assert schedules.torch.float32 is torch.float32 and schedules.torch.nn is torch.nn
    # Not redirected outside megatron.
    assert torch.cuda.current_device is not schedules.torch.cuda.current_device
    with pytest.raises((RuntimeError, AssertionError)):
        torch.zeros(1, device="cuda")
    # Tensor.type() names are CUDA's only during the wrapped megatron functions.
    assert torch.zeros(1).type() == "torch.FloatTensor"
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    clip_grads.clip_grad_by_total_norm_fp32([p], max_norm=1.0, total_norm=4.0)
    assert torch.allclose(p.grad, torch.full((3,), 0.5), rtol=1e-5)
    assert torch.zeros(1).type() == "torch.FloatTensor"
    with pytest.raises((RuntimeError, AssertionError)):  # Tensor.cuda() is torch's again
        torch.zeros(1).cuda()
