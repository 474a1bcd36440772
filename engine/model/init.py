"""Setting a model's weights from global tensors, independently of the parallel layout.

`fill_weights` walks megatron's `sharded_state_dict` of this rank's stage (the global
coordinates checkpoints use: key, layer, offset), asks a source for the whole global tensor, and
keeps the slice it owns. Sources: `init_weights` here (random), a Hugging Face directory
(`engine.hf.importer.load_hf_weights`), an engine checkpoint
(`engine.checkpoint.weights.load_checkpoint_weights`).

`init_weights`: each logical tensor is drawn whole from its own CPU generator seeded by the run
seed, the tensor's key and its layer, so a TP=2×PP=2 run starts from exactly the weights of a
single process with the same seed. N(0, σ) for input projections and embeddings, N(0, σ/√(2L))
for the output projections of attention and MLP, ones for norms, zeros for biases and the padded
vocabulary rows.
"""

from __future__ import annotations

import math
import zlib
from typing import Callable

import torch
from megatron.core.dist_checkpointing.mapping import ShardedTensor, ShardedTensorFactory

from engine.config import ModelConfig
from engine.errors import CheckpointError

# (key, layer or None, global shape) -> the global tensor
Source = Callable[[str, "int | None", tuple], torch.Tensor]


def sharded_tensors(model: torch.nn.Module):
    """The ShardedTensors of this rank's stage, factories (fc1's gate and up) built."""
    for item in model.sharded_state_dict().values():
        if isinstance(item, ShardedTensorFactory):
            built = item.build()
            yield from (built.values() if isinstance(built, dict) else built)
        elif isinstance(item, ShardedTensor):
            yield item


@torch.no_grad()
def fill_weights(model: torch.nn.Module, source: Source) -> None:
    """Set every parameter of this rank's stage to its slice of the source's global tensors."""
    seen, cached = set(), (None, None)
    for st in sharded_tensors(model):
        p = st.prepend_axis_num
        layer = st.global_offset[0] if p else None
        shape = tuple(st.global_shape[p:])
        if cached[0] != (st.key, layer):  # gate and up of fc1 come as two shards of one tensor
            cached = ((st.key, layer), source(st.key, layer, shape))
        full = cached[1]
        if tuple(full.shape) != shape:
            raise CheckpointError(f"{st.key} (layer {layer}): the source has shape "
                                  f"{tuple(full.shape)}, the model config expects {shape}")
        index = tuple(slice(o, o + n) for o, n in zip(st.global_offset[p:], st.data.shape))
        st.data.copy_(full[index])
        seen.add(st.data.untyped_storage().data_ptr())
    missing = [name for name, param in model.named_parameters()
               if param.untyped_storage().data_ptr() not in seen]
    if missing:
        raise RuntimeError(f"parameters without a source tensor: {missing}")


def init_weights(model: torch.nn.Module, m: ModelConfig, seed: int) -> None:
    fill_weights(model, random_source(m, seed))


def random_source(m: ModelConfig, seed: int) -> Source:
    """The seeded layout-free initial tensors (see above)."""

    def random_tensor(key: str, layer: int | None, shape: tuple) -> torch.Tensor:
        if key.endswith("layer_norm_weight") or key.endswith("final_layernorm.weight"):
            return torch.ones(shape)
        if key.endswith(".bias"):
            return torch.zeros(shape)
        std = m.init_std
        if key.endswith("linear_proj.weight") or key.endswith("linear_fc2.weight"):
            std = m.init_std / math.sqrt(2.0 * m.num_layers)
        generator = torch.Generator().manual_seed(
            zlib.crc32(f"{seed}:{key}:{(layer,) if layer is not None else ()}".encode()))
        values = torch.randn(shape, generator=generator) * std
        if key == "embedding.word_embeddings.weight":
            values[m.vocab_size:] = 0.0
        if key == "output_layer.weight":
            values[m.output_size:] = 0.0
        return values

    return random_tensor
