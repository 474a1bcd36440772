"""The language-model head in its two forms: logits, or hidden states fused with the loss.

With `train.cross_entropy=fused` the last stage's output layer is a `HiddenStatesHead`: it keeps
the output weight (same parameter, same checkpoint key) but does not multiply by it. The last
stage then hands the loss a `HiddenStates` — the final norm's output gathered over the sequence
(as the output layer's input would be) with this rank's vocabulary slice of the weight — and the
losses compute logits chunk by chunk inside kernels/linear_cross_entropy.py, so the
[tokens, vocabulary] logits never exist at once. Every other head keeps megatron's output layer.

    out = head_output(model, forward_packed(model, mb))   # [t, vocab/TP] logits or HiddenStates
    logits = sharded_logits(out)                          # [t, vocab/TP] either way
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from megatron.core import parallel_state
from megatron.core.tensor_parallel import (ColumnParallelLinear,
                                         copy_to_tensor_model_parallel_region,
                                         gather_from_sequence_parallel_region)
from megatron.core.utils import unwrap_model


class HiddenStatesHead(ColumnParallelLinear):
    """megatron's vocabulary-parallel output layer without its GEMM: returns (the layer's input as
    the GEMM would see it, None). The input's backward is the layer's own: the all-reduce of the
    per-rank partial gradients over TP, or their reduce-scatter with sequence parallelism."""

    @classmethod
    def replacing(cls, layer: ColumnParallelLinear) -> "HiddenStatesHead":
        """A head with `layer`'s shape, groups and weight parameter (None when the stage reads
        the embedding's)."""
        head = cls(layer.input_size, layer.output_size, config=layer.config,
                   init_method=layer.config.init_method, bias=False, gather_output=False,
                   skip_weight_param_allocation=True, tp_group=layer.tp_group)
        head.weight = layer.weight
        return head

    def forward(self, input_, weight=None, runtime_gather_output=None):
        if self.sequence_parallel:
            return gather_from_sequence_parallel_region(input_, tensor_parallel_output_grad=True,
                                                        group=self.tp_group), None
        return copy_to_tensor_model_parallel_region(input_, group=self.tp_group), None


@dataclass(frozen=True)
class HiddenStates:
    """What a fused head hands the loss: hidden [t, h] and this rank's rows of the output weight
    [vocab_padded/TP, h], which hold the global ids [vocab_start, vocab_start + rows)."""

    hidden: torch.Tensor
    weight: torch.Tensor
    vocab_start: int
    tp_group: object  # None at TP=1

    def scaled(self, factor: float) -> "HiddenStates":
        """The head of logits × factor (a temperature): hidden × factor."""
        return HiddenStates(self.hidden * factor, self.weight, self.vocab_start, self.tp_group)

    def logits(self) -> torch.Tensor:
        """The full [t, vocab_padded/TP] logits (greedy decoding, tests)."""
        return self.hidden @ self.weight.t()


def fuses_head(model) -> bool:
    """Whether the model (wrapped or not) is a last stage with a fused head."""
    return isinstance(getattr(unwrap_model(model), "output_layer", None), HiddenStatesHead)


def head_output(model, output: torch.Tensor):
    """The last stage's output [1, t, ·] as the losses take it: logits [t, vocab/TP], or the
    fused head's `HiddenStates`."""
    output = output.squeeze(0)
    if not fuses_head(model):
        return output
    gpt = unwrap_model(model)
    weight = (gpt.shared_embedding_or_output_weight() if gpt.share_embeddings_and_output_weights
              else gpt.output_layer.weight)
    tp = parallel_state.get_tensor_model_parallel_world_size()
    return HiddenStates(output, weight, parallel_state.get_tensor_model_parallel_rank()
                        * weight.shape[0],
                        parallel_state.get_tensor_model_parallel_group() if tp > 1 else None)


def sharded_logits(out) -> torch.Tensor:
    """[t, vocab/TP] logits of a `head_output`."""
    return out.logits() if isinstance(out, HiddenStates) else out
