"""Hugging Face `config.json` ↔ the engine's ModelConfig, per model family.

Adding a family is one `Family` entry (its HF architecture names and what differs) here, and its
tensor rules in `engine.hf.name_map` if they differ. Unsupported fields are errors naming them.
A family's `...ForSequenceClassification` with one label is a value or reward model
(`model.head=value`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from engine.config import ModelConfig, RopeScalingConfig
from engine.errors import ConfigError


@dataclass(frozen=True)
class Family:
    arch: str  # the engine's model.arch
    hf_architecture: str  # the causal LM
    hf_value_architecture: str  # the value / reward model: one label
    hf_model_type: str
    qkv_bias: bool

    def architecture(self, head: str) -> str:
        return self.hf_architecture if head == "lm" else self.hf_value_architecture


_FAMILIES = (
    Family("llama", "LlamaForCausalLM", "LlamaForSequenceClassification", "llama",
           qkv_bias=False),
    Family("qwen2", "Qwen2ForCausalLM", "Qwen2ForSequenceClassification", "qwen2",
           qkv_bias=True),
)
FAMILIES = {name: (f, head) for f in _FAMILIES
            for name, head in ((f.hf_architecture, "lm"), (f.hf_value_architecture, "value"))}


def family_of(arch: str) -> Family:
    for family in _FAMILIES:
        if family.arch == arch:
            return family
    raise ConfigError(f"model.arch={arch!r} has no Hugging Face mapping")


def read_hf_config(directory: str | Path) -> dict:
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{directory}: no config.json (not a Hugging Face model directory)")
    return json.loads(path.read_text())


def model_config_from_hf(hf: dict, where: str) -> ModelConfig:
    """The engine's ModelConfig for an HF config.json; unsupported fields are errors."""
    archs = hf.get("architectures") or []
    family, head = next((FAMILIES[a] for a in archs if a in FAMILIES), (None, None))
    if family is None:
        raise ConfigError(f"{where}: architectures {archs} not supported (supported: "
                          f"{', '.join(FAMILIES)})")
    labels = len(hf.get("id2label") or {}) or hf.get("num_labels", 2)  # transformers' default
    if head == "value" and labels != 1:
        raise ConfigError(f"{where}: a value model has one label, this "
                          f"{family.hf_value_architecture} has {labels}")
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
        # a value model has no lm_head to tie (its score head is its own)
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)) and head == "lm",
        qkv_bias=family.qkv_bias,
        head=head,
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
        "architectures": [family.architecture(m.head)],
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
    if m.head == "value":
        config.update(id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0})
    if family.arch == "llama":
        config.update(attention_bias=False, mlp_bias=False)
    else:
        config.update(use_sliding_window=False)
    return config


def hf_architecture(directory: str) -> tuple[ModelConfig, str]:
    """(the architecture of an HF model directory, where it was read) for `model.init_from_hf`."""
    where = f"{directory}/config.json"
    return model_config_from_hf(read_hf_config(directory), where), where
