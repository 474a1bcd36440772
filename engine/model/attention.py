"""Core attention for megatron's local layer spec: causal, GQA, packed-sequence (THD) aware.

Used wherever TransformerEngine is not (CPU hosts, GPUs without TE). megatron's own
`DotProductAttention` rejects packed sequences and materializes fp32 [b·h, s, s] scores, so the
engine brings its own:

- packed THD input (`packed_seq_params.qkv_format == "thd"`, q [t, heads, d], k/v [t, groups, d]):
  on CUDA, flash-attn's varlen kernel when it is installed, else torch's own
  (`torch.nn.attention.varlen.varlen_attn`, FlashAttention-2 inside torch: bf16/fp16, no
  dropout); otherwise torch SDPA run on each sequence of `cu_seqlens` alone (which reads the
  boundaries on the host), so no token attends across a sequence boundary;
- padded SBHD input (q [s, b, heads, d]): one causal SDPA call.

Query head i attends with key/value group i // (heads / groups), megatron's grouped layout.
"""

from __future__ import annotations

import functools
import inspect

import torch
import torch.nn.functional as F
from megatron.core.transformer.module import MegatronModule

from engine.compat import platform


class CoreAttention(MegatronModule):
    """Drop-in for megatron's `DotProductAttention` (same constructor and forward)."""

    def __init__(self, config, layer_number, attn_mask_type, attention_type,
                 attention_dropout=None, softmax_scale=None, cp_comm_type=None,
                 pg_collection=None):
        super().__init__(config=config)
        if config.context_parallel_size != 1:
            raise ValueError("context parallelism needs TransformerEngine's attention")
        self.dropout_p = (config.attention_dropout if attention_dropout is None
                          else attention_dropout)
        self.softmax_scale = softmax_scale or config.kv_channels ** -0.5

    def forward(self, query, key, value, attention_mask, attn_mask_type=None,
                attention_bias=None, packed_seq_params=None):
        if attention_bias is not None:
            raise ValueError("attention bias is not supported")
        dropout_p = self.dropout_p if self.training else 0.0
        if packed_seq_params is not None and packed_seq_params.qkv_format == "thd":
            out = packed_attention(query, key, value, packed_seq_params.cu_seqlens_q,
                                   packed_seq_params.max_seqlen_q, self.softmax_scale, dropout_p)
            return out.reshape(out.shape[0], -1)
        # [s, b, h, d] -> [b, h, s, d]
        q, k, v = (x.permute(1, 2, 0, 3) for x in (query, key, value))
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True,
                                             scale=self.softmax_scale, enable_gqa=True)
        s, b = query.shape[0], query.shape[1]
        return out.permute(2, 0, 1, 3).reshape(s, b, -1)


def packed_attention(q, k, v, cu_seqlens, max_seqlen, scale, dropout_p=0.0):
    """Causal attention within each sequence of a packed batch: q [t, hq, d], k/v [t, hkv, d]."""
    if q.is_cuda and platform.has_flash_attn():
        from flash_attn import flash_attn_varlen_func

        cu = cu_seqlens.to(device=q.device, dtype=torch.int32)
        return flash_attn_varlen_func(q, k, v, cu, cu, int(max_seqlen), int(max_seqlen),
                                      dropout_p=dropout_p, softmax_scale=scale, causal=True)
    if (q.is_cuda and dropout_p == 0.0 and q.dtype in (torch.bfloat16, torch.float16)
            and _torch_varlen() is not None):
        varlen_attn, gqa = _torch_varlen()
        cu = cu_seqlens.to(device=q.device, dtype=torch.int32)
        return varlen_attn(q, k, v, cu, cu, int(max_seqlen), int(max_seqlen), scale=scale,
                           window_size=(-1, 0), **gqa)  # (-1, 0): causal
    bounds = cu_seqlens.tolist()
    pieces = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        # [len, h, d] -> [1, h, len, d]
        qs, ks, vs = (x[start:end].transpose(0, 1).unsqueeze(0) for x in (q, k, v))
        o = F.scaled_dot_product_attention(qs, ks, vs, dropout_p=dropout_p, is_causal=True,
                                           scale=scale, enable_gqa=True)
        pieces.append(o.squeeze(0).transpose(0, 1))
    return torch.cat(pieces)


@functools.cache
def _torch_varlen():
    """(torch's varlen_attn, the keyword arguments that enable GQA) where this torch has it,
    else None. torch 2.11 shares key/value groups by itself; 2.13 asks for `enable_gqa=True`."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    takes_gqa = "enable_gqa" in inspect.signature(varlen_attn).parameters
    return varlen_attn, {"enable_gqa": True} if takes_gqa else {}
