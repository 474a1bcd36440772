"""The trainer's weights gathered into whole HF-named tensors (engine.rollout.refit) at the
launch's layout, for the tiny recipe's model with its seeded, layout-free init.

    [torchrun --nproc-per-node N] python -m tests.scripts.refit_weights [key=value ...]

Prints, from global rank 0, {"tensors": {HF name: [shape, sha256 of the bytes]}}: every layout
must print what one process prints.
"""

import argparse
import hashlib
import json

import torch.distributed as dist

from engine.cli import parse
from engine.launch.process_groups import shutdown
from engine.model.init import init_weights
from engine.rollout.refit import hf_weights
from tests.scripts.model_at_layout import model_at_layout
from tests.util import TINY


def main():
    _, overrides = parse(argparse.ArgumentParser())
    cfg, layout, model = model_at_layout(TINY, overrides)
    init_weights(model, cfg.model, cfg.seed)
    digests = {name: [list(t.shape), hashlib.sha256(t.contiguous().cpu().numpy().tobytes())
                      .hexdigest()] for name, t in hf_weights(model, cfg.model)}
    if dist.get_rank() == 0:
        print(json.dumps({"tensors": digests}), flush=True)
    shutdown()


if __name__ == "__main__":
    main()
