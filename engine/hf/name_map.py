"""Hugging Face ↔ engine tensor names and layouts: one map for import, export and the rollout
weight sync.

Engine tensors are named by their megatron checkpoint key and layer, in global (unsharded)
layout: `("decoder.layers.self_attention.linear_qkv.weight", 3)`. Each `Rule` says which HF
tensors make one engine tensor and how:

- QKV: HF's q, k, v projections fused into megatron's grouped layout, one block per KV group
  holding that group's query heads, then its key head, then its value head (GQA);
- gate/up: HF's gate and up projections stacked into `linear_fc1` ([gate; up]);
- embedding / output layer: HF's vocabulary padded with zero rows to the engine's size (for TP);
- a value model's head (HF `score.weight` of `...ForSequenceClassification` with one label):
  the output layer, its one row padded with zero rows the same way;
- everything else one to one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from engine.config import ModelConfig
from engine.errors import CheckpointError


def fuse_qkv(m: ModelConfig, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """HF q [heads·d, ...], k/v [groups·d, ...] → megatron grouped [groups·(r+2)·d, ...]."""
    g, d = m.num_query_groups, m.kv_channels
    r = m.num_attention_heads // g
    tail = q.shape[1:]
    fused = torch.cat([q.reshape(g, r * d, *tail), k.reshape(g, d, *tail),
                       v.reshape(g, d, *tail)], dim=1)
    return fused.reshape(g * (r + 2) * d, *tail)


def split_qkv(m: ModelConfig, fused: torch.Tensor) -> list[torch.Tensor]:
    g, d = m.num_query_groups, m.kv_channels
    r = m.num_attention_heads // g
    tail = fused.shape[1:]
    q, k, v = fused.reshape(g, (r + 2) * d, *tail).split([r * d, d, d], dim=1)
    return [q.reshape(g * r * d, *tail), k.reshape(g * d, *tail), v.reshape(g * d, *tail)]


@dataclass(frozen=True)
class Rule:
    engine_key: str
    hf_names: tuple[str, ...]  # with {i} for the layer index
    to_engine: Callable  # (model config, TP size, *hf tensors) -> engine tensor
    to_hf: Callable  # (model config, engine tensor) -> list of hf tensors

    @property
    def per_layer(self) -> bool:
        return "{i}" in self.hf_names[0]


def _same(m, tp, t):
    return t


def _zero_padded(t, rows: int):
    out = t.new_zeros((rows, *t.shape[1:]))
    out[:t.shape[0]] = t
    return out


def _pad_vocab(m, tp, t):
    return _zero_padded(t, m.padded_vocab_size(tp))


def _pad_output(m, tp, t):
    return _zero_padded(t, m.padded_output_size(tp))


def _one(m, t):
    return [t]


def _unpad_vocab(m, t):
    return [t[:m.vocab_size]]


def _unpad_output(m, t):
    return [t[:m.output_size]]


def rules(m: ModelConfig) -> list[Rule]:
    """Every engine tensor of a model with this config and the HF tensors it comes from."""
    layer, attn, mlp = "model.layers.{i}.", "model.layers.{i}.self_attn.", "model.layers.{i}.mlp."
    out = [
        Rule("embedding.word_embeddings.weight", ("model.embed_tokens.weight",), _pad_vocab,
             _unpad_vocab),
        Rule("decoder.layers.self_attention.linear_qkv.layer_norm_weight",
             (layer + "input_layernorm.weight",), _same, _one),
        Rule("decoder.layers.self_attention.linear_qkv.weight",
             tuple(attn + f"{p}_proj.weight" for p in "qkv"),
             lambda m, tp, q, k, v: fuse_qkv(m, q, k, v), split_qkv),
        Rule("decoder.layers.self_attention.linear_proj.weight", (attn + "o_proj.weight",),
             _same, _one),
        Rule("decoder.layers.mlp.linear_fc1.layer_norm_weight",
             (layer + "post_attention_layernorm.weight",), _same, _one),
        Rule("decoder.layers.mlp.linear_fc1.weight", (mlp + "gate_proj.weight",
                                                      mlp + "up_proj.weight"),
             lambda m, tp, gate, up: torch.cat([gate, up]),
             lambda m, t: list(t.chunk(2))),
        Rule("decoder.layers.mlp.linear_fc2.weight", (mlp + "down_proj.weight",), _same, _one),
        Rule("decoder.final_layernorm.weight", ("model.norm.weight",), _same, _one),
    ]
    if m.qkv_bias:
        out.append(Rule("decoder.layers.self_attention.linear_qkv.bias",
                        tuple(attn + f"{p}_proj.bias" for p in "qkv"),
                        lambda m, tp, q, k, v: fuse_qkv(m, q, k, v), split_qkv))
    if m.head == "value":
        out.append(Rule("output_layer.weight", ("score.weight",), _pad_output, _unpad_output))
    elif not m.tie_word_embeddings:
        out.append(Rule("output_layer.weight", ("lm_head.weight",), _pad_vocab, _unpad_vocab))
    return out


def hf_names(rule: Rule, layer: int | None) -> list[str]:
    return [name.format(i=layer) for name in rule.hf_names]


def check_hf_names(names: set[str], m: ModelConfig, directory: str) -> None:
    """HF tensors that the family's map does not use are an error (nothing is skipped)."""
    expected = {name for rule in rules(m)
                for layer in (range(m.num_layers) if rule.per_layer else [None])
                for name in hf_names(rule, layer)}
    unexpected = sorted(n for n in names - expected
                        if not n.endswith("rotary_emb.inv_freq"))
    if m.tie_word_embeddings and m.head == "lm" and "lm_head.weight" in unexpected:
        unexpected.remove("lm_head.weight")  # some tied checkpoints store the copy
    if unexpected:
        more = f" (+{len(unexpected) - 10} more)" if len(unexpected) > 10 else ""
        raise CheckpointError(f"{directory}: tensors the {m.arch} map does not use: "
                              f"{', '.join(unexpected[:10])}{more}")
