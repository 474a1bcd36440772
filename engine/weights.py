"""Random initialization that does not depend on the parallel layout.

Every logical tensor (a layer's QKV weight, the embedding, ...) is drawn whole from its own CPU
generator, seeded by the run seed, the tensor's checkpoint key and its layer index; each rank
then keeps the slice it owns, found through megatron's `sharded_state_dict` (the same global
coordinates checkpoints use). So a TP=2×PP=2 run starts from exactly the weights of a single
process with the same seed, which is what the parity tests compare.

Distributions follow Megatron/Llama practice: N(0, σ) for input projections and embeddings,
N(0, σ/√(2L)) for the output projections of attention and MLP, ones for norms, zeros for biases
and for the padded vocabulary rows.
"""

from __future__ import annotations

import math
import zlib

import torch
from megatron.core.dist_checkpointing.mapping import ShardedTensor, ShardedTensorFactory

from engine.config import ModelConfig


def _full_tensor(key: str, layer: tuple[int, ...], shape: tuple[int, ...], seed: int,
                 m: ModelConfig) -> torch.Tensor:
    if key.endswith("layer_norm_weight") or key.endswith("final_layernorm.weight"):
        return torch.ones(shape)
    if key.endswith(".bias") or key.endswith("_bias"):
        return torch.zeros(shape)
    std = m.init_std
    if key.endswith("linear_proj.weight") or key.endswith("linear_fc2.weight"):
        std = m.init_std / math.sqrt(2.0 * m.num_layers)
    generator = torch.Generator().manual_seed(zlib.crc32(f"{seed}:{key}:{layer}".encode()))
    values = torch.randn(shape, generator=generator) * std
    if key in ("embedding.word_embeddings.weight", "output_layer.weight"):
        values[m.vocab_size:] = 0.0
    return values


def _sharded_tensors(model: torch.nn.Module):
    for item in model.sharded_state_dict().values():
        if isinstance(item, ShardedTensorFactory):
            built = item.build()
            yield from (built.values() if isinstance(built, dict) else built)
        elif isinstance(item, ShardedTensor):
            yield item


@torch.no_grad()
def init_weights(model: torch.nn.Module, m: ModelConfig, seed: int) -> None:
    """Fill every parameter of this rank's stage with its slice of the layout-free init."""
    seen = set()
    for st in _sharded_tensors(model):
        p = st.prepend_axis_num
        layer = tuple(st.global_offset[:p])
        offset = st.global_offset[p:]
        full = _full_tensor(st.key, layer, tuple(st.global_shape[p:]), seed, m)
        index = tuple(slice(o, o + n) for o, n in zip(offset, st.data.shape))
        st.data.copy_(full[index])
        seen.add(st.data.untyped_storage().data_ptr())
    missing = [name for name, param in model.named_parameters()
               if param.untyped_storage().data_ptr() not in seen]
    if missing:
        raise RuntimeError(f"parameters without an initializer: {missing}")
