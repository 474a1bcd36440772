"""Markers by folder (unit/, distributed/, e2e/, gpu/), the GPU skip, and shared fixtures: a
one-process torch.distributed + megatron parallel state, tiny Hugging Face models."""

from pathlib import Path

import pytest
import torch
import torch.distributed as dist

KINDS = ("unit", "distributed", "e2e", "gpu")


def pytest_collection_modifyitems(config, items):
    root = Path(__file__).parent
    for item in items:
        kind = Path(item.fspath).relative_to(root).parts[0]
        if kind in KINDS:
            item.add_marker(getattr(pytest.mark, kind))
        if kind == "gpu" and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))


@pytest.fixture(scope="session")
def single_process():
    """World of one (gloo), megatron TP=PP=1, the CPU platform layer active where CUDA is not and
    the engine's megatron fixes applied, as `engine.launch.process_groups` sets them up."""
    from megatron.core import parallel_state

    from engine.compat import cpu, megatron_fixes

    cpu.activate()
    megatron_fixes.apply()
    if not dist.is_initialized():
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    if not parallel_state.model_parallel_is_initialized():
        parallel_state.initialize_model_parallel(1, 1)
    yield


@pytest.fixture(scope="session")
def hf_models(tmp_path_factory):
    """{shape: directory} of tiny random HF models (tests/hf_models.py)."""
    from tests.hf_models import SHAPES, make_hf_model

    root = tmp_path_factory.mktemp("hf")
    return {shape: make_hf_model(root / shape, shape) for shape in SHAPES}


@pytest.fixture(scope="session")
def tiny_sft_run(tmp_path_factory):
    """A run dir of the tiny SFT recipe trained for one epoch (125 steps; a few minutes on 2
    CPU cores), shared by the tests that need a model that answers."""
    from tests.util import ROOT, train

    run = tmp_path_factory.mktemp("tiny-sft")
    train(run, ["train.epochs=1"], recipe=ROOT / "recipes" / "tiny" / "sft.yaml")
    return run
