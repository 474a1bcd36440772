"""Hugging Face ↔ engine: architecture configs, parameter names and layouts, per family.

Engine tensors are named by their megatron checkpoint key and layer, in global (unsharded)
layout: `("decoder.layers.self_attention.linear_qkv.weight", 3)`. Each `Rule` says which HF
tensors make one engine tensor and how:

- QKV: HF's q, k, v projections fused into megatron's grouped layout, one block per KV group
  holding that group's query heads, then its key head, then its value head (GQA);
- gate/up: HF's gate and up projections stacked into `linear_fc1` ([gate; up]);
- embedding / output layer: HF's vocabulary padded with zero rows to the engine's size;
- everything else one to one.

The same map serves the converter CLI, `model.init_from_hf`, and (later) the rollout weight
sync. Adding a family is one `Family` entry: its HF architecture name and what differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from engine.config import ConfigError, ModelConfig, RopeScalingConfig


@dataclass(frozen=True)
class Family:
    arch: str  # the engine's model.arch
    hf_architecture: str
    hf_model_type: str
    qkv_bias: bool


FAMILIES = {f.hf_architecture: f for f in (
    Family("llama", "LlamaForCausalLM", "llama", qkv_bias=False),
    Family("qwen2", "Qwen2ForCausalLM", "qwen2", qkv_bias=True),
)}


def family_of(arch: str) -> Family:
    for family in FAMILIES.values():
        if family.arch == arch:
            return family
    raise ConfigError(f"model.arch={arch!r} has no Hugging Face mapping")


# ---------------------------------------------------------------------------------------------
# Configs


def read_hf_config(directory: str | Path) -> dict:
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{directory}: no config.json (not a Hugging Face model directory)")
    return json.loads(path.read_text())


def model_config_from_hf(hf: dict, where: str) -> ModelConfig:
    """The engine's ModelConfig for an HF config.json; unsupported fields are errors."""
    archs = hf.get("architectures") or []
    family = next((FAMILIES[a] for a in archs if a in FAMILIES), None)
    if family is None:
        raise ConfigError(f"{where}: architectures {archs} not supported (supported: "
                          f"{', '.join(FAMILIES)})")
    for flag in ("mlp_bias", "use_sliding_window"):
        if hf.get(flag):
            raise ConfigError(f"{where}: {flag}=true is not supported")
    if hf.get("hidden_act", "silu") != "silu":
        raise ConfigError(f"{where}: hidden_act={hf['hidden_act']!r} is not supported (silu)")
    if family.arch == "llama" and hf.get("attention_bias"):
        raise ConfigError(f"{where}: attention_bias=true is not supported for Llama")
    rope = dict(hf.get("rope_parameters") or {})  # transformers 5 layout
    theta = rope.pop("rope_theta", hf.get("rope_theta", 10000.0))
    scaling = hf.get("rope_scaling") or (rope if rope.get("rope_type", "default") != "default"
                                         else None)
    heads = hf["num_attention_heads"]
    return ModelConfig(
        arch=family.arch,
        num_layers=hf["num_hidden_layers"],
        hidden_size=hf["hidden_size"],
        ffn_hidden_size=hf["intermediate_size"],
        num_attention_heads=heads,
        num_query_groups=hf.get("num_key_value_heads") or heads,
        head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
        vocab_size=hf["vocab_size"],
        max_position_embeddings=hf.get("max_position_embeddings", 8192),
        rope_theta=float(theta),
        rope_scaling=_rope_scaling(scaling, where),
        norm_eps=hf.get("rms_norm_eps", 1e-6),
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
        qkv_bias=family.qkv_bias,
    )


def _rope_scaling(scaling: dict | None, where: str) -> RopeScalingConfig | None:
    if not scaling:
        return None
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind != "llama3":
        raise ConfigError(f"{where}: rope scaling {kind!r} is not supported (llama3)")
    return RopeScalingConfig(
        factor=float(scaling["factor"]), low_freq_factor=float(scaling["low_freq_factor"]),
        high_freq_factor=float(scaling["high_freq_factor"]),
        original_max_position_embeddings=int(scaling["original_max_position_embeddings"]))


def hf_config_from_model(m: ModelConfig, dtype: str) -> dict:
    family = family_of(m.arch)
    config = {
        "architectures": [family.hf_architecture],
        "model_type": family.hf_model_type,
        "hidden_size": m.hidden_size,
        "intermediate_size": m.ffn_hidden_size,
        "num_hidden_layers": m.num_layers,
        "num_attention_heads": m.num_attention_heads,
        "num_key_value_heads": m.num_query_groups,
        "head_dim": m.kv_channels,
        "vocab_size": m.vocab_size,
        "max_position_embeddings": m.max_position_embeddings,
        "rms_norm_eps": m.norm_eps,
        "rope_theta": m.rope_theta,
        "rope_scaling": None if m.rope_scaling is None else {
            "rope_type": "llama3", "factor": m.rope_scaling.factor,
            "low_freq_factor": m.rope_scaling.low_freq_factor,
            "high_freq_factor": m.rope_scaling.high_freq_factor,
            "original_max_position_embeddings":
                m.rope_scaling.original_max_position_embeddings},
        "tie_word_embeddings": m.tie_word_embeddings,
        "hidden_act": "silu",
        "torch_dtype": dtype,
    }
    if family.arch == "llama":
        config.update(attention_bias=False, mlp_bias=False)
    else:
        config.update(use_sliding_window=False)
    return config


# ---------------------------------------------------------------------------------------------
# Tensor layouts


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
    to_engine: Callable  # (model config, padded vocab, *hf tensors) -> engine tensor
    to_hf: Callable  # (model config, engine tensor) -> list of hf tensors

    @property
    def per_layer(self) -> bool:
        return "{i}" in self.hf_names[0]


def _same(m, vocab, t):
    return t


def _pad_vocab(m, vocab, t):
    out = t.new_zeros((vocab, *t.shape[1:]))
    out[:t.shape[0]] = t
    return out


def _one(m, t):
    return [t]


def _unpad_vocab(m, t):
    return [t[:m.vocab_size]]


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
             lambda m, vocab, q, k, v: fuse_qkv(m, q, k, v), split_qkv),
        Rule("decoder.layers.self_attention.linear_proj.weight", (attn + "o_proj.weight",),
             _same, _one),
        Rule("decoder.layers.mlp.linear_fc1.layer_norm_weight",
             (layer + "post_attention_layernorm.weight",), _same, _one),
        Rule("decoder.layers.mlp.linear_fc1.weight", (mlp + "gate_proj.weight",
                                                      mlp + "up_proj.weight"),
             lambda m, vocab, gate, up: torch.cat([gate, up]),
             lambda m, t: list(t.chunk(2))),
        Rule("decoder.layers.mlp.linear_fc2.weight", (mlp + "down_proj.weight",), _same, _one),
        Rule("decoder.final_layernorm.weight", ("model.norm.weight",), _same, _one),
    ]
    if m.qkv_bias:
        out.append(Rule("decoder.layers.self_attention.linear_qkv.bias",
                        tuple(attn + f"{p}_proj.bias" for p in "qkv"),
                        lambda m, vocab, q, k, v: fuse_qkv(m, q, k, v), split_qkv))
    if not m.tie_word_embeddings:
        out.append(Rule("output_layer.weight", ("lm_head.weight",), _pad_vocab, _unpad_vocab))
    return out


def hf_names(rule: Rule, layer: int | None) -> list[str]:
    return [name.format(i=layer) for name in rule.hf_names]
