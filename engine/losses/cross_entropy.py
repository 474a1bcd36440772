"""Cross-entropy on tensor-parallel logits: the next-token loss of pretraining and SFT, and the
per-token log-probabilities of the labels (DPO's reference cache, RL and evaluation use them).

Two kernels compute the per-token cross-entropy on TP-sharded logits (the tensor-parallel group
is their one process group), with the padded vocabulary columns masked out:
- `megatron`: megatron's vocab-parallel cross-entropy (an fp32 copy of the logits, kept for the
  backward);
- `te`: TransformerEngine's fused Triton kernel (CUDA): reads the bf16 logits once and writes the
  gradient into them in place, so the logits must not be used after the call.
- `fused`: the output layer's GEMM fused with the loss (kernels/linear_cross_entropy.py): the
  model hands over its hidden states (`engine.model.head.HiddenStates`) and the logits are made
  and consumed a chunk of tokens at a time, never all at once.
`auto` picks `te` for CUDA logits when TransformerEngine is installed, `megatron` otherwise
(`train.cross_entropy`). Every function here takes either logits or `HiddenStates`; the model
decides which it hands over (`engine.model.build`). None of them reads a device value on the
host: labels are token ids of a tokenizer no larger than the model's vocabulary (checked when
the data is prepared, `engine.data.prepare`), so the fused kernel's per-call range check is off.
"""

from __future__ import annotations

import torch
from megatron.core import parallel_state, tensor_parallel

from engine.compat import platform
from engine.losses.registry import register, token_count
from engine.model.head import HiddenStates
from kernels.linear_cross_entropy import linear_cross_entropy_loss, linear_logprobs


def mask_padded_vocab(logits: torch.Tensor, real_vocab_size: int) -> torch.Tensor:
    """-inf on the padded vocabulary columns this TP rank holds (in place)."""
    local = logits.shape[-1]
    start = parallel_state.get_tensor_model_parallel_rank() * local
    first_pad = max(real_vocab_size - start, 0)
    if first_pad < local:
        logits[..., first_pad:] = float("-inf")
    return logits


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, real_vocab_size: int,
                        kernel: str = "auto") -> torch.Tensor:
    """CE(logits, label) per token (fp32), 0 where the label is -100; logits [t, vocab/TP]
    (consumed: masked in place, and overwritten by the `te` kernel)."""
    if kernel == "fused":
        raise ValueError("train.cross_entropy=fused needs the model's hidden states, not logits "
                         "(a model built with that setting hands them over)")
    mask_padded_vocab(logits, real_vocab_size)
    targets = labels.clamp(min=0)
    if kernel == "te" or (kernel == "auto" and logits.is_cuda
                          and platform.has_transformer_engine()):
        from transformer_engine.pytorch.cross_entropy import parallel_cross_entropy

        tp = parallel_state.get_tensor_model_parallel_world_size()
        group = parallel_state.get_tensor_model_parallel_group() if tp > 1 else None
        losses = parallel_cross_entropy(logits.unsqueeze(0), targets.unsqueeze(0), 0.0, False,
                                        group).squeeze(0)
    else:
        losses = tensor_parallel.vocab_parallel_cross_entropy(logits, targets)
    return losses.float().masked_fill(labels < 0, 0.0)


def weighted_cross_entropy(logits, labels: torch.Tensor, weights: torch.Tensor,
                           real_vocab_size: int, kernel: str = "auto") -> torch.Tensor:
    """Σ weights · CE(logits, labels) over tokens; logits [t, vocab/TP] or `HiddenStates`,
    labels -100 = none."""
    if isinstance(logits, HiddenStates):
        return linear_cross_entropy_loss(logits.hidden, logits.weight, labels, weights,
                                         real_vocab_size=real_vocab_size,
                                         vocab_start=logits.vocab_start,
                                         tp_group=logits.tp_group, check_labels=False)
    return (token_cross_entropy(logits, labels, real_vocab_size, kernel) * weights).sum()


def label_logprobs(logits, labels: torch.Tensor, real_vocab_size: int,
                   kernel: str = "auto") -> torch.Tensor:
    """log p(label) per token (fp32), 0 where the label is -100; logits [t, vocab/TP] or
    `HiddenStates`."""
    if isinstance(logits, HiddenStates):
        return _fused_logprobs(logits, labels, real_vocab_size, with_entropy=False)[0]
    return -token_cross_entropy(logits, labels, real_vocab_size, kernel)


def label_logprobs_and_entropy(logits, labels: torch.Tensor, real_vocab_size: int,
                               kernel: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(label), entropy of p) per token (fp32): the log-probs as `label_logprobs`, the
    entropy a metric without gradient (with a fused head one pass computes both, and the entropy
    is 0 where the label is -100)."""
    if isinstance(logits, HiddenStates):
        logprobs, entropy = _fused_logprobs(logits, labels, real_vocab_size, with_entropy=True)
        return logprobs, entropy.detach()
    entropy = token_entropy(logits, real_vocab_size)
    return label_logprobs(logits, labels, real_vocab_size, kernel), entropy


def tempered(logits, temperature: float):
    """The logits of softmax(logits / temperature), in the form they came in."""
    if temperature == 1.0:
        return logits
    if isinstance(logits, HiddenStates):
        return logits.scaled(1.0 / temperature)
    return logits / temperature


def _fused_logprobs(head: HiddenStates, labels, real_vocab_size, with_entropy):
    return linear_logprobs(head.hidden, head.weight, labels, real_vocab_size=real_vocab_size,
                           vocab_start=head.vocab_start, tp_group=head.tp_group,
                           with_entropy=with_entropy, check_labels=False)


@register("cross_entropy", metrics=("loss",))
def cross_entropy(mb, logits, *, real_vocab_size: int, kernel: str = "auto"):
    """Next-token loss weighted per target token (the weights carry the reduction)."""
    loss = weighted_cross_entropy(logits, mb.labels, mb.loss_weights, real_vocab_size,
                                  kernel)
    count = token_count(mb, loss.device)
    return loss, count, {"loss": loss.detach()}


@torch.no_grad()
def token_entropy(logits: torch.Tensor, real_vocab_size: int) -> torch.Tensor:
    """Entropy of softmax(logits) per token (fp32; a metric, no gradient); logits [t, vocab/TP],
    reduced over the tensor-parallel group."""
    x = mask_padded_vocab(logits.detach().float().clone(), real_vocab_size)
    tp = parallel_state.get_tensor_model_parallel_world_size()
    group = parallel_state.get_tensor_model_parallel_group() if tp > 1 else None
    peak = x.max(dim=-1).values
    if tp > 1:
        torch.distributed.all_reduce(peak, op=torch.distributed.ReduceOp.MAX, group=group)
    shifted = x - peak.unsqueeze(-1)
    weights = shifted.exp()
    sums = torch.stack([weights.sum(-1), (weights * shifted.nan_to_num(neginf=0.0)).sum(-1)])
    if tp > 1:
        torch.distributed.all_reduce(sums, group=group)
    return sums[0].log() - sums[1] / sums[0]
