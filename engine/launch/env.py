"""Rank and world size from the launcher (torchrun, Slurm `srun`, or a plain single process),
read from the environment without touching torch.distributed, so a recipe can be validated
against the world size before any process group exists.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class LaunchEnv:
    rank: int
    world_size: int
    local_rank: int
    launcher: str  # torchrun | slurm | single


def launch_env() -> LaunchEnv:
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return LaunchEnv(int(env["RANK"]), int(env["WORLD_SIZE"]),
                         int(env.get("LOCAL_RANK", 0)), "torchrun")
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return LaunchEnv(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]),
                         int(env.get("SLURM_LOCALID", 0)), "slurm")
    return LaunchEnv(0, 1, 0, "single")


def slurm_master() -> tuple[str, str]:
    """Master address: first host of the allocation; port derived from the job id."""
    addr = os.environ.get("MASTER_ADDR")
    if addr is None:
        nodes = os.environ["SLURM_JOB_NODELIST"]
        hosts = subprocess.run(["scontrol", "show", "hostnames", nodes], check=True,
                               capture_output=True, text=True).stdout.split()
        addr = hosts[0]
    port = os.environ.get("MASTER_PORT") or str(20000 + int(os.environ["SLURM_JOB_ID"]) % 40000)
    return addr, port
