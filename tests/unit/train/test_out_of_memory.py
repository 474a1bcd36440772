"""Out of GPU memory, explained in one line: torch's own words without its boilerplate, where in
the engine, the micro-batch budget and the one the memory estimate fits, and what to change."""

import re

import pytest
import torch

from engine.config import Config, ModelConfig, SourceConfig
from engine.errors import UserError
from engine.launch.layout import Layout
from engine.metrics.memory import GIB, recipe_estimate
from engine.train.out_of_memory import OutOfMemory, describe, explain_out_of_memory
from tests.scripts.out_of_memory_at_step import TORCH_SAYS

LAYOUT = Layout(rank=3, world_size=8, tp=2, pp=1, dp=4, tp_rank=1, pp_rank=0, dp_rank=1,
                device=torch.device("cpu"))


def _cfg(stage: str = "sft") -> Config:
    cfg = Config(model=ModelConfig(num_layers=16, hidden_size=2048, ffn_hidden_size=8192,
                                   num_attention_heads=32, num_query_groups=8,
                                   vocab_size=128256), precision="bf16", stage=stage)
    cfg.data.sources = [SourceConfig(path="unused")]
    cfg.data.max_tokens_per_micro_batch = 131072
    cfg.parallel.tp = 2
    return cfg


def _raised_in_engine_code():
    """torch's error as raised from inside engine code (here: the memory estimate's call)."""
    try:
        recipe_estimate(_cfg(), "not a world size")
    except TypeError as e:
        error = torch.OutOfMemoryError(TORCH_SAYS)
        return error.with_traceback(e.__traceback__)
    raise AssertionError("expected a TypeError")


def test_the_line_names_rank_place_budgets_and_advice():
    cfg, error = _cfg(), _raised_in_engine_code()
    fits = recipe_estimate(cfg, 8).max_tokens_per_micro_batch(80 * GIB)
    assert 0 < fits < 131072
    line = describe(cfg, LAYOUT, error, 80 * GIB)
    assert re.match(r"rank 3: out of GPU memory in engine/\S+\.py:\d+ \(\w+\): CUDA out of "
                    r"memory\. Tried", line), line
    assert "Tried to allocate 7.83 GiB. GPU 0 has a total capacity of 79.19 GiB" in line
    assert "expandable_segments" not in line and "See documentation" not in line
    assert "data.max_tokens_per_micro_batch=131072 tokens" in line
    assert f"fits {fits} on this GPU's 80.0 GiB" in line
    assert line.endswith("lower data.max_tokens_per_micro_batch, or raise parallel.tp or "
                         "parallel.pp, or set parallel.distributed_optimizer=true")
    assert "\n" not in line


def test_rlvr_also_names_the_engines_share_and_states_that_do_not_fit_say_so():
    cfg = _cfg("rlvr")
    line = describe(cfg, LAYOUT, torch.OutOfMemoryError(TORCH_SAYS), 4 * GIB)
    assert " in engine/" not in line  # raised outside the engine's code: no place named
    assert "the model states alone do not fit this GPU's 4.0 GiB" in line
    assert line.endswith(f"or lower rollout.gpu_memory_fraction "
                         f"({cfg.rollout.gpu_memory_fraction})")


def test_the_context_turns_only_out_of_memory_into_a_user_error():
    with pytest.raises(OutOfMemory) as caught:
        with explain_out_of_memory(_cfg(), LAYOUT):
            raise torch.OutOfMemoryError(TORCH_SAYS)
    assert isinstance(caught.value, UserError) and caught.value.__cause__ is None
    with pytest.raises(RuntimeError, match="something else"):
        with explain_out_of_memory(_cfg(), LAYOUT):
            raise RuntimeError("something else")
