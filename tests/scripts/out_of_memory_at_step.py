"""A training run whose GPU runs out of memory: `python -m engine.train ARGS`, except that the
forward-backward of step N raises torch's out-of-memory error with the text torch gives (the
allocation, the GPU's capacity and what was free). The run must end with the engine's one line.

    [torchrun ...] python -m tests.scripts.out_of_memory_at_step N RECIPE [key=value ...]
"""

import sys

import torch

import engine.train.step as step_module
from engine.cli import run_main
from engine.train.__main__ import main

TORCH_SAYS = ("CUDA out of memory. Tried to allocate 7.83 GiB. GPU 0 has a total capacity of "
              "79.19 GiB of which 3.06 GiB is free. Including non-PyTorch memory, this process "
              "has 76.12 GiB memory in use. If reserved but unallocated memory is large try "
              "setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  "
              "See documentation for Memory Management")


def fails_at(call: int):
    """engine.train.step's run_schedule, raising torch's out-of-memory error at its `call`-th
    training (not forward-only) call."""
    run_schedule, calls = step_module.run_schedule, [0]

    def run_or_fail(*args, forward_only, **kwargs):
        calls[0] += not forward_only
        if calls[0] == call and not forward_only:
            raise torch.OutOfMemoryError(TORCH_SAYS)
        return run_schedule(*args, forward_only=forward_only, **kwargs)

    return run_or_fail


if __name__ == "__main__":
    step_module.run_schedule = fails_at(int(sys.argv.pop(1)))
    sys.exit(run_main(main))
