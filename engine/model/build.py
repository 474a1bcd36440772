"""Llama-family decoders (Llama 3/3.1/3.2, Qwen2/2.5) as megatron-core GPTModel pipeline stages.

    model = build_model(cfg, first_stage=True, last_stage=True, device=device)  # weights unset

The embedding and output layer hold a vocabulary padded to a multiple of
`make_vocab_size_divisible_by` (and of TP) (`ModelConfig.padded_vocab_size`); the loss and
`vocab_logits` drop the padded columns, so the padding never shows. A value model
(`model.head=value`) is the same decoder whose output layer has one meaningful row, padded the
same way: its "logits" column 0 is the value of each token (`vocab_logits(out, 1)`). With
`train.cross_entropy=fused` a language model's last stage returns hidden states instead of logits
(`engine.model.head`).
"""

from __future__ import annotations

import math

import torch
from megatron.core.models.gpt import GPTModel
from megatron.core.tensor_parallel import (ColumnParallelLinear,
                                         gather_from_tensor_model_parallel_region)

from engine.config import Config, RopeScalingConfig
from engine.model.head import HiddenStatesHead
from engine.model.spec import layer_spec, transformer_config, uses_transformer_engine


def llama3_inv_freq(head_dim: int, theta: float, scaling: RopeScalingConfig | None):
    """RoPE inverse frequencies, with Llama-3 scaling when configured (as HF computes them)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    if scaling is None:
        return inv_freq
    low_wavelen = scaling.original_max_position_embeddings / scaling.low_freq_factor
    high_wavelen = scaling.original_max_position_embeddings / scaling.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / scaling.factor, inv_freq)
    smooth = ((scaling.original_max_position_embeddings / wavelen - scaling.low_freq_factor)
              / (scaling.high_freq_factor - scaling.low_freq_factor))
    smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(medium, smoothed, scaled)


def build_model(cfg: Config, *, first_stage: bool, last_stage: bool,
                device: torch.device) -> GPTModel:
    """One pipeline stage of the model (the first embeds, the last computes logits, or hands
    over its hidden states with a fused head) on `device`, weights unset (`engine.model.init`,
    `engine.hf.importer`, `engine.checkpoint`)."""
    config = transformer_config(cfg)
    m = cfg.model
    model = GPTModel(
        config=config,
        transformer_layer_spec=layer_spec(config, uses_transformer_engine(cfg)),
        vocab_size=m.padded_vocab_size(cfg.parallel.tp),
        max_sequence_length=m.max_position_embeddings,
        pre_process=first_stage,
        post_process=last_stage,
        parallel_output=True,
        share_embeddings_and_output_weights=m.tie_word_embeddings and m.head == "lm",
        position_embedding_type="rope",
        rotary_base=int(m.rope_theta),
    )
    model.rotary_pos_emb.inv_freq = llama3_inv_freq(
        m.kv_channels, m.rope_theta, m.rope_scaling).to(device)
    if m.head == "value" and last_stage:
        model.output_layer = ColumnParallelLinear(
            config.hidden_size, m.padded_output_size(cfg.parallel.tp), config=config,
            init_method=config.init_method, bias=False, gather_output=False,
            tp_group=model.pg_collection.tp)
    if m.head == "lm" and last_stage and cfg.train.cross_entropy == "fused":
        model.output_layer = HiddenStatesHead.replacing(model.output_layer)
    return model.to(device)


def vocab_logits(logits: torch.Tensor, real_vocab_size: int) -> torch.Tensor:
    """TP-sharded logits [..., vocab_padded/TP] -> full logits [..., vocab] (padding dropped)."""
    return gather_from_tensor_model_parallel_region(logits)[..., :real_vocab_size]
