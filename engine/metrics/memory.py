"""GPU memory of a training step, estimated per rank, and the micro-batch token budget that fits.

    estimate = estimate_memory(cfg, tp=..., pp=..., dp=...)   # or recipe_estimate(cfg, world)
    estimate.max_tokens_per_micro_batch(gpu_bytes)   # largest budget that fits, or 0

Model states, per parameter of the largest pipeline stage (÷ TP): bf16 — the bf16 weight (2
bytes), its fp32 gradient (4; grads are reduced in fp32), the fp32 master weight and Adam's two
moments (12, ÷ DP with the distributed optimizer); fp32 — weight and gradient (8) and the two
moments (8, ÷ DP).

Activations saved for the backward, per token of a micro-batch and per layer, in elements of the
compute precision (TE layers, flash attention, no recomputation): the norm inputs and outputs
before attention and MLP (4h, ÷ TP only with sequence parallelism), the attention's q, k, v and
output (2·q + 2·kv, ÷ TP), the fc1 output and the SwiGLU output (3·ffn, ÷ TP). With pipeline
parallelism the first stage holds PP micro-batches in flight over its L/PP layers: L layers in
all. Activation recomputation (`train.recompute`): selective drops the parts it recomputes
(`_layer_activations`); full keeps only the input of each recomputed layer (h, ÷ TP with
sequence parallelism); either adds the recomputed activations of one layer to the transient
bytes. The last stage adds the logits (V/TP in the compute precision; megatron's cross-entropy
adds an fp32 copy and its fp32 softmax). A fused head (`train.cross_entropy=fused`) holds no
logits: per token, the hidden-state gradient its loss computes in the forward and fp32 row
statistics; once, one chunk's logits and the fp32 weight gradient with its cast. On top: one
layer's worth of transient gradients and a fixed reserve for CUDA context, cuBLAS and allocator
workspaces.

Other models a run holds beside the trained one, at the same layout: frozen ones (RLVR's
reference policy: its weights in the compute precision) and trained ones (PPO's value model:
its own model states; its activations come after the policy's, so a micro-batch's bytes per
token and a fused head's buffers are each the larger model's: an upper bound). RLVR's colocated
vLLM engines take their share of the GPU only while they generate, beside the model states
(`generation_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from engine.config import Config, ModelConfig
from kernels.linear_cross_entropy import CHUNK_TOKENS

GIB = 2**30
RESERVE_BYTES = 3 * GIB  # CUDA context, cuBLAS/cuDNN workspaces, allocator fragmentation
USABLE_FRACTION = 0.92  # of the GPU's memory, for the caching allocator's slack


@dataclass(frozen=True)
class MemoryEstimate:
    params_per_rank: int
    model_state_bytes: float
    activation_bytes_per_token: float  # all layers a rank holds in flight
    logits_bytes_per_token: float
    transient_bytes_per_token: float  # one layer's gradients during the backward
    head_bytes: float = 0.0  # a fused head's per-step buffers, whatever the token budget
    other_models_bytes: float = 0.0  # frozen and trained companions, held all run

    @property
    def bytes_per_token(self) -> float:
        return (self.activation_bytes_per_token + self.logits_bytes_per_token
                + self.transient_bytes_per_token)

    def step_bytes(self, tokens_per_micro_batch: int) -> float:
        """Peak bytes of a step whose micro-batches hold this many tokens."""
        return (self.model_state_bytes + self.other_models_bytes + RESERVE_BYTES
                + self.head_bytes + self.bytes_per_token * tokens_per_micro_batch)

    def generation_bytes(self, engine_bytes: float) -> float:
        """Bytes while colocated engines of `engine_bytes` generate: every model's states (the
        trainer's activations freed) beside the engines."""
        return self.model_state_bytes + self.other_models_bytes + RESERVE_BYTES + engine_bytes

    def max_tokens_per_micro_batch(self, gpu_bytes: float, multiple: int = 1024) -> int:
        """The largest token budget (a multiple of `multiple`) whose step fits on a GPU of
        `gpu_bytes`; 0 when the model states alone do not fit."""
        free = gpu_bytes * USABLE_FRACTION - self.step_bytes(0)
        if free <= 0:
            return 0
        return int(free / self.bytes_per_token) // multiple * multiple


def parameter_counts(m: ModelConfig) -> tuple[int, int, int]:
    """(per transformer layer, embedding, output layer; 0 when tied) of the whole model."""
    h, q = m.hidden_size, m.num_attention_heads * m.kv_channels
    kv = m.num_query_groups * m.kv_channels
    attention = h * (q + 2 * kv) + q * h + (q + 2 * kv if m.qkv_bias else 0)
    layer = attention + 3 * h * m.ffn_hidden_size + 2 * h
    embedding = m.vocab_size * h
    tied = m.tie_word_embeddings and m.head == "lm"
    return layer, embedding, 0 if tied else m.output_size * h


def params_per_rank(m: ModelConfig, tp: int, pp: int) -> int:
    """Parameters of the largest stage's TP shard: its layers plus, at PP=1, embedding, output
    layer and final norm; at PP > 1 the embedding (first stage; the last stage's output layer or
    tied copy and norm are no larger)."""
    layer, embedding, output = parameter_counts(m)
    head = embedding + output + m.hidden_size if pp == 1 else embedding + m.hidden_size
    return (m.num_layers // pp * layer + head) // tp


def estimate_memory(cfg: Config, tp: int, pp: int, dp: int, cross_entropy: str = "te",
                    frozen: Sequence[ModelConfig] = (),
                    trained: Sequence[ModelConfig] = ()) -> MemoryEstimate:
    """Per-rank estimate at this layout for training `cfg.model`; `cross_entropy` is the kernel
    that will run (`te` works in place on the logits, `megatron` adds fp32 copies, `fused` holds
    none); `frozen` and `trained`: the other models the run holds (see the module docstring)."""
    policy = _trained_model(cfg, cfg.model, tp, pp, dp, cross_entropy)
    companions = [_trained_model(cfg, m, tp, pp, dp, cross_entropy) for m in trained]
    others = sum(params_per_rank(m, tp, pp) * _element_bytes(cfg) for m in frozen) \
        + sum(c.model_state_bytes for c in companions)
    largest = max([policy, *companions], key=lambda e: e.bytes_per_token)
    return replace(largest, params_per_rank=policy.params_per_rank,
                   model_state_bytes=policy.model_state_bytes,
                   head_bytes=max(e.head_bytes for e in [policy, *companions]),
                   other_models_bytes=others)


def recipe_estimate(cfg: Config, world_size: int) -> MemoryEstimate:
    """`estimate_memory` for a recipe on `world_size` GPUs: its layout, the cross-entropy kernel
    its GPU run takes, and the models its stage holds beside the trained one."""
    p = cfg.parallel
    kernel = cfg.train.cross_entropy if cfg.train.cross_entropy in ("megatron", "fused") else "te"
    frozen, trained = [], []
    if cfg.stage == "rlvr":
        from engine.stages.rlvr import held_models

        frozen, trained = held_models(cfg)
    return estimate_memory(cfg, p.tp, p.pp, cfg.data_parallel_size(world_size),
                           cross_entropy=kernel, frozen=frozen, trained=trained)


def _element_bytes(cfg: Config) -> int:
    """Bytes of one element in the compute precision."""
    return 2 if cfg.precision == "bf16" else 4


def _layer_activations(cfg: Config, m: ModelConfig, tp: int) -> tuple[dict[str, float], set]:
    """Elements per token that one layer saves for its backward, by part, and the parts that
    `train.recompute=selective` frees: `mlp` its fc1 and SwiGLU outputs (its input, the norm's
    output, stays), `layernorm` the norms' outputs (local path; TE fuses the norm into the next
    GEMM), `core_attn` none (flash attention saves no scores, and q, k, v and the output are
    kept as the recomputation's inputs and the projection's)."""
    h, q = m.hidden_size, m.num_attention_heads * m.kv_channels
    kv = m.num_query_groups * m.kv_channels
    norm = h / (tp if cfg.parallel.sp else 1)
    saved = {"norm inputs": 2 * norm, "norm outputs": 2 * norm,
             "attention": (2 * q + 2 * kv) / tp, "mlp": 3 * m.ffn_hidden_size / tp}
    frees = {"mlp": "mlp", "layernorm": "norm outputs"}
    recomputed = {frees[k] for k in cfg.train.recompute_modules if k in frees} \
        if cfg.train.recompute == "selective" else set()
    return saved, recomputed


def _trained_model(cfg: Config, m: ModelConfig, tp: int, pp: int, dp: int,
                   cross_entropy: str) -> MemoryEstimate:
    p = cfg.parallel
    params = params_per_rank(m, tp, pp)
    bf16 = cfg.precision == "bf16"
    optimizer_bytes = (12 if bf16 else 8) / (dp if p.distributed_optimizer else 1)
    state = params * ((2 + 4 if bf16 else 4 + 4) + optimizer_bytes)

    element = _element_bytes(cfg)
    saved, recomputed = _layer_activations(cfg, m, tp)
    per_layer = sum(saved.values()) * element  # a layer's saved elements, none recomputed
    layer_input = saved["norm inputs"] / 2 * element
    t = cfg.train
    if t.recompute == "full":
        share = (t.recompute_layers or m.num_layers // pp) / (m.num_layers // pp)
        activations = m.num_layers * (share * layer_input + (1 - share) * per_layer)
        transient = 2 * per_layer  # a recomputed layer's activations beside its gradients
    else:
        kept = sum(v for k, v in saved.items() if k not in recomputed) * element
        activations = m.num_layers * kept
        transient = per_layer + (per_layer - kept)
    rows = m.padded_output_size(tp) / tp  # this rank's output-layer rows
    logits, head = rows * element, 0.0
    if m.head == "lm" and cross_entropy == "megatron":
        logits += 2 * rows * 4  # its fp32 copy and saved fp32 softmax
    if m.head == "lm" and cross_entropy == "fused":
        logits = m.hidden_size * element + 3 * 4
        head = rows * (CHUNK_TOKENS * element + m.hidden_size * (4 + element))
    return MemoryEstimate(params_per_rank=params, model_state_bytes=state,
                          activation_bytes_per_token=activations,
                          logits_bytes_per_token=logits, transient_bytes_per_token=transient,
                          head_bytes=head)
