"""Rotary embeddings of a packed (THD) micro-batch without reading the packing on the host.

megatron's unfused THD path (the local layer spec; TE's layers fuse RoPE themselves) splits the
tokens per sequence, which reads `cu_seqlens` on the host (`.tolist()`: a device
synchronization per call, two per layer) and launches kernels per sequence. Here each token's
position within its sequence comes from `cu_seqlens` on the device (positions restart at 0 for
every sequence: the engine's packed format), the frequencies are gathered for all tokens at
once, and megatron's own BSHD rotation applies them: the same arithmetic, so the same values.
`engine.compat.megatron_fixes` puts it in place of megatron's function.
"""

from __future__ import annotations

import torch
from megatron.core.models.common.embeddings.rope_utils import _apply_rotary_pos_emb_bshd


def positions_in_sequences(cu_seqlens: torch.Tensor, tokens: int) -> torch.Tensor:
    """[tokens] int64: each token's index within its sequence of the pack `cu_seqlens`."""
    bounds = cu_seqlens.to(torch.int64)
    index = torch.arange(tokens, device=cu_seqlens.device)
    sequence = torch.searchsorted(bounds[1:], index, right=True).clamp(max=len(bounds) - 2)
    return index - bounds[sequence]


def packed_rotary(t: torch.Tensor, cu_seqlens: torch.Tensor, freqs: torch.Tensor,
                  rotary_interleaved: bool = False, multi_latent_attention: bool = False,
                  mscale: float = 1.0) -> torch.Tensor:
    """RoPE of t [tokens, heads, d] with freqs [max_seqlen, 1, 1, d] at each token's position
    within its sequence (a padding segment longer than every sequence, whose outputs nothing
    reads, reuses the last frequencies past the end)."""
    positions = positions_in_sequences(cu_seqlens, t.shape[0]).clamp(max=freqs.shape[0] - 1)
    freqs = freqs[positions]
    return _apply_rotary_pos_emb_bshd(t.unsqueeze(1), freqs, rotary_interleaved=rotary_interleaved,
                                      multi_latent_attention=multi_latent_attention,
                                      mscale=mscale).squeeze(1)
