"""Model pieces: Llama-3 RoPE scaling, vocabulary padding, layout-free init, Qwen2 biases."""

import math

import pytest
import torch

from engine.config import Config, ModelConfig, RopeScalingConfig, SourceConfig
from engine.model.build import build_model, llama3_inv_freq
from engine.model.init import init_weights


def test_llama3_rope_scaling_by_hand():
    scaling = RopeScalingConfig(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                original_max_position_embeddings=8192)
    base = llama3_inv_freq(128, 500000.0, None)
    scaled = llama3_inv_freq(128, 500000.0, scaling)
    assert base[0] == 1.0 and base[1] == pytest.approx(500000.0 ** (-2 / 128))
    for f, g in zip(base.tolist(), scaled.tolist()):
        wavelen = 2 * math.pi / f
        if wavelen < 8192 / 4:  # high frequencies: unchanged
            assert g == pytest.approx(f, rel=1e-6)
        elif wavelen > 8192 / 1:  # low frequencies: divided by the factor
            assert g == pytest.approx(f / 8, rel=1e-6)
        else:  # in between: interpolated
            smooth = (8192 / wavelen - 1) / (4 - 1)
            assert g == pytest.approx((1 - smooth) * f / 8 + smooth * f, rel=1e-5)


@pytest.mark.parametrize("vocab, tp, expected", [(262, 1, 384), (262, 2, 384), (128256, 8, 128256),
                                                 (151936, 4, 151936), (100, 3, 384)])
def test_padded_vocab_size(vocab, tp, expected):
    assert ModelConfig(vocab_size=vocab).padded_vocab_size(tp) == expected


def _cfg(**model):
    cfg = Config(model=ModelConfig(**{"num_layers": 2, "hidden_size": 64, "ffn_hidden_size": 96,
                                      "num_attention_heads": 2, "num_query_groups": 1,
                                      "head_dim": 32, "vocab_size": 262, **model}))
    cfg.data.sources = [SourceConfig(path="unused")]
    return cfg


def _build(cfg):
    return build_model(cfg, first_stage=True, last_stage=True, device=torch.device("cpu"))


def test_init_is_deterministic_and_follows_conventions(single_process):
    cfg = _cfg()
    a, b = _build(cfg), _build(cfg)
    init_weights(a, cfg.model, seed=3)
    init_weights(b, cfg.model, seed=3)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), name
    emb = a.embedding.word_embeddings.weight
    assert torch.all(emb[262:] == 0) and emb[:262].std().item() == pytest.approx(0.02, rel=0.1)
    assert torch.all(a.decoder.final_layernorm.weight == 1)
    proj = a.decoder.layers[0].self_attention.linear_proj.weight
    assert proj.std().item() == pytest.approx(0.02 / math.sqrt(4), rel=0.1)
    init_weights(b, cfg.model, seed=4)
    assert not torch.equal(a.embedding.word_embeddings.weight, b.embedding.word_embeddings.weight)


def test_qwen2_has_qkv_bias_and_untied_output(single_process):
    cfg = _cfg(arch="qwen2", qkv_bias=True, tie_word_embeddings=False)
    model = _build(cfg)
    init_weights(model, cfg.model, seed=0)
    names = dict(model.named_parameters())
    assert "decoder.layers.0.self_attention.linear_qkv.bias" in names
    assert "decoder.layers.0.self_attention.linear_proj.bias" not in names
    assert "output_layer.weight" in names
    assert not torch.equal(names["output_layer.weight"], names["embedding.word_embeddings.weight"])
