"""Fixes for megatron-core 0.16 bugs the engine hits, applied once by `apply()` (on any host).

The first two concern the distributed optimizer on torch's Adam (used when neither
TransformerEngine nor apex provides a fused Adam), whose per-parameter state has a `step` tensor:

1. Loading a checkpoint: megatron saves `step` once in the param groups, not per parameter,
   then copies every per-parameter state key back from the loaded tensors, `step` included, and
   fails with KeyError('step'). The copy now skips keys the checkpoint does not carry per
   parameter; `step` is restored from the param groups by `load_state_dict`.
2. `load_state_dict` gives every parameter the *same* `step` tensor object; torch's Adam
   increments it in place once per parameter, so after a resume the bias correction runs with a
   step counter that grows by the number of parameters per iteration. Each parameter now gets
   its own copy.

3. Packed (THD) RoPE without TE's fusion (the local layer spec) reads `cu_seqlens` on the host
   in every attention layer, twice (a device synchronization each), and works sequence by
   sequence: `engine.model.rope.packed_rotary` computes the same values on the device. It
   replaces megatron's function without context parallelism, which the local spec rejects.

4. Selective recomputation of the norms (`train.recompute_modules: [layernorm]`, local spec):
   `CheckpointWithoutOutput` sets its fp8 flag to `fp8 is not None`, True for the default
   `fp8=False`, and its forward then calls TransformerEngine's FP8 state manager, a NameError
   where TE is absent. The flag is now `bool(fp8)`: no FP8 context in any case (the engine
   trains no FP8).
"""

from __future__ import annotations

import functools

from megatron.core.models.common.embeddings import rope_utils
from megatron.core.optimizer.distrib_optimizer import DistributedOptimizer
from megatron.core.tensor_parallel import random

from engine.model.rope import packed_rotary

_applied = False


def apply() -> None:
    global _applied
    if _applied:
        return
    set_states = DistributedOptimizer._set_main_param_and_optimizer_states
    load_state_dict = DistributedOptimizer.load_state_dict

    @functools.wraps(set_states)
    def set_states_present_in_checkpoint(self, model_param, tensors):
        group_index, group_order = self.model_param_group_index_map[model_param]
        main_param = self.optimizer.param_groups[group_index]["params"][group_order]
        state = self.optimizer.state[main_param]
        missing = {k: state.pop(k) for k in list(state) if k not in tensors}
        try:
            set_states(self, model_param, tensors)
        finally:
            state.update(missing)

    @functools.wraps(load_state_dict)
    def load_with_own_step_tensors(self, state_dict):
        load_state_dict(self, state_dict)
        for state in self.optimizer.state.values():
            if "step" in state:
                state["step"] = state["step"].clone()

    DistributedOptimizer._set_main_param_and_optimizer_states = set_states_present_in_checkpoint
    DistributedOptimizer.load_state_dict = load_with_own_step_tensors
    checkpoint_init = random.CheckpointWithoutOutput.__init__

    @functools.wraps(checkpoint_init)
    def init_with_fp8_as_given(self, fp8=False):
        checkpoint_init(self, fp8)
        self.fp8 = bool(fp8)

    random.CheckpointWithoutOutput.__init__ = init_with_fp8_as_given
    rope_utils._apply_rotary_pos_emb_thd = _packed_rotary_without_host_reads(
        rope_utils._apply_rotary_pos_emb_thd)
    _applied = True


def _packed_rotary_without_host_reads(thd_rotary):
    @functools.wraps(thd_rotary)
    def rotary(t, cu_seqlens, freqs, rotary_interleaved=False, multi_latent_attention=False,
               mscale=1.0, cp_group=None):
        if cp_group is not None and cp_group.size() > 1:
            return thd_rotary(t, cu_seqlens, freqs, rotary_interleaved, multi_latent_attention,
                              mscale, cp_group)
        return packed_rotary(t, cu_seqlens, freqs, rotary_interleaved, multi_latent_attention,
                             mscale)

    return rotary
