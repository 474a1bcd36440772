"""Setting a model's weights from global tensors, independently of the parallel layout.

Every rank walks megatron's `sharded_state_dict` of its stage (the global coordinates
checkpoints use: key, layer, offset), asks a source for the whole global tensor, and keeps the
slice it owns. Two sources:

- `init_weights`: random. Each logical tensor is drawn whole from its own CPU generator seeded by
  the run seed, the tensor's key and its layer, so a TP=2×PP=2 run starts from exactly the
  weights of a single process with the same seed. N(0, σ) for input projections and embeddings,
  N(0, σ/√(2L)) for the output projections of attention and MLP, ones for norms, zeros for
  biases and the padded vocabulary rows.
- `load_hf_weights`: a Hugging Face checkpoint, streamed tensor by tensor through the name map
  of `engine.convert`; shapes that disagree with the config, and HF tensors the map does not
  use, are errors that name them.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path
from typing import Callable

import torch
from megatron.core.dist_checkpointing.mapping import ShardedTensor, ShardedTensorFactory

from engine.checkpoint import CheckpointTensors
from engine.config import ConfigError, ModelConfig
from engine.convert import hf_names, rules
from engine.hf_checkpoint import HFReader

# (key, layer or None, global shape) -> the global tensor
Source = Callable[[str, "int | None", tuple], torch.Tensor]


def _sharded_tensors(model: torch.nn.Module):
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
    for st in _sharded_tensors(model):
        p = st.prepend_axis_num
        layer = st.global_offset[0] if p else None
        shape = tuple(st.global_shape[p:])
        if cached[0] != (st.key, layer):  # gate and up of fc1 come as two shards of one tensor
            cached = ((st.key, layer), source(st.key, layer, shape))
        full = cached[1]
        if tuple(full.shape) != shape:
            raise ConfigError(f"{st.key} (layer {layer}): the source has shape "
                              f"{tuple(full.shape)}, the model config expects {shape}")
        index = tuple(slice(o, o + n) for o, n in zip(st.global_offset[p:], st.data.shape))
        st.data.copy_(full[index])
        seen.add(st.data.untyped_storage().data_ptr())
    missing = [name for name, param in model.named_parameters()
               if param.untyped_storage().data_ptr() not in seen]
    if missing:
        raise RuntimeError(f"parameters without a source tensor: {missing}")


def init_weights(model: torch.nn.Module, m: ModelConfig, seed: int) -> None:
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
        if key in ("embedding.word_embeddings.weight", "output_layer.weight"):
            values[m.vocab_size:] = 0.0
        return values

    fill_weights(model, random_tensor)


def check_hf_names(reader: HFReader, m: ModelConfig, directory: str) -> None:
    """HF tensors that the family's map does not use are an error (nothing is skipped)."""
    expected = {name for rule in rules(m)
                for layer in (range(m.num_layers) if rule.per_layer else [None])
                for name in hf_names(rule, layer)}
    unexpected = sorted(n for n in reader.names() - expected
                        if not n.endswith("rotary_emb.inv_freq"))
    if m.tie_word_embeddings and "lm_head.weight" in unexpected:
        unexpected.remove("lm_head.weight")  # some tied checkpoints store the copy
    if unexpected:
        raise ConfigError(f"{directory}: tensors the {m.arch} map does not use: "
                          f"{', '.join(unexpected[:10])}"
                          + (f" (+{len(unexpected) - 10} more)" if len(unexpected) > 10 else ""))


def load_hf_weights(model: torch.nn.Module, m: ModelConfig, directory: str,
                    padded_vocab: int) -> None:
    reader = HFReader(directory)
    check_hf_names(reader, m, directory)
    by_key = {rule.engine_key: rule for rule in rules(m)}

    def hf_tensor(key: str, layer: int | None, shape: tuple) -> torch.Tensor:
        rule = by_key.get(key)
        if rule is None:
            raise ConfigError(f"no Hugging Face source for engine tensor {key}")
        return rule.to_engine(m, padded_vocab, *(reader.get(n).float()
                                                 for n in hf_names(rule, layer)))

    fill_weights(model, hf_tensor)


def load_checkpoint_weights(model: torch.nn.Module, checkpoint_dir) -> None:
    """The model weights of an engine checkpoint (training or weights-only) saved at any layout.

    The padded vocabulary rows are zeros, so a checkpoint padded to another multiple loads by
    padding or trimming those rows."""
    stored = CheckpointTensors(Path(checkpoint_dir))

    def read(key: str, layer, shape: tuple) -> torch.Tensor:
        tensor = stored.read(key, layer).float()
        if key in ("embedding.word_embeddings.weight", "output_layer.weight") and \
                tensor.shape[0] != shape[0]:
            resized = tensor.new_zeros(shape)
            rows = min(shape[0], tensor.shape[0])
            resized[:rows] = tensor[:rows]
            tensor = resized
        return tensor

    fill_weights(model, read)
