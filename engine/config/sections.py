"""The recipe's sections as dataclasses, with their defaults and derived sizes, and `Config`, a
whole run. `Config.validate` runs the checks of `engine.config.checks`."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional

from engine.config import checks


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
        checks.validate(self, world_size)

    def resolve_schedule(self, num_items: int) -> tuple[int, int]:
        """(train steps, warmup steps) once the number of training items (sequences; pairs
        for preference data) is known."""
        t, o = self.train, self.optim
        steps = t.max_steps or max(1, math.ceil(t.epochs * num_items
                                                / self.data.global_batch_size))
        checks.check_warmup(self, steps)
        warmup = o.warmup_steps if o.warmup_ratio is None else round(o.warmup_ratio * steps)
        return steps, warmup

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
