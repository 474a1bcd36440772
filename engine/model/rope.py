"""Rotary embeddings of a packed (THD) micro-batch without reading the packing on the host.

megatron's unfused THD path (the local layer spec; TE's layers fuse RoPE themselves) splits the
tokens per sequence, which reads `cu_seqlens` on the host (`.tolist()`: a device
synchronization per call, two per layer) and launches kernels per sequence. Here each token's
position within its sequence comes from `cu_seqlens` on the device (positions restart at 0 for
every sequence: the engine's packed format), and all tokens rotate at once by
`kernels.rope.rope` (Llama's rotation over the whole head: one Triton kernel each way on CUDA)
or, for the variants it does not cover (interleaved, MLA, partial rotary), by megatron's own
BSHD rotation of the gathered frequencies: the same arithmetic as megatron's, so the same
values. Every layer of a forward pass rotates its queries and keys with the same `cu_seqlens`
and `freqs` tensors, so the positions and the cos / sin tables are computed once per forward
pass (kept for the tensors last seen), not twice per layer: a dozen small kernels fewer per
rotation. `engine.compat.megatron_fixes` puts it in place of megatron's function.
"""

from __future__ import annotations

import weakref

import torch
from megatron.core.models.common.embeddings.rope_utils import _apply_rotary_pos_emb_bshd

from kernels.rope import rope, rope_tables


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
    if not rotary_interleaved and not multi_latent_attention and freqs.shape[-1] == t.shape[-1]:
        return rope(t, *_LAST_FORWARD.inputs(cu_seqlens, freqs, t, mscale))
    positions = positions_in_sequences(cu_seqlens, t.shape[0]).clamp(max=freqs.shape[0] - 1)
    freqs = freqs[positions]
    return _apply_rotary_pos_emb_bshd(t.unsqueeze(1), freqs, rotary_interleaved=rotary_interleaved,
                                      multi_latent_attention=multi_latent_attention,
                                      mscale=mscale).squeeze(1)


class _RotaryInputs:
    """(positions, cos, sin) of the (cu_seqlens, freqs) tensors last seen, for the token count,
    dtype and mscale last asked; recomputed for other tensor objects (weak references: a
    tensor is never kept alive here, and a new one at a freed one's address is a new key)."""

    def __init__(self):
        self.key, self.value = None, None

    def inputs(self, cu_seqlens: torch.Tensor, freqs: torch.Tensor, t: torch.Tensor,
               mscale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        others = (t.shape[0], t.dtype, mscale)
        if self.key is not None:
            cu_ref, freqs_ref, old = self.key
            if cu_ref() is cu_seqlens and freqs_ref() is freqs and old == others:
                return self.value
        positions = positions_in_sequences(cu_seqlens, t.shape[0]).clamp(max=freqs.shape[0] - 1)
        cos, sin = rope_tables(freqs.reshape(freqs.shape[0], -1), t.dtype, mscale)
        self.key = (weakref.ref(cu_seqlens), weakref.ref(freqs), others)
        self.value = positions, cos, sin
        return self.value


_LAST_FORWARD = _RotaryInputs()
