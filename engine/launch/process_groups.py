"""The process group (NCCL with CUDA, gloo otherwise) and megatron's TP/PP/DP groups.

    layout = init_distributed(cfg.parallel, launch_env())
    ...
    shutdown()

Before any group exists the megatron fixes are applied and, without CUDA, the CPU redirection
of megatron's CUDA calls is activated (`engine.compat`).
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

from engine.compat import cpu, megatron_fixes, platform
from engine.config import ParallelConfig
from engine.launch.env import LaunchEnv, slurm_master
from engine.launch.layout import Layout


def init_distributed(parallel: ParallelConfig, env: LaunchEnv) -> Layout:
    from megatron.core import parallel_state

    megatron_fixes.apply()
    use_cuda = platform.has_cuda()
    if use_cuda:
        torch.cuda.set_device(env.local_rank)
        device = torch.device("cuda", env.local_rank)
    else:
        cpu.activate()
        device = torch.device("cpu")
    backend = "nccl" if use_cuda else "gloo"
    timeout = timedelta(minutes=30)
    if env.launcher == "single":
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1,
                                timeout=timeout)
    else:
        if env.launcher == "slurm":
            os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = slurm_master()
        dist.init_process_group(backend, init_method="env://", rank=env.rank,
                                world_size=env.world_size, timeout=timeout)
    parallel_state.initialize_model_parallel(tensor_model_parallel_size=parallel.tp,
                                             pipeline_model_parallel_size=parallel.pp)
    return Layout(rank=env.rank, world_size=env.world_size, tp=parallel.tp, pp=parallel.pp,
                  dp=parallel_state.get_data_parallel_world_size(),
                  tp_rank=parallel_state.get_tensor_model_parallel_rank(),
                  pp_rank=parallel_state.get_pipeline_model_parallel_rank(),
                  dp_rank=parallel_state.get_data_parallel_rank(), device=device)


def shutdown() -> None:
    from megatron.core import parallel_state

    if dist.is_initialized():
        parallel_state.destroy_model_parallel()
        dist.destroy_process_group()
