"""Model wrapping for training (bf16 module, megatron DDP) and the optimizer + LR schedule.

Adam comes from megatron-core's optimizer factory (TE's or apex's fused Adam on GPU, torch's
AdamW elsewhere), optionally as the distributed optimizer (states sharded over data-parallel
ranks), with gradient clipping by global norm. The LR schedule is megatron's: linear warmup from
0 to `optim.lr`, then cosine or linear decay to `optim.min_lr` at the last step, or constant.
"""

from __future__ import annotations

import math

import torch
from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig
from megatron.core.distributed import finalize_model_grads
from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler
from megatron.core.transformer.module import Float16Module

from engine.config import Config


class Bf16Module(Float16Module):
    """megatron's bf16 wrapper, except that the last stage's logits stay in bf16: the loss
    kernels read bf16 and compute in fp32 (engine.losses.cross_entropy), and an fp32 copy of the
    logits costs 4 bytes per token per vocabulary entry — 8 GB at 16k tokens × 128k — plus its
    backward. bf16 → fp32 is exact, so every loss, log-prob and argmax is unchanged."""

    def forward(self, *inputs, **kwargs):
        kwargs.setdefault("fp32_output", False)
        return super().forward(*inputs, **kwargs)


def wrap_for_training(model: torch.nn.Module, cfg: Config) -> DistributedDataParallel:
    """Bf16Module for bf16, then megatron DDP (grads reduced in fp32, one bucket per call)."""
    config = model.config
    if cfg.precision == "bf16":
        model = Bf16Module(config, model)
    ddp = DistributedDataParallel(
        config=config,
        ddp_config=DistributedDataParallelConfig(
            grad_reduce_in_fp32=True,
            overlap_grad_reduce=False,
            use_distributed_optimizer=cfg.parallel.distributed_optimizer,
            check_for_nan_in_grad=False,  # apply_update skips a non-finite step instead
        ),
        module=model,
    )
    if cfg.train.fuse_wgrad_accumulation:
        _wgrad_into_main_grad(ddp)
    # Losses come globally normalized (engine.losses): finalize without dividing by token count.
    config.finalize_model_grads_func = _finalize_without_token_scaling
    config.no_sync_func = ddp.no_sync
    return ddp


def _wgrad_into_main_grad(ddp: DistributedDataParallel) -> None:
    """TransformerEngine's layers write their weight-gradient GEMMs straight into the fp32
    `main_grad` buffers that DDP allocated (no bf16 weight gradient, no separate fp32 add per
    micro-batch; the sum is also kept in fp32 throughout). megatron's own switch for this,
    `gradient_accumulation_fusion`, also demands apex for its non-TE layers, so it is set on the
    TE modules after DDP has given every weight its `main_grad` (`train.fuse_wgrad_accumulation`,
    which the recipe check allows only with TE's layers)."""
    from transformer_engine.pytorch.module.base import TransformerEngineBaseModule

    for module in ddp.modules():
        if isinstance(module, TransformerEngineBaseModule):
            module.fuse_wgrad_accumulation = True


def _finalize_without_token_scaling(model, num_tokens=None, **kwargs):
    finalize_model_grads(model, None, **kwargs)


def build_optimizer(model: DistributedDataParallel, cfg: Config, max_steps: int,
                    warmup_steps: int):
    o = cfg.optim
    bf16 = cfg.precision == "bf16"
    optimizer = get_megatron_optimizer(
        OptimizerConfig(
            optimizer="adam",
            lr=o.lr,
            min_lr=o.min_lr,
            weight_decay=o.weight_decay,
            adam_beta1=o.beta1,
            adam_beta2=o.beta2,
            adam_eps=o.eps,
            clip_grad=o.clip_grad,
            bf16=bf16,
            params_dtype=torch.bfloat16 if bf16 else torch.float32,
            use_distributed_optimizer=cfg.parallel.distributed_optimizer,
        ),
        [model],
    )
    scheduler = OptimizerParamScheduler(
        optimizer,
        init_lr=0.0,
        max_lr=o.lr,
        min_lr=o.min_lr,
        lr_warmup_steps=warmup_steps,
        lr_decay_steps=max_steps,
        lr_decay_style=o.decay,
        start_wd=o.weight_decay,
        end_wd=o.weight_decay,
        wd_incr_steps=max_steps,
        wd_incr_style="constant",
    )
    return optimizer, scheduler


def apply_update(optimizer, clip_grad: float) -> tuple[bool, float]:
    """megatron's optimizer step, unless the gradient norm is not finite: (updated, grad_norm).

    megatron's bf16 and fp32 optimizers apply any gradient (a NaN norm even passes the clipping
    untouched) and its DDP's NaN check raises from deep inside the backward pass, reading the
    whole gradient buffer once more. Here the global norm, which clipping computes anyway, decides:
    a non-finite one leaves weights, Adam's moments and its step count as they were, and
    `engine.train.skips` decides whether the run goes on. Without clipping the norm is still
    computed, for the log."""
    if optimizer.prepare_grads():  # a loss scaler's own overflow check (none in bf16 or fp32)
        return False, math.nan
    norm = float(optimizer.clip_grad_norm(clip_grad) if clip_grad > 0
                 else optimizer.get_grad_norm())
    if not math.isfinite(norm):
        return False, norm
    return optimizer.step_with_ready_grads(), norm
