"""Packed RoPE on the device: each token's position within its sequence, the same values as
megatron's per-sequence THD function (bit for bit in fp32 and bf16, padding segment included;
interleaved through megatron's own rotation), and no read of a device value on the host, where
megatron's reads several; after the engine's megatron fixes, megatron's unfused THD path is
this one."""

import pytest
import torch

from engine.model.rope import packed_rotary, positions_in_sequences
from tests.dispatch_probes import HostReads

CU_SEQLENS = torch.tensor([0, 5, 6, 13, 16], dtype=torch.int32)  # the last segment: padding


def _inputs(dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    t = torch.randn(16, 4, 32, generator=gen).to(dtype)
    inv_freq = 1.0 / 500000 ** (torch.arange(0, 32, 2).float() / 32)
    angles = torch.outer(torch.arange(7).float(), inv_freq)  # max_seqlen 7
    freqs = torch.cat([angles, angles], dim=-1)[:, None, None, :]
    return t, freqs


def test_positions_restart_at_every_sequence():
    assert positions_in_sequences(CU_SEQLENS, 16).tolist() == [
        0, 1, 2, 3, 4, 0, 0, 1, 2, 3, 4, 5, 6, 0, 1, 2]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_equals_megatrons_per_sequence_function_without_host_reads(single_process, dtype):
    from megatron.core import parallel_state
    from megatron.core.models.common.embeddings.rope_utils import _apply_rotary_pos_emb_thd

    from engine.compat import megatron_fixes

    original = getattr(_apply_rotary_pos_emb_thd, "__wrapped__", _apply_rotary_pos_emb_thd)
    t, freqs = _inputs(dtype)
    with HostReads() as ours:
        got = packed_rotary(t, CU_SEQLENS, freqs)
    with HostReads() as megatrons:
        want = original(t, CU_SEQLENS, freqs,
                        cp_group=parallel_state.get_context_parallel_group())
    assert torch.equal(got, want)
    assert ours.count == 0 and megatrons.count > 0
    alone = packed_rotary(t[6:13], torch.tensor([0, 7]), freqs)  # one sequence: positions 0..6
    assert torch.equal(got[6:13], alone)

    megatron_fixes.apply()
    from megatron.core.models.common.embeddings import rope_utils

    assert rope_utils._apply_rotary_pos_emb_thd.__wrapped__ is original
    with HostReads() as patched:
        routed = rope_utils._apply_rotary_pos_emb_thd(
            t, CU_SEQLENS, freqs, cp_group=parallel_state.get_context_parallel_group())
    assert torch.equal(routed, want) and patched.count == 0


def test_interleaved_rotation_takes_megatrons_rotation(single_process):
    from megatron.core import parallel_state
    from megatron.core.models.common.embeddings.rope_utils import _apply_rotary_pos_emb_thd

    original = getattr(_apply_rotary_pos_emb_thd, "__wrapped__", _apply_rotary_pos_emb_thd)
    t, freqs = _inputs()
    want = original(t, CU_SEQLENS, freqs, rotary_interleaved=True,
                    cp_group=parallel_state.get_context_parallel_group())
    got = packed_rotary(t, CU_SEQLENS, freqs, rotary_interleaved=True)
    assert torch.equal(got, want) and not torch.equal(got, packed_rotary(t, CU_SEQLENS, freqs))


def test_a_padding_segment_longer_than_every_sequence_is_no_error():
    """2 real tokens and 8 of padding with max_seqlen 2: the padding reuses the last frequency."""
    t, freqs = _inputs()
    out = packed_rotary(t[:10], torch.tensor([0, 2, 10], dtype=torch.int32), freqs[:2])
    assert out.shape == (10, 4, 32)
    assert torch.equal(out[:2], packed_rotary(t[:2], torch.tensor([0, 2]), freqs[:2]))


def test_positions_and_tables_are_computed_once_per_forward_and_never_stale():
    """Every layer passes the same cu_seqlens and freqs: computed once. Another packing of as
    many tokens (a new tensor) gets its own positions."""
    from engine.model import rope

    t, freqs = _inputs()
    first = packed_rotary(t, CU_SEQLENS, freqs)
    kept = rope._LAST_FORWARD.value
    assert torch.equal(packed_rotary(t, CU_SEQLENS, freqs), first)
    assert rope._LAST_FORWARD.value is kept  # the second layer reuses them
    other = torch.tensor([0, 9, 16], dtype=torch.int32)
    got = packed_rotary(t, other, freqs)
    assert rope._LAST_FORWARD.value is not kept
    assert torch.equal(got[9:], packed_rotary(t[9:], torch.tensor([0, 7]), freqs))
    assert not torch.equal(got, first)
