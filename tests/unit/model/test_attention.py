"""Core attention against a hand-written causal softmax attention, per sequence, with GQA."""

import math

import pytest
import torch

from engine.model.attention import packed_attention


def naive_causal(q, k, v, scale):
    """q [s, hq, d], k/v [s, hkv, d]: softmax(q·kᵀ·scale + causal mask)·v, head i -> group i//r."""
    s, hq, _ = q.shape
    r = hq // k.shape[1]
    out = torch.empty_like(q)
    for h in range(hq):
        scores = q[:, h] @ k[:, h // r].T * scale
        scores = scores.masked_fill(torch.triu(torch.ones(s, s, dtype=torch.bool), 1),
                                    float("-inf"))
        out[:, h] = torch.softmax(scores, -1) @ v[:, h // r]
    return out


@pytest.mark.parametrize("hq, hkv", [(4, 4), (4, 2), (8, 1)])
def test_packed_attention_equals_each_sequence_alone(hq, hkv):
    torch.manual_seed(0)
    lengths = [5, 1, 9, 3]
    t, d = sum(lengths), 32
    q, k, v = (torch.randn(t, h, d, dtype=torch.float64) for h in (hq, hkv, hkv))
    cu = torch.tensor([0, 5, 6, 15, 18], dtype=torch.int32)
    scale = 1 / math.sqrt(d)
    out = packed_attention(q, k, v, cu, max(lengths), scale)
    for a, b in zip(cu[:-1].tolist(), cu[1:].tolist()):
        torch.testing.assert_close(out[a:b], naive_causal(q[a:b], k[a:b], v[a:b], scale),
                                   rtol=1e-10, atol=1e-10)


def test_no_attention_across_boundaries():
    torch.manual_seed(0)
    q, k, v = (torch.randn(8, 2, 32, dtype=torch.float64) for _ in range(3))
    cu = torch.tensor([0, 4, 8], dtype=torch.int32)
    before = packed_attention(q, k, v, cu, 4, 0.2)
    k2, v2 = k.clone(), v.clone()
    k2[:4] += 1.0  # change the first sequence only
    v2[:4] -= 1.0
    after = packed_attention(q, k2, v2, cu, 4, 0.2)
    torch.testing.assert_close(before[4:], after[4:], rtol=0, atol=0)
    assert not torch.allclose(before[:4], after[:4])
