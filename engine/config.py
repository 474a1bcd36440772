"""Typed run configuration: dataclasses per section, read from YAML recipes with `key=value`
overrides, validated before any process group exists.

    cfg = load_recipe("recipes/tiny/pretrain.yaml", ["train.max_steps=10", "parallel.tp=2"])
    cfg.validate(world_size=4)

(`engine.recipe.load_recipe` builds a Config from `read_recipe` + `build_config` and takes the
architecture of the model a run starts from.) Every error names the offending key
(`parallel.tp`, `model.num_query_groups`, ...). Unknown keys and values of the wrong type are
rejected, never ignored. This module knows no file format but YAML.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml


from engine.errors import ConfigError

# The one list of each choice; the modules that implement them import these.
PRECISIONS = ("fp32", "bf16")
REDUCTIONS = ("sum", "token_mean", "sequence_mean")
CROSS_ENTROPY_KERNELS = ("auto", "megatron", "te", "fused")
TRANSFORMER_IMPLS = ("auto", "transformer_engine", "local")
RECOMPUTE = ("none", "selective", "full")
RECOMPUTE_MODULES = ("mlp", "core_attn", "layernorm")
CHAT_TEMPLATES = ("tulu", "llama3", "tokenizer")
ARCHS = ("llama", "qwen2")
HEADS = ("lm", "value")  # next-token logits over the vocabulary, or one scalar per token
PREFERENCE_LOSSES = ("dpo", "dpo_norm", "ipo", "simpo", "hinge")
RL_ALGORITHMS = ("grpo", "ppo")
ADVANTAGE_NORMALIZATIONS = ("standard", "centered")
KL_ESTIMATORS = ("k1", "k2", "k3")
OLD_LOGPROBS = ("auto", "recompute")
MATH_RULES = ("flex", "math_verify")


@dataclass
class RopeScalingConfig:
    """Llama-3 style RoPE frequency scaling (HF `rope_scaling` with rope_type llama3)."""

    rope_type: str = "llama3"
    factor: float = 8.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192


@dataclass
class ModelConfig:
    """Architecture of a Llama-family decoder (Llama 3/3.1/3.2, Qwen2/2.5)."""

    init_from_hf: Optional[str] = None  # HF model directory: architecture and weights from it
    init_from_checkpoint: Optional[str] = None  # engine checkpoint dir: the same, weights only
    arch: str = "llama"  # llama | qwen2
    num_layers: int = 2
    hidden_size: int = 128
    ffn_hidden_size: int = 352
    num_attention_heads: int = 4
    num_query_groups: int = 2  # key/value heads (GQA)
    head_dim: Optional[int] = None  # default: hidden_size // num_attention_heads
    vocab_size: int = 264
    max_position_embeddings: int = 8192
    rope_theta: float = 500000.0
    rope_scaling: Optional[RopeScalingConfig] = None
    norm_eps: float = 1e-5
    tie_word_embeddings: bool = False
    qkv_bias: bool = False  # Qwen2 has biases on q, k and v
    head: str = "lm"  # lm | value (a value or reward model: HF ...ForSequenceClassification)
    init_std: float = 0.02
    make_vocab_size_divisible_by: int = 128

    @property
    def kv_channels(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    def padded_vocab_size(self, tp: int = 1) -> int:
        """Vocabulary rounded up so that every TP rank holds an equal slice; the padded rows
        are zeros and never show in logits or losses."""
        return self._padded(self.vocab_size, tp)

    @property
    def output_size(self) -> int:
        """Columns of the output layer that mean something: the vocabulary, or 1 (value)."""
        return self.vocab_size if self.head == "lm" else 1

    def padded_output_size(self, tp: int = 1) -> int:
        """The output layer's rows, padded like the vocabulary (zeros, never shown)."""
        return self._padded(self.output_size, tp)

    def _padded(self, size: int, tp: int) -> int:
        multiple = math.lcm(self.make_vocab_size_divisible_by, tp)
        return -(-size // multiple) * multiple


@dataclass
class ParallelConfig:
    """Model-parallel layout; data parallelism takes the remaining ranks."""

    tp: int = 1
    pp: int = 1
    sp: bool = False
    distributed_optimizer: bool = False


@dataclass
class SourceConfig:
    """One data source (JSONL, JSON, Parquet, or a `datasets.save_to_disk` directory) and its
    share of the mixture: a `fraction` of its records (> 1 repeats them) or a `count`."""

    path: str = ""
    fraction: Optional[float] = None
    count: Optional[int] = None
    split: Optional[str] = None  # for a saved DatasetDict; default train
    text_field: str = "text"  # pretrain documents
    messages_field: str = "messages"  # chat records (Tülu format)


@dataclass
class DataConfig:
    """Where the data comes from and how it is cut into packed micro-batches."""

    sources: list[SourceConfig] = field(default_factory=list)
    tokenizer: str = "byte"  # byte | HF tokenizer directory | sentencepiece .model
    bos_token: Optional[str] = None  # override the tokenizer's special tokens
    eos_token: Optional[str] = None
    pad_token: Optional[str] = None
    chat_template: str = "tulu"  # tulu | llama3 | tokenizer
    max_seq_len: int = 256
    overflow: str = "truncate"  # truncate | drop: chat examples longer than max_seq_len
    on_bad_record: str = "error"  # error | skip (counted and reported)
    max_tokens_per_micro_batch: int = 512
    global_batch_size: int = 8  # items (sequences; pairs) per optimizer step, over all DP ranks
    shuffle: bool = True


@dataclass
class OptimConfig:
    """Adam with warmup then decay; gradient clipping by global norm."""

    lr: float = 1e-3
    min_lr: float = 0.0
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    clip_grad: float = 1.0
    warmup_steps: int = 0
    warmup_ratio: Optional[float] = None  # fraction of train steps; overrides warmup_steps
    decay: str = "cosine"  # cosine | linear | constant


@dataclass
class TrainConfig:
    max_steps: Optional[int] = None  # or derived from `epochs`
    epochs: Optional[float] = None
    loss_reduction: str = "token_mean"  # sum | token_mean | sequence_mean
    log_every: int = 10
    # the cross-entropy / log-prob kernel (engine.losses.cross_entropy): auto | megatron | te |
    # fused (the output layer's GEMM fused with the loss, never holding the whole logits)
    cross_entropy: str = "auto"
    # TE layers accumulate weight gradients straight into the fp32 main_grad (GPU, TE)
    fuse_wgrad_accumulation: bool = False
    # the layer spec (engine.model.spec): auto (TransformerEngine's where it runs, else local) |
    # transformer_engine | local (megatron's local layers, the engine's norm and attention)
    transformer_impl: str = "auto"
    # activation recomputation (megatron's): none | selective (the submodules in
    # recompute_modules: mlp, core_attn, layernorm) | full (whole layers: the first
    # recompute_layers of each pipeline stage, default all; each keeps only its input)
    recompute: str = "none"
    recompute_modules: list[str] = field(default_factory=lambda: ["mlp"])
    recompute_layers: Optional[int] = None
    # steps in a row whose gradient norm may be non-finite (each skipped: weights and Adam's
    # state unchanged) before the run stops with an error; 0: stop at the first
    max_skipped_in_a_row: int = 3


@dataclass
class EvalConfig:
    """Held-out chat data: loss on its assistant tokens, and exact match of greedy answers
    (the last assistant turn) at PP=1. Runs before training, every `every_steps`, and at the end."""

    sources: list[SourceConfig] = field(default_factory=list)
    every_steps: int = 0  # 0: only before and after training
    max_new_tokens: int = 64
    samples_per_prompt: Optional[int] = None  # rlvr's sampled answers per held-out prompt
    #                                           (default: rlvr.samples_per_prompt)


@dataclass
class DPOConfig:
    """Preference optimization (stage `dpo`): the loss and its coefficients. The initial model's
    log-probs of every pair are computed once before training and cached in `reference_cache`
    (default OUTPUT_DIR/reference_cache), keyed by example and by model, tokenizer and template."""

    loss: str = "dpo_norm"  # dpo | dpo_norm (Tülu 3) | ipo | simpo | hinge
    beta: float = 5.0
    gamma: float = 0.0  # simpo's target margin
    label_smoothing: float = 0.0  # conservative DPO (sigmoid losses)
    nll_alpha: float = 0.0  # weight of an NLL term on the chosen answer
    reference_cache: Optional[str] = None


@dataclass
class RolloutConfig:
    """The vLLM engines that generate RLVR's answers, colocated with the trainer's ranks (one
    engine per group of `tp` ranks: vLLM data parallelism over the world), and how they sample."""

    tp: int = 1  # the engines' own tensor-parallel size, independent of parallel.tp
    max_new_tokens: int = 256  # an answer that reaches it is truncated (flagged)
    temperature: float = 1.0
    top_p: float = 1.0
    dtype: Optional[str] = None  # default: the precision's (fp32 | bf16)
    gpu_memory_fraction: float = 0.4  # GPU: KV cache and weights, slept while training
    cpu_kv_cache_gib: int = 1  # CPU: VLLM_CPU_KVCACHE_SPACE (whole GiB)


@dataclass
class RLVRConfig:
    """Reinforcement learning with verifiable rewards (stage `rlvr`) on each step's
    `data.global_batch_size` prompts × `samples_per_prompt` answers: GRPO (group-relative
    advantages; Tülu 3.1), or PPO (a value model, GAE, the KL as a per-token reward; Tülu 3)."""

    algorithm: str = "grpo"  # grpo | ppo
    samples_per_prompt: int = 16
    advantage_normalization: str = "standard"  # standard (÷ group std) | centered
    clip_low: float = 0.2
    clip_high: float = 0.2
    kl_coef: float = 0.01  # β
    kl_estimator: str = "k3"  # k1 | k2 | k3
    mini_batches: int = 1  # optimizer steps per pass over the rollout batch
    epochs: int = 1  # passes over each rollout batch (PPO epochs)
    # the old log-probs (the policy that sampled, in the trainer): auto — GRPO with one optimizer
    # step per rollout batch (epochs × mini_batches = 1) takes them from its training forward,
    # detached, which saves a forward pass over the answers; otherwise, and with recompute, a
    # separate forward pass before training computes them
    old_logprobs: str = "auto"  # auto | recompute
    verifiable_reward: float = 10.0  # a correct answer's reward (0 otherwise)
    truncation_penalty: Optional[float] = None  # replaces the reward of an answer that never
    #                                            stopped (Tülu 3's PPO: -10); None: no penalty
    gamma: float = 1.0  # PPO: GAE's discount
    lam: float = 0.95  # PPO: GAE's λ
    max_prompt_tokens: int = 2048  # longer prompts are dropped and counted
    math_rule: str = "flex"  # flex (Tülu's) | math_verify
    reward_workers: int = 2  # verifier processes (on global rank 0)
    reward_timeout_s: float = 2.0


@dataclass
class ValueConfig:
    """PPO's value model (`rlvr.algorithm=ppo`): the policy's architecture with a scalar head,
    at the policy's layout, trained beside it by its own Adam and LR schedule."""

    # a reward model (HF ...ForSequenceClassification, one label; Tülu 3: its 8B RM), or None:
    # the policy's initial weights with a fresh head of zeros
    init_from_hf: Optional[str] = None
    lr: Optional[float] = None  # peak LR; None: optim.lr. Warmup and decay are the policy's
    clip: float = 0.2  # the value loss's clip range around the rollout's values
    coef: float = 0.1  # the value loss's coefficient


@dataclass
class CheckpointConfig:
    """Saved every `every_steps` (0: never periodically), at the end, and on SIGTERM/SIGUSR1.
    A resumed run must keep the recipe its checkpoint records, except for the keys (or sections)
    listed in `allow_changes` (`engine.train.run_dir`)."""

    every_steps: int = 0
    keep_last: int = 2
    allow_changes: list[str] = field(default_factory=list)


@dataclass
class LoggingConfig:
    tensorboard: bool = True
    peak_tflops: Optional[float] = None  # per GPU, for MFU; default from the GPU's name


@dataclass
class Config:
    """A whole run."""

    output_dir: str = "runs/default"
    seed: int = 1234
    precision: str = "fp32"  # fp32 | bf16
    stage: str = "pretrain"  # a module of engine/stages (checked by engine.recipe)
    model: ModelConfig = field(default_factory=ModelConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    rlvr: RLVRConfig = field(default_factory=RLVRConfig)
    value: ValueConfig = field(default_factory=ValueConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def data_parallel_size(self, world_size: int) -> int:
        return world_size // (self.parallel.tp * self.parallel.pp)

    def validate(self, world_size: int) -> None:
        """Reject layouts and values that cannot run, naming the key. Needs no process group."""
        m, p, d = self.model, self.parallel, self.data
        _choice("precision", self.precision, PRECISIONS)
        _choice("data.overflow", d.overflow, ("truncate", "drop"))
        _choice("data.on_bad_record", d.on_bad_record, ("error", "skip"))
        _choice("data.chat_template", d.chat_template, CHAT_TEMPLATES)
        _choice("train.loss_reduction", self.train.loss_reduction, REDUCTIONS)
        _choice("train.cross_entropy", self.train.cross_entropy, CROSS_ENTROPY_KERNELS)
        if self.train.cross_entropy == "te":
            from engine.compat import platform

            if not platform.has_transformer_engine():
                raise ConfigError("train.cross_entropy=te needs TransformerEngine on a CUDA "
                                  "host; use auto or megatron")
        _choice("train.transformer_impl", self.train.transformer_impl, TRANSFORMER_IMPLS)
        self._validate_recompute()
        if self.train.transformer_impl == "transformer_engine":
            from engine.compat import platform

            if not platform.has_transformer_engine():
                raise ConfigError("train.transformer_impl=transformer_engine needs "
                                  "TransformerEngine on a CUDA host; use auto or local")
        if (self.train.max_steps is None) == (self.train.epochs is None):
            raise ConfigError("set exactly one of train.max_steps and train.epochs")
        if self.train.epochs is not None and self.train.epochs <= 0:
            raise ConfigError(f"train.epochs must be > 0, got {self.train.epochs}")
        if self.optim.warmup_ratio is not None and not 0 <= self.optim.warmup_ratio < 1:
            raise ConfigError(f"optim.warmup_ratio must be in [0, 1), got "
                              f"{self.optim.warmup_ratio}")
        _choice("model.arch", m.arch, ARCHS)
        _choice("model.head", m.head, HEADS)
        _choice("dpo.loss", self.dpo.loss, PREFERENCE_LOSSES)
        if self.dpo.beta <= 0:
            raise ConfigError(f"dpo.beta must be > 0, got {self.dpo.beta}")
        if not 0 <= self.dpo.label_smoothing < 0.5:
            raise ConfigError(f"dpo.label_smoothing must be in [0, 0.5), got "
                              f"{self.dpo.label_smoothing}")
        for key in ("gamma", "nll_alpha"):
            if getattr(self.dpo, key) < 0:
                raise ConfigError(f"dpo.{key} must be >= 0, got {getattr(self.dpo, key)}")
        self._validate_optim()
        if self.stage == "rlvr" and world_size % self.rollout.tp:
            raise ConfigError(f"world size {world_size} is not divisible by rollout.tp="
                              f"{self.rollout.tp} (each group of rollout.tp ranks runs one "
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
                           ("train.log_every", self.train.log_every),
                           ("eval.max_new_tokens", self.eval.max_new_tokens),
                           ("checkpoint.keep_last", self.checkpoint.keep_last)):
            if value < 1:
                raise ConfigError(f"{key} must be >= 1, got {value}")
        if self.train.max_skipped_in_a_row < 0:
            raise ConfigError(f"train.max_skipped_in_a_row must be >= 0, got "
                              f"{self.train.max_skipped_in_a_row}")
        if self.train.max_steps is not None and self.train.max_steps < 1:
            raise ConfigError(f"train.max_steps must be >= 1, got {self.train.max_steps}")
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
        dp = self.data_parallel_size(world_size)
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
        if self.train.max_steps is not None:
            self.check_warmup(self.train.max_steps)

    def _validate_optim(self) -> None:
        o = self.optim
        _choice("optim.decay", o.decay, ("cosine", "linear", "constant"))
        for key, value in (("optim.lr", o.lr), ("optim.min_lr", o.min_lr),
                           ("optim.weight_decay", o.weight_decay),
                           ("optim.clip_grad", o.clip_grad),  # 0: no clipping
                           ("optim.warmup_steps", o.warmup_steps),
                           ("eval.every_steps", self.eval.every_steps),
                           ("checkpoint.every_steps", self.checkpoint.every_steps)):
            if value < 0:
                raise ConfigError(f"{key} must be >= 0, got {value}")
        if o.min_lr > o.lr:
            raise ConfigError(f"optim.min_lr={o.min_lr} is larger than optim.lr={o.lr}")
        for key, value in (("optim.beta1", o.beta1), ("optim.beta2", o.beta2)):
            if not 0 <= value < 1:
                raise ConfigError(f"{key} must be in [0, 1), got {value}")
        if o.eps <= 0:
            raise ConfigError(f"optim.eps must be > 0, got {o.eps}")

    def check_warmup(self, max_steps: int) -> None:
        if self.optim.warmup_ratio is None and self.optim.warmup_steps > max_steps:
            raise ConfigError(f"optim.warmup_steps={self.optim.warmup_steps} exceeds "
                              f"train.max_steps={max_steps}")

    def resolve_schedule(self, num_items: int) -> tuple[int, int]:
        """(train steps, warmup steps) once the number of training items (sequences; pairs
        for preference data) is known."""
        t, o = self.train, self.optim
        steps = t.max_steps or max(1, math.ceil(t.epochs * num_items
                                                / self.data.global_batch_size))
        self.check_warmup(steps)
        warmup = o.warmup_steps if o.warmup_ratio is None else round(o.warmup_ratio * steps)
        return steps, warmup

    def _validate_recompute(self) -> None:
        t, per_stage = self.train, self.model.num_layers // max(self.parallel.pp, 1)
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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _divisible(key: str, value: int, by_key: str, by: int) -> None:
    if value % by:
        raise ConfigError(f"{key}={value} is not divisible by {by_key}={by}")


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")


def _yaml_line(error: Exception) -> str:
    mark = getattr(error, "problem_mark", None)
    return f"{mark.line + 1}: " if mark is not None else " "


def read_recipe(path: str | Path | None, overrides: list[str] = ()) -> tuple[dict, Path]:
    """The raw recipe mapping with `key=value` overrides applied (values parsed as YAML), and
    the folder relative paths are resolved against. `engine.recipe.load_recipe` builds the
    Config from it.

    The command line wins over the recipe: `train.max_steps=N` replaces a recipe's
    `train.epochs` and `train.epochs=X` its `train.max_steps`, as Hugging Face's Trainer lets
    `max_steps` override epochs.
    """
    raw: dict = {}
    base = Path.cwd()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"recipe not found: {path}")
        with path.open() as f:
            try:
                raw = yaml.safe_load(f) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"{path}:{_yaml_line(e)}invalid YAML "
                                  f"({getattr(e, 'problem', None) or e})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: a recipe must be a mapping of sections")
        base = path.resolve().parent
    overridden = set()
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: invalid YAML value "
                              f"({getattr(e, 'problem', None) or e})") from None
        _set_dotted(raw, key.strip(), parsed)
        overridden.add(key.strip())
    train = raw.get("train")
    for given, replaced in (("train.max_steps", "epochs"), ("train.epochs", "max_steps")):
        if given in overridden and f"train.{replaced}" not in overridden and \
                isinstance(train, dict) and train.get(given.split(".")[1]) is not None:
            train.pop(replaced, None)
    return raw, base


def build_config(raw: dict, base: Path) -> Config:
    """A Config from a raw recipe; relative paths resolved beside the recipe (`base`)."""
    cfg = _build(Config, raw, "")
    for source in cfg.data.sources + cfg.eval.sources:
        source.path = _resolve(base, source.path)
    if cfg.model.init_from_hf and cfg.model.init_from_checkpoint:
        raise ConfigError("set model.init_from_hf or model.init_from_checkpoint, not both")
    for key in ("init_from_hf", "init_from_checkpoint"):
        if getattr(cfg.model, key):
            setattr(cfg.model, key, _resolve(base, getattr(cfg.model, key)))
    if cfg.value.init_from_hf:
        cfg.value.init_from_hf = _resolve(base, cfg.value.init_from_hf)
    return cfg


def _resolve(base: Path, path: str) -> str:
    """A relative path: beside the recipe if it exists there, else from the working directory."""
    if not path or Path(path).is_absolute():
        return path
    candidate = base / path
    return str(candidate if candidate.exists() else Path(path).resolve())


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {key}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def model_config_from_dict(raw: dict) -> ModelConfig:
    """A ModelConfig from its `dataclasses.asdict` form (as checkpoints store it)."""
    return _build(ModelConfig, raw, "model.")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'recipe'} must be a mapping, got "
                          f"{type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        full = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), sorted(names), n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            raise ConfigError(f"unknown key {full}{hint}")
        kwargs[key] = _coerce(hints[key], value, full)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {type(value).__name__}")
        return [_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, str):
        value = _float_literal(value, key)  # YAML 1.1 reads `1e-5` (no dot) as a string
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            raise ConfigError(f"{key} must be finite, got {value}")
        return float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{key} must be {hint.__name__}, got {type(value).__name__} "
                          f"({value!r})")
    return value


def _float_literal(text: str, key: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{key} must be float, got str ({text!r})") from None
