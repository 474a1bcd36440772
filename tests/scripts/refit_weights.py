"""The trainer's weights gathered into whole HF-named tensors (engine.rollout.refit) at the
launch's layout, for the tiny recipe's model with its seeded, layout-free init.

    [torchrun --nproc-per-node N] python -m tests.scripts.refit_weights [key=value ...]

Prints, from global rank 0, {"tensors": {HF name: [shape, sha256 of the bytes]}, "received":
[bytes per global rank], "engine_bytes": the whole engine tensors' bytes}: every layout must
print the tensors one process prints. "received" counts what each rank receives through the
refit's collectives, at the least any algorithm can receive for a broadcast (the tensor, except
at its source) and an all-gather (the others' parts), and at a ring's 2·(n−1)/n of the tensor
for an all-reduce.
"""

import argparse
import hashlib
import json

import torch.distributed as dist

import engine.rollout.refit as refit
from engine.cli import parse
from engine.launch.process_groups import shutdown
from engine.model.init import init_weights
from tests.scripts.model_at_layout import model_at_layout
from tests.util import TINY


def main():
    _, overrides = parse(argparse.ArgumentParser())
    cfg, layout, model = model_at_layout(TINY, overrides)
    init_weights(model, cfg.model, cfg.seed)
    received, engine_bytes = _count_received(), _count_gathered()
    digests = {name: [list(t.shape), hashlib.sha256(t.contiguous().cpu().numpy().tobytes())
                      .hexdigest()] for name, t in refit.hf_weights(model, cfg.model)}
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, received[0])
    if dist.get_rank() == 0:
        print(json.dumps({"tensors": digests, "received": everyone,
                          "engine_bytes": engine_bytes[0]}), flush=True)
    shutdown()


def _count_received() -> list[int]:
    """Wrap the collectives the refit module calls; the count grows as they run."""
    count, real = [0], refit.dist

    class Counting:
        def __getattr__(self, name):
            return getattr(real, name)

        def broadcast(self, tensor, src, group=None):
            count[0] += 0 if real.get_rank() == src else tensor.nbytes
            return real.broadcast(tensor, src=src, group=group)

        def all_gather_into_tensor(self, output, tensor, group=None):
            count[0] += output.nbytes - tensor.nbytes
            return real.all_gather_into_tensor(output, tensor, group=group)

        def all_reduce(self, tensor, op=real.ReduceOp.SUM, group=None):
            n = real.get_world_size(group)
            count[0] += 2 * (n - 1) * tensor.nbytes // n
            return real.all_reduce(tensor, op=op, group=group)

    refit.dist = Counting()
    return count


def _count_gathered() -> list[int]:
    """Wrap the refit's gather of one engine tensor; the count of their bytes grows as it runs."""
    count, gather = [0], refit._gather

    def counting(*args):
        whole = gather(*args)
        count[0] += whole.nbytes
        return whole

    refit._gather = counting
    return count


if __name__ == "__main__":
    main()
