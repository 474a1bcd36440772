"""The trainer's weights as whole Hugging Face-named tensors, at any TP/PP layout: what a refit
loads into the rollout engines.

    for name, tensor in hf_weights(model, cfg.model):   # on every rank, in the same order
        ...

Every rank walks the same list of engine tensors — the rules of `engine.hf.name_map`, layer by
layer — in the same order. For each, the ranks of its model-parallel group (TP × PP) that hold a
slice of it write the slice at its global offset into a zero tensor, and the group sums them
(one all-reduce per tensor). Only a slice's main copy is written (a norm replicated over TP, the
output layer's copy of tied embeddings), so the sum is the tensor exactly. The name map then
turns it into HF tensors (QKV split, gate/up split, vocabulary padding dropped), which every rank
of the group receives. Data-parallel replicas hold the same weights and gather independently.
One engine tensor is whole at a time.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.distributed as dist
from megatron.core import parallel_state
from megatron.core.utils import unwrap_model

from engine.config import ModelConfig
from engine.hf.name_map import hf_names, rules
from engine.model.init import sharded_tensors


def _is_main_copy(replica_id) -> bool:
    """megatron's replica ids are (pipeline copy, tensor-parallel copy, data-parallel rank)."""
    if isinstance(replica_id, int):
        return replica_id == 0
    return replica_id[0] == 0 and replica_id[1] == 0


@torch.no_grad()
def hf_weights(model: torch.nn.Module, m: ModelConfig) -> Iterator[tuple[str, torch.Tensor]]:
    """(HF name, whole tensor) for every weight of the model; a collective over the
    model-parallel group: every rank of it must iterate to the end."""
    slices: dict[tuple[str, int | None], list] = {}
    shapes: dict[str, tuple] = {}
    for st in sharded_tensors(unwrap_model(model)):
        p = st.prepend_axis_num
        layer = st.global_offset[0] if p else None
        shapes[st.key] = tuple(st.global_shape[p:])
        if _is_main_copy(st.replica_id):
            slices.setdefault((st.key, layer), []).append((st.global_offset[p:], st.data))
    group = parallel_state.get_model_parallel_group()
    dtype, device = _model_dtype_and_device(model)
    for rule in rules(m):
        layers = range(m.num_layers) if rule.per_layer else [None]
        shape = _global_shape(rule.engine_key, shapes, group, device)
        for layer in layers:
            whole = torch.zeros(shape, dtype=dtype, device=device)
            for offset, data in slices.get((rule.engine_key, layer), []):
                whole[tuple(slice(o, o + n) for o, n in zip(offset, data.shape))] = data
            dist.all_reduce(whole, group=group)
            yield from zip(hf_names(rule, layer), rule.to_hf(m, whole))


def _model_dtype_and_device(model: torch.nn.Module) -> tuple[torch.dtype, torch.device]:
    param = next(unwrap_model(model).parameters())
    return param.dtype, param.device


def _global_shape(key: str, shapes: dict[str, tuple], group, device) -> tuple:
    """The tensor's global shape (per layer), known on the stages that hold it and shared with
    the others (a stage without the embedding still sums it)."""
    local = torch.tensor(list(shapes.get(key, ())) + [0] * (4 - len(shapes.get(key, ()))),
                         dtype=torch.int64, device=device)
    dist.all_reduce(local, op=dist.ReduceOp.MAX, group=group)
    return tuple(int(n) for n in local.tolist() if n)
