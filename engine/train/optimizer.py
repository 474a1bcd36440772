"""Model wrapping for training (bf16 module, megatron DDP) and the optimizer + LR schedule.

Adam comes from megatron-core's optimizer factory (TE's or apex's fused Adam on GPU, torch's
AdamW elsewhere), optionally as the distributed optimizer (states sharded over data-parallel
ranks), with gradient clipping by global norm. The LR schedule is megatron's: linear warmup from
0 to `optim.lr`, then cosine or linear decay to `optim.min_lr` at the last step, or constant.
"""

from __future__ import annotations

import torch
from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig
from megatron.core.distributed import finalize_model_grads
from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler
from megatron.core.transformer.module import Float16Module

from engine.config import Config


def wrap_for_training(model: torch.nn.Module, cfg: Config) -> DistributedDataParallel:
    """Float16Module for bf16, then megatron DDP (grads reduced in fp32, one bucket per call)."""
    config = model.config
    if cfg.precision == "bf16":
        model = Float16Module(config, model)
    ddp = DistributedDataParallel(
        config=config,
        ddp_config=DistributedDataParallelConfig(
            grad_reduce_in_fp32=True,
            overlap_grad_reduce=False,
            use_distributed_optimizer=cfg.parallel.distributed_optimizer,
            check_for_nan_in_grad=True,
        ),
        module=model,
    )
    # Losses come globally normalized (engine.losses): finalize without dividing by token count.
    config.finalize_model_grads_func = _finalize_without_token_scaling
    config.no_sync_func = ddp.no_sync
    return ddp


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
