"""Model FLOPs, counted as Megatron-LM's `num_floating_point_operations` counts them, and MFU.

Per token, for L layers of hidden size h (12 = 3 GEMM passes: forward, weight and data gradient;
× 2 GEMMs per block; × 2 FLOPs per multiply-add):

    12·L·h² · [ (1 + groups/heads) · q/h          QKV and output projections (GQA)
              + (ffn/h) · 3/2                    SwiGLU MLP (three ffn×h GEMMs)
              + V / (2·L·h) ]                    logits
  + 12·L·h² · (q/h) · s / (2h) · c                core attention over the token's own sequence

with q = heads × head_dim and s the length of the sequence the token is in (packed batches:
Σ sᵢ² over sequences). c = 1 counts the causal half of the score matrix (Megatron-LM and NeMo
today); c = 2 counts the full matrix (older NeMo benchmarks, TRL). Llama-3.1-8B at s = 8192:
51.5 GFLOP/token causal; 70B: 449.
"""

from __future__ import annotations

from engine.compat import platform
from engine.config import ModelConfig

# Dense bf16 / fp8 peak TFLOP/s per GPU (tensor cores, no sparsity), by device-name fragment.
PEAK_TFLOPS = {
    "H200": {"bf16": 989.0, "fp8": 1979.0},
    "H100": {"bf16": 989.0, "fp8": 1979.0},
    "A100": {"bf16": 312.0},
}


def _per_layer_unit(m: ModelConfig, vocab_size: int) -> tuple[float, float]:
    """(dense FLOPs per token, attention FLOPs per token per unit of sequence length)."""
    h, L = m.hidden_size, m.num_layers
    q_ratio = m.num_attention_heads * m.kv_channels / h
    base = 12.0 * L * h * h
    dense = base * ((1 + m.num_query_groups / m.num_attention_heads) * q_ratio
                    + (m.ffn_hidden_size / h) * 1.5
                    + vocab_size / (2.0 * L * h))
    attention_per_len = base * q_ratio / (2.0 * h)
    return dense, attention_per_len


def step_flops(m: ModelConfig, seq_lengths, vocab_size: int | None = None,
               causal: bool = True) -> float:
    """Training FLOPs (forward + backward) of one pass over sequences of these lengths."""
    dense, attention = _per_layer_unit(m, vocab_size or m.vocab_size)
    lengths = [int(s) for s in seq_lengths]
    return dense * sum(lengths) + attention * (1 if causal else 2) * sum(s * s for s in lengths)


def flops_per_token(m: ModelConfig, seq_len: int, vocab_size: int | None = None,
                    causal: bool = True) -> float:
    return step_flops(m, [seq_len], vocab_size, causal) / seq_len


def peak_tflops(device_name: str, precision: str = "bf16") -> float | None:
    """Peak dense TFLOP/s of a known GPU, or None (CPU, unknown device)."""
    for fragment, peaks in PEAK_TFLOPS.items():
        if fragment in device_name:
            return peaks.get(precision)
    return None


def device_peak_tflops(precision: str, override: float | None = None) -> float | None:
    """This host's peak for MFU: `logging.peak_tflops` when set, else the GPU's, None on a CPU."""
    if override:
        return override
    return peak_tflops(platform.device_name(), precision) if platform.has_cuda() else None
