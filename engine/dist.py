"""Process launch: torchrun, Slurm `srun` or a plain single process; megatron parallel state; seeds.

`launch_env()` reads rank and world size from the environment without touching
torch.distributed, so the config can be validated first. `init_distributed()` then creates the
process group (NCCL with CUDA, gloo otherwise), megatron's TP/PP/DP groups, and returns a
`Layout` that the rest of the engine passes around instead of reading globals.
"""

from __future__ import annotations

import os
import random
import subprocess
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from engine import cpu_platform, megatron_fixes, platform
from engine.config import Config


@dataclass(frozen=True)
class LaunchEnv:
    rank: int
    world_size: int
    local_rank: int
    launcher: str  # torchrun | slurm | single


@dataclass(frozen=True)
class Layout:
    """This rank's place in the TP × PP × DP grid."""

    rank: int
    world_size: int
    tp: int
    pp: int
    dp: int
    tp_rank: int
    pp_rank: int
    dp_rank: int
    device: torch.device

    @property
    def is_first_stage(self) -> bool:
        return self.pp_rank == 0

    @property
    def is_last_stage(self) -> bool:
        return self.pp_rank == self.pp - 1

    @property
    def is_logger(self) -> bool:
        """The rank that writes logs and metrics (global rank 0)."""
        return self.rank == 0


def launch_env() -> LaunchEnv:
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return LaunchEnv(int(env["RANK"]), int(env["WORLD_SIZE"]),
                         int(env.get("LOCAL_RANK", 0)), "torchrun")
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return LaunchEnv(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]),
                         int(env.get("SLURM_LOCALID", 0)), "slurm")
    return LaunchEnv(0, 1, 0, "single")


def _slurm_master() -> tuple[str, str]:
    """Master address: first host of the allocation; port derived from the job id."""
    addr = os.environ.get("MASTER_ADDR")
    if addr is None:
        nodes = os.environ["SLURM_JOB_NODELIST"]
        hosts = subprocess.run(["scontrol", "show", "hostnames", nodes], check=True,
                               capture_output=True, text=True).stdout.split()
        addr = hosts[0]
    port = os.environ.get("MASTER_PORT") or str(20000 + int(os.environ["SLURM_JOB_ID"]) % 40000)
    return addr, port


def init_distributed(cfg: Config, env: LaunchEnv) -> Layout:
    """Create the process group and megatron's parallel groups for `cfg.parallel`."""
    from megatron.core import parallel_state

    megatron_fixes.apply()
    use_cuda = platform.has_cuda()
    if use_cuda:
        torch.cuda.set_device(env.local_rank)
        device = torch.device("cuda", env.local_rank)
    else:
        cpu_platform.activate()
        device = torch.device("cpu")
    backend = "nccl" if use_cuda else "gloo"
    timeout = timedelta(minutes=30)
    if env.launcher == "single":
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1,
                                timeout=timeout)
    else:
        if env.launcher == "slurm":
            os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = _slurm_master()
        dist.init_process_group(backend, init_method="env://", rank=env.rank,
                                world_size=env.world_size, timeout=timeout)
    p = cfg.parallel
    parallel_state.initialize_model_parallel(tensor_model_parallel_size=p.tp,
                                             pipeline_model_parallel_size=p.pp)
    return Layout(rank=env.rank, world_size=env.world_size, tp=p.tp, pp=p.pp,
                  dp=parallel_state.get_data_parallel_world_size(),
                  tp_rank=parallel_state.get_tensor_model_parallel_rank(),
                  pp_rank=parallel_state.get_pipeline_model_parallel_rank(),
                  dp_rank=parallel_state.get_data_parallel_rank(), device=device)


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch seeds, and megatron's model-parallel RNG tracker."""
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    model_parallel_cuda_manual_seed(seed, inference_rng_tracker=not platform.has_cuda())


def shutdown() -> None:
    from megatron.core import parallel_state

    if dist.is_initialized():
        parallel_state.destroy_model_parallel()
        dist.destroy_process_group()
