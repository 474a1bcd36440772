"""The trainer's weights as whole Hugging Face-named tensors, at any TP/PP layout: what a refit
loads into the rollout engines.

    for name, tensor in hf_weights(model, cfg.model):   # on every rank, in the same order
        ...

Every rank walks the same list of engine tensors — the rules of `engine.hf.name_map`, layer by
layer — in the same order, and ends each with the whole tensor. Only a slice's main copy counts
(not a norm's copies on the other TP ranks, nor the output layer's copy of tied embeddings), so
the ranks holding main slices of one tensor, its holders, partition it; they sit on one pipeline
stage. First the ranks of the model-parallel group (TP × PP) tell each other which slices they
hold (one small all-gather of objects); then per tensor:

- one holder (a norm, anything at TP=1): it broadcasts the tensor over the model-parallel group;
- one holder per TP rank (a TP-sharded tensor): each holder broadcasts its slices over its
  pipeline group, then every stage all-gathers the slices over its TP group.

Each rank so receives about the tensor's size once (N/TP through the broadcast, N·(TP−1)/TP
through the all-gather), where summing zero-filled tensors in an all-reduce moved about twice
that. Where the slices in TP order are the tensor's rows in order (column-parallel weights, the
vocabulary-parallel embedding) the gathered buffer is the tensor, without a copy. The name map
then turns each into HF tensors (QKV split, gate/up split, vocabulary padding dropped).
Data-parallel replicas hold the same weights and gather independently. One engine tensor is
whole at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from megatron.core import parallel_state
from megatron.core.utils import unwrap_model

from engine.config import ModelConfig
from engine.hf.name_map import hf_names, rules
from engine.model.init import sharded_tensors

TensorId = tuple[str, int | None]  # (engine checkpoint key, global layer or None)
Slice = tuple[tuple[int, ...], tuple[int, ...]]  # (global offset, shape)


@dataclass(frozen=True)
class Holder:
    """A rank holding main slices of one tensor, and where they go."""
    rank: int  # global
    stage: int
    tp_rank: int
    slices: tuple[Slice, ...]

    @property
    def numel(self) -> int:
        return sum(math.prod(shape) for _, shape in self.slices)


@dataclass(frozen=True)
class Plan:
    """How one engine tensor travels: its global shape and its holders (in TP order)."""
    shape: tuple[int, ...]
    holders: tuple[Holder, ...]

    @property
    def buffer_numel(self) -> int:
        return max(h.numel for h in self.holders)

    @property
    def rows_in_order(self) -> bool:
        """Whether the holders' slices, concatenated in TP order, are the tensor itself."""
        row = 0
        for h in self.holders:
            if len(h.slices) != 1 or h.numel != self.buffer_numel:
                return False
            offset, shape = h.slices[0]
            if offset[0] != row or any(offset[1:]) or shape[1:] != self.shape[1:]:
                return False
            row += shape[0]
        return row == self.shape[0]


def _is_main_copy(replica_id) -> bool:
    """megatron's replica ids are (pipeline copy, tensor-parallel copy, data-parallel rank)."""
    if isinstance(replica_id, int):
        return replica_id == 0
    return replica_id[0] == 0 and replica_id[1] == 0


def _main_slices(model: torch.nn.Module) -> tuple[dict[TensorId, list], dict[TensorId, tuple]]:
    """This rank's main slices per tensor, [(global offset, data)], and the tensors' shapes."""
    slices: dict[TensorId, list] = {}
    shapes: dict[TensorId, tuple] = {}
    for st in sharded_tensors(unwrap_model(model)):
        p = st.prepend_axis_num
        tensor = (st.key, st.global_offset[0] if p else None)
        if _is_main_copy(st.replica_id):
            shapes[tensor] = tuple(st.global_shape[p:])
            slices.setdefault(tensor, []).append((tuple(st.global_offset[p:]), st.data))
    return slices, shapes


def make_plans(slices: dict[TensorId, list], shapes: dict[TensorId, tuple],
               group) -> dict[TensorId, Plan]:
    """Every tensor's plan, from what each rank of the model-parallel group holds (a
    collective over it)."""
    mine = (dist.get_rank(), parallel_state.get_pipeline_model_parallel_rank(),
            parallel_state.get_tensor_model_parallel_rank(),
            {t: (shapes[t], tuple((o, tuple(d.shape)) for o, d in s)) for t, s in slices.items()})
    everyone = [None] * dist.get_world_size(group)
    dist.all_gather_object(everyone, mine, group=group)
    return plans_from(everyone, parallel_state.get_tensor_model_parallel_world_size())


def plans_from(everyone: list, tp: int) -> dict[TensorId, Plan]:
    """Plans from the ranks' (global rank, stage, TP rank, {tensor: (shape, slices)})."""
    holders: dict[TensorId, list[Holder]] = {}
    shapes: dict[TensorId, tuple] = {}
    for rank, stage, tp_rank, held in everyone:
        for tensor, (shape, slices) in held.items():
            shapes[tensor] = shape
            holders.setdefault(tensor, []).append(Holder(rank, stage, tp_rank, slices))
    plans = {}
    for tensor, hs in holders.items():
        hs.sort(key=lambda h: h.tp_rank)
        plan = Plan(shapes[tensor], tuple(hs))
        stages = {h.stage for h in hs}
        if len(stages) != 1 or (len(hs) > 1 and [h.tp_rank for h in hs] != list(range(tp))):
            raise RuntimeError(f"{tensor}: main slices on stages {sorted(stages)}, TP ranks "
                               f"{[h.tp_rank for h in hs]}: the refit expects one holder or "
                               f"one per TP rank, on one stage")
        if sum(h.numel for h in hs) != math.prod(plan.shape):
            raise RuntimeError(f"{tensor}: the main slices hold {sum(h.numel for h in hs)} "
                               f"values of a {plan.shape} tensor")
        plans[tensor] = plan
    return plans


@torch.no_grad()
def hf_weights(model: torch.nn.Module, m: ModelConfig) -> Iterator[tuple[str, torch.Tensor]]:
    """(HF name, whole tensor) for every weight of the model; a collective over the
    model-parallel group: every rank of it must iterate to the end."""
    slices, shapes = _main_slices(model)
    plans = make_plans(slices, shapes, parallel_state.get_model_parallel_group())
    param = next(unwrap_model(model).parameters())
    for rule in rules(m):
        for layer in range(m.num_layers) if rule.per_layer else [None]:
            tensor = (rule.engine_key, layer)
            whole = _gather(plans[tensor], slices.get(tensor, []), param.dtype, param.device)
            yield from zip(hf_names(rule, layer), rule.to_hf(m, whole))


def _gather(plan: Plan, mine: list, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The whole tensor on every rank of the model-parallel group."""
    flat = torch.empty(plan.buffer_numel, dtype=dtype, device=device)
    if mine:
        held = sum(data.numel() for _, data in mine)
        torch.cat([data.reshape(-1) for _, data in mine], out=flat[:held])
    if len(plan.holders) == 1:
        dist.broadcast(flat, src=plan.holders[0].rank,
                       group=parallel_state.get_model_parallel_group())
        chunks = flat.view(1, -1)
    else:
        if parallel_state.get_pipeline_model_parallel_world_size() > 1:
            holder = plan.holders[parallel_state.get_tensor_model_parallel_rank()]
            dist.broadcast(flat, src=holder.rank,
                           group=parallel_state.get_pipeline_model_parallel_group())
        gathered = torch.empty(len(plan.holders) * plan.buffer_numel, dtype=dtype,
                               device=device)
        dist.all_gather_into_tensor(gathered, flat,
                                    group=parallel_state.get_tensor_model_parallel_group())
        chunks = gathered.view(len(plan.holders), -1)
    if plan.rows_in_order:
        return chunks.view(plan.shape)
    whole = torch.empty(plan.shape, dtype=dtype, device=device)
    for holder, chunk in zip(plan.holders, chunks):
        start = 0
        for offset, shape in holder.slices:
            n = math.prod(shape)
            whole[tuple(slice(o, o + k) for o, k in zip(offset, shape))] = \
                chunk[start:start + n].view(shape)
            start += n
    return whole
