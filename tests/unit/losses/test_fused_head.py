"""Every language loss gives the same loss, metrics and gradients (hidden states and output
weight) whether it gets the logits hidden @ W.T or a fused head's `HiddenStates` (fp64, one
process; the tensor-parallel case is tests/distributed/test_parity.py's)."""

import numpy as np
import pytest
import torch

from engine.data.packing import collate
from engine.losses.cross_entropy import label_logprobs, token_cross_entropy
from engine.losses.registry import get_loss
from engine.model.head import HiddenStates

VOCAB, PADDED, HIDDEN = 6, 8, 5


def _micro_batch(kind: str):
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, VOCAB, size=n) for n in (5, 4, 6, 3)]
    masks = [np.array([0, 1, 1, 1.0]), np.array([0, 0, 1.0]), np.array([0, 1, 1, 1, 1.0]),
             np.array([1, 1.0])]
    if kind == "dpo_norm":
        pairs = {"reference_logps": [-3.0, -2.5, -4.0, -1.0], "item_weights": [0.25] * 4}
        return collate(seqs, masks, 0, 4, sequence_data=pairs)
    if kind.startswith("grpo"):
        per_token = {key: [rng.normal(size=len(m)) - (2 if key != "advantages" else 0)
                           for m in masks] for key in ("old_logprobs", "ref_logprobs",
                                                       "advantages", "vllm_logprobs")}
        per_token["gap_weights"] = [m / sum(m.sum() for m in masks) for m in masks]
        return collate(seqs, masks, 0, 4, token_data=per_token)
    return collate(seqs, [0.3 * m for m in masks], 0, 4)


def _loss(kind: str):
    options = {"dpo_norm": dict(beta=0.5), "grpo": dict(kl_coef=0.1, temperature=0.7),
               "grpo_on_policy": dict(kl_coef=0.1, temperature=0.7, on_policy=True),
               "cross_entropy": {}}[kind]
    return get_loss(kind.removesuffix("_on_policy"), real_vocab_size=VOCAB, **options)


def _leaves():
    gen = torch.Generator().manual_seed(3)
    hidden = torch.randn(20, HIDDEN, generator=gen, dtype=torch.float64)
    weight = torch.randn(PADDED, HIDDEN, generator=gen, dtype=torch.float64)
    return hidden.requires_grad_(), weight.requires_grad_()


@pytest.mark.parametrize("kind", ["cross_entropy", "dpo_norm", "grpo", "grpo_on_policy"])
def test_a_fused_head_equals_the_logits(kind, single_process):
    mb = _micro_batch(kind)
    loss_fn = _loss(kind)
    results = []
    for fused in (False, True):
        hidden, weight = _leaves()
        hidden_rows = hidden[:len(mb.tokens)]
        out = (HiddenStates(hidden_rows, weight, 0, None) if fused
               else hidden_rows @ weight.t())
        loss, count, metrics = loss_fn(mb, out)
        loss.backward()
        results.append((loss.detach(), count, metrics, hidden.grad, weight.grad))
    (loss, count, metrics, d_hidden, d_weight), fused = results
    torch.testing.assert_close(fused[0].double(), loss.double(), rtol=1e-6, atol=1e-6)
    assert fused[1] == count
    for key, value in metrics.items():
        torch.testing.assert_close(fused[2][key].double(), value.double(), rtol=1e-5,
                                   atol=1e-6, msg=key)
    torch.testing.assert_close(fused[3], d_hidden, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(fused[4], d_weight, rtol=1e-5, atol=1e-7)
    assert d_weight.abs().sum() > 0 and (fused[4][VOCAB:] == 0).all()  # padding rows


def test_log_probs_of_a_fused_head_equal_the_logits(single_process):
    hidden, weight = _leaves()
    labels = torch.tensor([1, 5, -100, 0] * 5)
    got = label_logprobs(HiddenStates(hidden, weight, 0, None), labels, VOCAB)
    expected = label_logprobs(hidden @ weight.t(), labels, VOCAB)
    torch.testing.assert_close(got.double(), expected.double())
    assert (got[labels == -100] == 0).all()


def test_the_fused_kernel_refuses_logits(single_process):
    with pytest.raises(ValueError, match="fused needs the model's hidden states"):
        token_cross_entropy(torch.randn(3, PADDED), torch.tensor([1, 2, 3]), VOCAB, "fused")
