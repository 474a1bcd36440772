"""GRPO's pieces against hand computations: group-relative advantages, the clipped surrogate,
the three KL estimators, and the registered loss on a packed micro-batch against the formula,
with its vLLM–trainer gap; on-policy (old log-probs from its own forward) it equals the loss
given those log-probs, value and gradient; without reference log-probs its KL is to the old
policy."""

import math

import numpy as np
import pytest
import torch

from engine.data.packing import collate
from engine.losses.grpo import clipped_surrogate, group_advantages, kl_estimate
from engine.losses.registry import get_loss


def test_group_advantages_standard_and_centered():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    std = math.sqrt(0.25 * 0.75)  # population std of {1, 0, 0, 0}
    expected = [0.75 / std] + [-0.25 / std] * 3 + [0.0] * 4  # a group of equal rewards: 0
    assert group_advantages(rewards, 4).tolist() == pytest.approx(expected, rel=1e-6)
    centered = group_advantages(rewards, 4, "centered").tolist()
    assert centered == pytest.approx([0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="8 rewards do not form groups of 3"):
        group_advantages(rewards, 3)
    with pytest.raises(ValueError, match="normalization 'rank' is not one of standard"):
        group_advantages(rewards, 4, "rank")


@pytest.mark.parametrize("ratio, advantage, loss, clipped", [
    (1.5, 1.0, -1.2, True),    # gain capped at 1 + ε
    (0.5, 1.0, -0.5, False),   # the unclipped term is smaller
    (0.5, -1.0, 0.8, True),    # a loss capped at 1 − ε
    (1.5, -1.0, 1.5, False),
    (1.0, 2.0, -2.0, False),   # on-policy: −A
])
def test_clipped_surrogate(ratio, advantage, loss, clipped):
    old = torch.tensor([-1.0], dtype=torch.float64)
    got, was_clipped = clipped_surrogate(old + math.log(ratio), old,
                                         torch.tensor([advantage], dtype=torch.float64), 0.2, 0.2)
    assert got.item() == pytest.approx(loss)
    assert was_clipped.item() is clipped


def test_kl_estimators():
    logp = torch.tensor([math.log(0.5), math.log(0.3)], dtype=torch.float64)
    ref = torch.tensor([math.log(0.25), math.log(0.3)], dtype=torch.float64)
    d = math.log(0.5)  # ref − logp of the first token; the second agrees
    assert kl_estimate(logp, ref, "k1").tolist() == pytest.approx([-d, 0.0])
    assert kl_estimate(logp, ref, "k2").tolist() == pytest.approx([0.5 * d * d, 0.0])
    assert kl_estimate(logp, ref, "k3").tolist() == pytest.approx([math.exp(d) - d - 1, 0.0])
    with pytest.raises(ValueError, match="KL estimator 'k4'"):
        kl_estimate(logp, ref, "k4")


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_registered_loss_equals_its_formula(single_process, temperature):
    """On the distribution the answers were sampled from: softmax(logits / T)."""
    torch.manual_seed(0)
    vocab = 7
    seqs = [np.array([1, 2, 3, 4]), np.array([5, 6, 1])]
    weights = [np.array([0.0, 0.2, 0.2]), np.array([0.3, 0.3])]  # prompt token untrained
    old = [np.array([0.0, -1.5, -2.0]), np.array([-1.0, -3.0])]
    ref = [np.array([0.0, -1.0, -2.5]), np.array([-2.0, -2.0])]
    adv = [np.array([0.0, 1.0, 1.0]), np.array([-0.5, -0.5])]
    vllm = [np.array([0.0, -1.25, -2.5]), np.array([-1.5, -2.0])]
    mb = collate(seqs, weights, 0, 1, token_data={"old_logprobs": old, "ref_logprobs": ref,
                                                   "advantages": adv, "vllm_logprobs": vllm,
                                                   "gap_weights": _answer_share(weights)})
    logits = torch.randn(1, len(mb.tokens), vocab, dtype=torch.float64)
    loss_fn = get_loss("grpo", real_vocab_size=vocab, kl_coef=0.1, kl_estimator="k3",
                       temperature=temperature)
    loss, _, metrics = loss_fn(mb, logits[0].clone())

    log_probs = torch.log_softmax(logits[0] / temperature, -1)
    logp = log_probs.gather(1, mb.labels.clamp(min=0)[:, None])[:, 0]
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    td = mb.token_data
    expected = 0.0
    for t in range(len(mb.tokens)):
        w = mb.loss_weights[t].item()
        if w == 0:
            continue
        r = math.exp(logp[t].item() - td["old_logprobs"][t].item())
        a = td["advantages"][t].item()
        surrogate = -min(r * a, min(max(r, 0.8), 1.2) * a)
        d = td["ref_logprobs"][t].item() - logp[t].item()
        expected += w * (surrogate + 0.1 * (math.exp(d) - d - 1))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert metrics["loss"].item() == pytest.approx(expected, rel=1e-6)
    assert 0.0 <= metrics["clip_fraction"].item() <= 1.0
    weights = mb.loss_weights.double()
    assert metrics["entropy"].item() == pytest.approx((weights * entropy).sum().item(), rel=1e-5)
    # |old − vllm| over the 4 answer tokens: 0.25, 0.5, 0.5, 1.0
    assert metrics["logprob_gap_mean"].item() == pytest.approx(2.25 / 4)
    assert metrics["logprob_gap_max"].item() == 1.0  # not the prompt token's


def _answer_share(weights):
    total = sum(int((w > 0).sum()) for w in weights)
    return [(w > 0) / total for w in weights]


def _on_policy_case():
    torch.manual_seed(1)
    vocab = 7
    seqs = [np.array([1, 2, 3, 4]), np.array([5, 6, 1])]
    weights = [np.array([0.0, 0.2, 0.2]), np.array([0.3, 0.3])]
    logits = torch.randn(len(seqs[0]) + len(seqs[1]), vocab, dtype=torch.float64)
    data = {"ref_logprobs": [np.array([0.0, -1.0, -2.5]), np.array([-2.0, -2.0])],
            "advantages": [np.array([0.0, 1.0, 1.0]), np.array([-0.5, -0.5])],
            "vllm_logprobs": [np.array([0.0, -2.0, -1.0]), np.array([-1.5, -2.5])],
            "gap_weights": _answer_share(weights)}
    return vocab, seqs, weights, logits, data


def _loss_and_grad(loss_fn, mb, logits):
    logits = logits.clone().requires_grad_(True)
    loss, _, metrics = loss_fn(mb, logits)
    loss.backward()
    return loss.item(), logits.grad, metrics


def test_on_policy_loss_equals_the_loss_given_its_own_logprobs(single_process):
    """One optimizer step per rollout batch: the old log-probs are the training forward's."""
    vocab, seqs, weights, logits, data = _on_policy_case()
    options = dict(real_vocab_size=vocab, kl_coef=0.1, kl_estimator="k3", temperature=0.7)
    on_policy = collate(seqs, weights, 0, 1, token_data=data)
    log_probs = torch.log_softmax(logits / 0.7, -1)
    logp = log_probs.gather(1, on_policy.labels.clamp(min=0)[:, None])[:, 0].numpy()
    bounds = on_policy.cu_seqlens.tolist()
    given = collate(seqs, weights, 0, 1, token_data={
        **data, "old_logprobs": [logp[a:b - 1] for a, b in zip(bounds, bounds[1:])]})
    loss, grad, metrics = _loss_and_grad(get_loss("grpo", on_policy=True, **options), on_policy,
                                         logits)
    want_loss, want_grad, want = _loss_and_grad(get_loss("grpo", **options), given, logits)
    assert loss == pytest.approx(want_loss, rel=1e-6)  # the loss is returned in fp32
    torch.testing.assert_close(grad, want_grad, rtol=1e-6, atol=1e-9)
    assert metrics["ratio"].item() == pytest.approx(sum(w.sum() for w in weights))  # r = 1
    assert metrics["clip_fraction"].item() == 0.0
    for key in ("logprob_gap_mean", "logprob_gap_max", "kl", "entropy"):
        assert metrics[key].item() == pytest.approx(want[key].item(), rel=1e-6)
    assert metrics["logprob_gap_max"].item() > 0


def test_without_reference_logprobs_the_kl_is_to_the_old_policy(single_process):
    vocab, seqs, weights, logits, data = _on_policy_case()
    old = [np.array([0.0, -1.5, -2.0]), np.array([-1.0, -3.0])]
    no_ref = {k: v for k, v in data.items() if k != "ref_logprobs"}
    loss_fn = get_loss("grpo", real_vocab_size=vocab, kl_coef=0.1, kl_estimator="k2")
    without = collate(seqs, weights, 0, 1, token_data={**no_ref, "old_logprobs": old})
    old_as_ref = collate(seqs, weights, 0, 1, token_data={**no_ref, "old_logprobs": old,
                                                          "ref_logprobs": old})
    got, want = loss_fn(without, logits.clone()), loss_fn(old_as_ref, logits.clone())
    assert got[0].item() == want[0].item() and got[2]["kl"].item() > 0
    on_policy = get_loss("grpo", real_vocab_size=vocab, kl_coef=0.1, on_policy=True)
    assert on_policy(collate(seqs, weights, 0, 1, token_data=no_ref),
                     logits.clone())[2]["kl"].item() == 0.0  # the policy is the old one
