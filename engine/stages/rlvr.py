"""Stage `rlvr`: reinforcement learning with verifiable rewards, Tülu 3's last stage, with GRPO
(Tülu 3.1) or PPO (Tülu 3, `rlvr.algorithm=ppo`).

The data are prompts (`engine.data.rlvr_prompts`: Tülu's rows, `messages` + `ground_truth` +
`dataset`), rendered through the chat template's generation prompt; each step takes
`data.global_batch_size` of them in the loader's seeded order. The loop (`engine.train.rlvr_loop`)
generates `rlvr.samples_per_prompt` answers per prompt with vLLM, scores them with the
verifiers, and trains with the clipped surrogate of `engine.losses.grpo` in `rlvr.epochs` ×
`rlvr.mini_batches` optimizer steps: GRPO with group-relative advantages and its KL term, PPO
with GAE advantages from a value model (`engine.train.critic`, trained in the same steps) and
the KL as a per-token reward (`engine.losses.ppo`), so its surrogate has no KL term. With
`eval.sources` (held-out RLVR rows) the engines answer them before, during and after training,
and the verifiers score the answers (eval.jsonl).
"""

from __future__ import annotations

from collections import Counter
from functools import partial

import numpy as np

from engine.config import (ADVANTAGE_NORMALIZATIONS, KL_ESTIMATORS, MATH_RULES, OLD_LOGPROBS,
                           RL_ALGORITHMS, Config, ConfigError, ModelConfig)
from engine.data.chat_template import ChatFormat
from engine.data.prepare import Prepared, Tokenized, prepare
from engine.data.records import SkipReport
from engine.data.rlvr_prompts import load_rlvr_prompts
from engine.hf.config import hf_architecture
from engine.hf.safetensors_io import HFReader
from engine.losses.registry import get_loss
from engine.stages.base import Stage


def _tokenize(cfg: Config, tokenizer, report: SkipReport, counts: Counter) -> Tokenized:
    chat = ChatFormat(cfg.data.chat_template, tokenizer)
    prompts = load_rlvr_prompts(cfg.data, chat, cfg.seed, report, counts,
                                cfg.rlvr.max_prompt_tokens)
    return Tokenized([p.prompt_ids for p in prompts],
                     [np.zeros(len(p.prompt_ids) - 1, dtype=bool) for p in prompts],
                     chat=chat, records=prompts)


def prepare_prompts(cfg: Config) -> Prepared:
    return prepare(cfg, partial(_tokenize, cfg))


def old_logprobs_from_training(cfg: Config) -> bool:
    """Whether the training forward gives the old log-probs (detached): GRPO with one optimizer
    step per rollout batch, where the policy that trains is still the one that sampled. PPO
    needs them before training (its KL penalty is in the rewards)."""
    r = cfg.rlvr
    return (r.old_logprobs == "auto" and r.algorithm == "grpo"
            and r.epochs * r.mini_batches == 1)


def policy_loss(cfg: Config):
    """The clipped surrogate; GRPO adds its KL term, PPO has the KL in its rewards instead."""
    r = cfg.rlvr
    return get_loss("grpo", real_vocab_size=cfg.model.vocab_size, kernel=cfg.train.cross_entropy,
                    clip_low=r.clip_low, clip_high=r.clip_high,
                    kl_coef=r.kl_coef if r.algorithm == "grpo" else 0.0,
                    kl_estimator=r.kl_estimator, temperature=cfg.rollout.temperature,
                    on_policy=old_logprobs_from_training(cfg))


def validate(cfg: Config) -> None:
    r, ro, d = cfg.rlvr, cfg.rollout, cfg.data
    for key, value, allowed in (("rlvr.advantage_normalization", r.advantage_normalization,
                                 ADVANTAGE_NORMALIZATIONS),
                                ("rlvr.algorithm", r.algorithm, RL_ALGORITHMS),
                                ("rlvr.kl_estimator", r.kl_estimator, KL_ESTIMATORS),
                                ("rlvr.old_logprobs", r.old_logprobs, OLD_LOGPROBS),
                                ("rlvr.math_rule", r.math_rule, MATH_RULES),
                                ("rollout.dtype", ro.dtype, (None, "float32", "bfloat16"))):
        if value not in allowed:
            raise ConfigError(f"{key}={value!r} is not one of "
                              f"{', '.join(str(a) for a in allowed if a)}")
    if r.algorithm == "grpo" and r.samples_per_prompt < 2:
        raise ConfigError(f"rlvr.samples_per_prompt={r.samples_per_prompt}: GRPO needs at least "
                          f"2 answers per prompt (its advantages are relative to the group)")
    if cfg.eval.samples_per_prompt is not None and cfg.eval.samples_per_prompt < 1:
        raise ConfigError(f"eval.samples_per_prompt must be >= 1, got "
                          f"{cfg.eval.samples_per_prompt}")
    for key, value in (("rlvr.samples_per_prompt", r.samples_per_prompt),
                       ("rlvr.mini_batches", r.mini_batches), ("rlvr.epochs", r.epochs),
                       ("rollout.tp", ro.tp),
                       ("rollout.max_new_tokens", ro.max_new_tokens),
                       ("rlvr.max_prompt_tokens", r.max_prompt_tokens),
                       ("rlvr.reward_workers", r.reward_workers)):
        if value < 1:
            raise ConfigError(f"{key} must be >= 1, got {value}")
    for key, value in (("rlvr.clip_low", r.clip_low), ("rlvr.clip_high", r.clip_high),
                       ("rlvr.kl_coef", r.kl_coef)):
        if value < 0:
            raise ConfigError(f"{key} must be >= 0, got {value}")
    for key, value in (("rlvr.verifiable_reward", r.verifiable_reward),
                       ("rlvr.reward_timeout_s", r.reward_timeout_s),
                       ("rollout.temperature", ro.temperature)):
        if value <= 0:
            raise ConfigError(f"{key} must be > 0, got {value}")
    if r.algorithm == "ppo":
        _validate_ppo(cfg)
    if not 0 < ro.top_p <= 1:
        raise ConfigError(f"rollout.top_p must be in (0, 1], got {ro.top_p}")
    answers = d.global_batch_size * r.samples_per_prompt
    if answers % r.mini_batches:
        raise ConfigError(f"data.global_batch_size × rlvr.samples_per_prompt = {answers} answers "
                          f"do not split into rlvr.mini_batches={r.mini_batches}")
    longest = r.max_prompt_tokens + ro.max_new_tokens
    if longest > d.max_tokens_per_micro_batch:
        raise ConfigError(f"rlvr.max_prompt_tokens + rollout.max_new_tokens = {longest} does not "
                          f"fit data.max_tokens_per_micro_batch={d.max_tokens_per_micro_batch}")
    if longest > cfg.model.max_position_embeddings:
        raise ConfigError(f"rlvr.max_prompt_tokens + rollout.max_new_tokens = {longest} exceeds "
                          f"model.max_position_embeddings={cfg.model.max_position_embeddings}")


def _validate_ppo(cfg: Config) -> None:
    r, v = cfg.rlvr, cfg.value
    if r.kl_estimator != "k1":
        raise ConfigError(f"rlvr.kl_estimator={r.kl_estimator!r}: PPO puts the KL into the "
                          f"per-token rewards as log p - log p_ref (k1); set rlvr.kl_estimator=k1")
    for key, value in (("rlvr.gamma", r.gamma), ("rlvr.lam", r.lam)):
        if not 0 <= value <= 1:
            raise ConfigError(f"{key} must be in [0, 1], got {value}")
    for key, value in (("value.clip", v.clip), ("value.coef", v.coef)):
        if value <= 0:
            raise ConfigError(f"{key} must be > 0, got {value}")
    if v.lr is not None and v.lr < 0:
        raise ConfigError(f"value.lr must be >= 0, got {v.lr}")
    if v.init_from_hf:
        value_model, where = hf_architecture(v.init_from_hf)
        if value_model.head != "value":
            raise ConfigError(f"value.init_from_hf={v.init_from_hf}: {where} is a language "
                              f"model; PPO's value model starts from a reward model (an HF "
                              f"...ForSequenceClassification with one label)")
        if value_model.vocab_size != cfg.model.vocab_size:
            raise ConfigError(f"value.init_from_hf={v.init_from_hf}: its vocabulary "
                              f"({value_model.vocab_size}) is not the policy's "
                              f"({cfg.model.vocab_size}); both read the same token ids")
        HFReader(v.init_from_hf)  # shards present and readable, before any model


def held_models(cfg: Config) -> tuple[list[ModelConfig], list[ModelConfig]]:
    """The models a run holds beside the policy, at its layout: (frozen: the reference, when the
    loss has a KL term; trained: PPO's value model)."""
    from engine.train.critic import value_model_config

    frozen = [cfg.model] if cfg.rlvr.kl_coef else []
    trained = [value_model_config(cfg)] if cfg.rlvr.algorithm == "ppo" else []
    return frozen, trained


def updates_per_step(cfg: Config) -> int:
    return cfg.rlvr.epochs * cfg.rlvr.mini_batches


def _train(cfg, layout, stage) -> int:
    from engine.train.rlvr_loop import train_rlvr

    return train_rlvr(cfg, layout, stage)


STAGE = Stage(name="rlvr", prepare=prepare_prompts, loss=policy_loss, validate=validate,
              train=_train, updates_per_step=updates_per_step)
