"""Model FLOPs against Megatron-LM's formula on the published Llama-3.1 shapes, by hand."""

import pytest

from engine.recipe import load_recipe
from engine.metrics.flops import flops_per_token, peak_tflops, step_flops
from tests.util import ROOT


def _model(size):
    return load_recipe(ROOT / f"recipes/tulu3/llama3.1-{size}/sft.yaml").model


def test_llama31_8b_at_8192():
    m = _model("8b")
    causal, full = flops_per_token(m, 8192), flops_per_token(m, 8192, causal=False)
    # 12·L·h² · [(1 + 8/32) + 1 (causal s/2h) + 14336/4096·1.5 + 128256/(2·32·4096)]
    by_hand = 12 * 32 * 4096**2 * (1.25 + 1.0 + 5.25 + 128256 / (2 * 32 * 4096))
    assert causal == pytest.approx(by_hand, rel=1e-12)
    assert causal / 1e9 == pytest.approx(51.5, abs=0.05)
    assert full - causal == pytest.approx(12 * 32 * 4096**2 * 1.0, rel=1e-12)
    assert full / 1e9 == pytest.approx(57.9, abs=0.05)


def test_llama31_70b_at_8192():
    m = _model("70b")
    causal, full = flops_per_token(m, 8192), flops_per_token(m, 8192, causal=False)
    assert causal / 1e9 == pytest.approx(449, abs=0.5)
    assert full - causal == pytest.approx(12 * 80 * 8192**2 * 0.5, rel=1e-12)


def test_packed_attention_counts_each_sequence_alone():
    m = _model("8b")
    packed = step_flops(m, [4096, 2048, 2048])
    alone = sum(step_flops(m, [s]) for s in (4096, 2048, 2048))
    assert packed == pytest.approx(alone, rel=1e-12)
    assert packed < step_flops(m, [8192])  # less attention than one 8k sequence


def test_peaks():
    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_tflops("NVIDIA H200", "fp8") == 1979.0
    assert peak_tflops("cpu") is None
