"""The RLVR loop when a rollout engine dies: `python -m engine.train ARGS`, except that the Nth
time the engine is asked to generate, its model executor fails (as a worker that crashed or ran
out of memory does: vLLM raises, and the engine is unusable from then on). The loop must rebuild
the engine from the current weights, generate again, and finish with every step counted once.

    python -m tests.scripts.rlvr_engine_dies N RECIPE [key=value ...]
"""

import sys

from engine.cli import run_main
from engine.rollout.vllm_engine import RolloutEngine
from engine.train.__main__ import main



def dies_at(call: int):
    """RolloutEngine.generate, with the model executor broken before the `call`-th call."""
    generate, calls = RolloutEngine.generate, [0]

    def executor_died(*args, **kwargs):
        raise RuntimeError("the model executor died")

    def generate_or_die(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == call:
            self.llm.llm_engine.engine_core.engine_core.model_executor.execute_model = \
                executor_died
        return generate(self, *args, **kwargs)

    return generate_or_die


if __name__ == "__main__":  # spawned reward workers re-import this module: nothing at import
    RolloutEngine.generate = dies_at(int(sys.argv.pop(1)))
    sys.exit(run_main(main))
