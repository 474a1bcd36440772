"""Fixes for megatron-core 0.16 bugs the engine hits, applied once by `apply()` (on any host).

Both concern the distributed optimizer on torch's Adam (used when neither TransformerEngine nor
apex provides a fused Adam), whose per-parameter state has a `step` tensor:

1. Loading a checkpoint: megatron saves `step` once in the param groups, not per parameter,
   then copies every per-parameter state key back from the loaded tensors, `step` included, and
   fails with KeyError('step'). The copy now skips keys the checkpoint does not carry per
   parameter; `step` is restored from the param groups by `load_state_dict`.
2. `load_state_dict` gives every parameter the *same* `step` tensor object; torch's Adam
   increments it in place once per parameter, so after a resume the bias correction runs with a
   step counter that grows by the number of parameters per iteration. Each parameter now gets
   its own copy.
"""

from __future__ import annotations

import functools

from megatron.core.optimizer.distrib_optimizer import DistributedOptimizer

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
    _applied = True
