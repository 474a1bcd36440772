"""What a run's configuration must satisfy before any process group exists: choices among the
known values, sizes, divisibility by the layout, and the schedule. Every error names the key."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.config.choices import (ARCHS, CHAT_TEMPLATES, CROSS_ENTROPY_KERNELS, HEADS,
                                   PRECISIONS, PREFERENCE_LOSSES, RECOMPUTE, RECOMPUTE_MODULES,
                                   REDUCTIONS, TRANSFORMER_IMPLS)
from engine.errors import ConfigError

if TYPE_CHECKING:
    from engine.config.sections import Config


def validate(cfg: Config, world_size: int) -> None:
    """Reject layouts and values that cannot run, naming the key. Needs no process group."""
    m, p, d = cfg.model, cfg.parallel, cfg.data
    _choice("precision", cfg.precision, PRECISIONS)
    _choice("data.overflow", d.overflow, ("truncate", "drop"))
    _choice("data.on_bad_record", d.on_bad_record, ("error", "skip"))
    _choice("data.chat_template", d.chat_template, CHAT_TEMPLATES)
    _choice("train.loss_reduction", cfg.train.loss_reduction, REDUCTIONS)
    _choice("train.cross_entropy", cfg.train.cross_entropy, CROSS_ENTROPY_KERNELS)
    if cfg.train.cross_entropy == "te":
        from engine.compat import platform

        if not platform.has_transformer_engine():
            raise ConfigError("train.cross_entropy=te needs TransformerEngine on a CUDA "
                              "host; use auto or megatron")
    _choice("train.transformer_impl", cfg.train.transformer_impl, TRANSFORMER_IMPLS)
    _validate_recompute(cfg)
    if cfg.train.transformer_impl == "transformer_engine":
        from engine.compat import platform

        if not platform.has_transformer_engine():
            raise ConfigError("train.transformer_impl=transformer_engine needs "
                              "TransformerEngine on a CUDA host; use auto or local")
    if cfg.train.fuse_wgrad_accumulation:
        from engine.model.spec import uses_transformer_engine

        if not uses_transformer_engine(cfg):
            raise ConfigError("train.fuse_wgrad_accumulation=true needs TransformerEngine's "
                              "layers (a CUDA host with TE, train.transformer_impl auto or "
                              "transformer_engine); other layers' weight gradients are added "
                              "into main_grad by DDP")
    if (cfg.train.max_steps is None) == (cfg.train.epochs is None):
        raise ConfigError("set exactly one of train.max_steps and train.epochs")
    if cfg.train.epochs is not None and cfg.train.epochs <= 0:
        raise ConfigError(f"train.epochs must be > 0, got {cfg.train.epochs}")
    if cfg.optim.warmup_ratio is not None and not 0 <= cfg.optim.warmup_ratio < 1:
        raise ConfigError(f"optim.warmup_ratio must be in [0, 1), got "
                          f"{cfg.optim.warmup_ratio}")
    _choice("model.arch", m.arch, ARCHS)
    _choice("model.head", m.head, HEADS)
    _choice("dpo.loss", cfg.dpo.loss, PREFERENCE_LOSSES)
    if cfg.dpo.beta <= 0:
        raise ConfigError(f"dpo.beta must be > 0, got {cfg.dpo.beta}")
    if not 0 <= cfg.dpo.label_smoothing < 0.5:
        raise ConfigError(f"dpo.label_smoothing must be in [0, 0.5), got "
                          f"{cfg.dpo.label_smoothing}")
    for key in ("gamma", "nll_alpha"):
        if getattr(cfg.dpo, key) < 0:
            raise ConfigError(f"dpo.{key} must be >= 0, got {getattr(cfg.dpo, key)}")
    _validate_optim(cfg)
    if cfg.stage == "rlvr" and world_size % cfg.rollout.tp:
        raise ConfigError(f"world size {world_size} is not divisible by rollout.tp="
                          f"{cfg.rollout.tp} (each group of rollout.tp ranks runs one "
                          f"vLLM engine)")
    for key, value in (("parallel.tp", p.tp), ("parallel.pp", p.pp),
                       ("model.num_layers", m.num_layers), ("model.hidden_size", m.hidden_size),
                       ("model.ffn_hidden_size", m.ffn_hidden_size),
                       ("model.num_attention_heads", m.num_attention_heads),
                       ("model.num_query_groups", m.num_query_groups),
                       ("model.vocab_size", m.vocab_size),
                       ("data.max_seq_len", d.max_seq_len),
                       ("data.max_tokens_per_micro_batch", d.max_tokens_per_micro_batch),
                       ("data.global_batch_size", d.global_batch_size),
                       ("train.log_every", cfg.train.log_every),
                       ("eval.max_new_tokens", cfg.eval.max_new_tokens),
                       ("checkpoint.keep_last", cfg.checkpoint.keep_last)):
        if value < 1:
            raise ConfigError(f"{key} must be >= 1, got {value}")
    if cfg.train.max_skipped_in_a_row < 0:
        raise ConfigError(f"train.max_skipped_in_a_row must be >= 0, got "
                          f"{cfg.train.max_skipped_in_a_row}")
    if cfg.train.max_steps is not None and cfg.train.max_steps < 1:
        raise ConfigError(f"train.max_steps must be >= 1, got {cfg.train.max_steps}")
    if world_size % (p.tp * p.pp):
        raise ConfigError(f"world size {world_size} is not divisible by parallel.tp × "
                          f"parallel.pp = {p.tp} × {p.pp}")
    _divisible("model.num_layers", m.num_layers, "parallel.pp", p.pp)
    _divisible("model.num_attention_heads", m.num_attention_heads, "parallel.tp", p.tp)
    _divisible("model.num_query_groups", m.num_query_groups, "parallel.tp", p.tp)
    _divisible("model.ffn_hidden_size", m.ffn_hidden_size, "parallel.tp", p.tp)
    if m.num_attention_heads % m.num_query_groups:
        raise ConfigError(f"model.num_attention_heads={m.num_attention_heads} is not a "
                          f"multiple of model.num_query_groups={m.num_query_groups}")
    if m.head_dim is None and m.hidden_size % m.num_attention_heads:
        raise ConfigError(f"model.hidden_size={m.hidden_size} is not divisible by "
                          f"model.num_attention_heads={m.num_attention_heads}; set "
                          f"model.head_dim")
    if m.kv_channels % 2:
        raise ConfigError(f"model.head_dim={m.kv_channels} must be even for RoPE")
    if p.sp and p.tp < 2:
        raise ConfigError("parallel.sp needs parallel.tp > 1")
    if m.rope_scaling is not None:
        _choice("model.rope_scaling.rope_type", m.rope_scaling.rope_type, ("llama3",))
    if d.max_tokens_per_micro_batch < d.max_seq_len:
        raise ConfigError(f"data.max_tokens_per_micro_batch={d.max_tokens_per_micro_batch} "
                          f"is smaller than data.max_seq_len={d.max_seq_len}")
    dp = cfg.data_parallel_size(world_size)
    if d.global_batch_size < dp:
        raise ConfigError(f"data.global_batch_size={d.global_batch_size} is smaller than the "
                          f"data-parallel size {dp}")
    if not d.sources:
        raise ConfigError("data.sources is empty: name at least one data file")
    for i, source in enumerate(d.sources):
        if not source.path:
            raise ConfigError(f"data.sources[{i}].path is empty")
        if source.fraction is not None and source.count is not None:
            raise ConfigError(f"data.sources[{i}]: set fraction or count, not both")
        if (source.fraction or 0) < 0 or (source.count or 0) < 0:
            raise ConfigError(f"data.sources[{i}]: fraction and count must be >= 0")
    if cfg.train.max_steps is not None:
        check_warmup(cfg, cfg.train.max_steps)

def _validate_optim(cfg: Config) -> None:
    o = cfg.optim
    _choice("optim.decay", o.decay, ("cosine", "linear", "constant"))
    for key, value in (("optim.lr", o.lr), ("optim.min_lr", o.min_lr),
                       ("optim.weight_decay", o.weight_decay),
                       ("optim.clip_grad", o.clip_grad),  # 0: no clipping
                       ("optim.warmup_steps", o.warmup_steps),
                       ("eval.every_steps", cfg.eval.every_steps),
                       ("checkpoint.every_steps", cfg.checkpoint.every_steps)):
        if value < 0:
            raise ConfigError(f"{key} must be >= 0, got {value}")
    if o.min_lr > o.lr:
        raise ConfigError(f"optim.min_lr={o.min_lr} is larger than optim.lr={o.lr}")
    for key, value in (("optim.beta1", o.beta1), ("optim.beta2", o.beta2)):
        if not 0 <= value < 1:
            raise ConfigError(f"{key} must be in [0, 1), got {value}")
    if o.eps <= 0:
        raise ConfigError(f"optim.eps must be > 0, got {o.eps}")

def check_warmup(cfg: Config, max_steps: int) -> None:
    if cfg.optim.warmup_ratio is None and cfg.optim.warmup_steps > max_steps:
        raise ConfigError(f"optim.warmup_steps={cfg.optim.warmup_steps} exceeds "
                          f"train.max_steps={max_steps}")

def _validate_recompute(cfg: Config) -> None:
    t, per_stage = cfg.train, cfg.model.num_layers // max(cfg.parallel.pp, 1)
    _choice("train.recompute", t.recompute, RECOMPUTE)
    for module in t.recompute_modules:
        _choice("train.recompute_modules", module, RECOMPUTE_MODULES)
    if t.recompute == "selective" and not t.recompute_modules:
        raise ConfigError("train.recompute=selective needs train.recompute_modules (any of "
                          f"{', '.join(RECOMPUTE_MODULES)})")
    if t.recompute_layers is not None:
        if t.recompute != "full":
            raise ConfigError(f"train.recompute_layers applies to train.recompute=full, not "
                              f"{t.recompute}")
        if not 1 <= t.recompute_layers <= per_stage:
            raise ConfigError(f"train.recompute_layers must be 1..{per_stage} (the layers of "
                              f"a pipeline stage), got {t.recompute_layers}")


def _divisible(key: str, value: int, by_key: str, by: int) -> None:
    if value % by:
        raise ConfigError(f"{key}={value} is not divisible by {by_key}={by}")


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")
