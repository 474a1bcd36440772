"""The backend switch: `train.transformer_impl` picks the layer spec (auto takes TE where it runs;
local always the local layers), and the fusions follow the host: megatron's compiled SwiGLU and
residual add on CUDA for either spec, RoPE fused only by TE."""

import pytest

from engine.compat import platform
from engine.config import Config
from engine.model import spec
from engine.model.norm import RMSNorm


@pytest.mark.parametrize("impl, has_te, expected", [
    ("auto", False, False), ("auto", True, True), ("local", True, False),
    ("transformer_engine", True, True)])
def test_the_impl_picks_the_spec(monkeypatch, impl, has_te, expected):
    monkeypatch.setattr(platform, "has_transformer_engine", lambda: has_te)
    cfg = Config()
    cfg.train.transformer_impl = impl
    assert spec.uses_transformer_engine(cfg) is expected


def test_the_local_spec_has_the_engines_norm(single_process):
    cfg = Config()
    block = spec.layer_spec(spec.transformer_config(cfg), transformer_engine=False)
    assert block.layer_norm is RMSNorm
    assert block.layer_specs[0].submodules.input_layernorm is RMSNorm


@pytest.mark.parametrize("cuda", [False, True])
def test_fusions_follow_the_host(monkeypatch, cuda):
    monkeypatch.setattr(platform, "has_cuda", lambda: cuda)
    monkeypatch.setattr(platform, "has_transformer_engine", lambda: False)
    config = spec.transformer_config(Config())
    assert config.bias_activation_fusion is cuda and config.bias_dropout_fusion is cuda
    assert config.apply_rope_fusion is False  # no TE: engine.model.rope
