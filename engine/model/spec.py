"""The layer spec and megatron TransformerConfig of a Llama-family decoder.

`layer_spec()` is the one switch between backends: TransformerEngine's fused layers, or
megatron's local linear layers with the engine's RMSNorm and packed-sequence core attention.
`train.transformer_impl` chooses (`uses_transformer_engine`): `auto` takes TE where TE and CUDA
are present, `local` forces the local layers (a GPU without TE, or measuring them beside TE).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from megatron.core.fusions.fused_bias_dropout import get_bias_dropout_add
from megatron.core.tensor_parallel import ColumnParallelLinear, RowParallelLinear
from megatron.core.transformer import TransformerConfig
from megatron.core.transformer.attention import SelfAttention, SelfAttentionSubmodules
from megatron.core.transformer.enums import AttnMaskType
from megatron.core.transformer.identity_op import IdentityOp
from megatron.core.transformer.mlp import MLP, MLPSubmodules
from megatron.core.transformer.spec_utils import ModuleSpec
from megatron.core.transformer.transformer_block import (
    TransformerBlockSubmodules,
    get_num_layers_to_build,
)
from megatron.core.transformer.transformer_layer import (
    TransformerLayer,
    TransformerLayerSubmodules,
)

from engine.compat import platform
from engine.config import Config
from engine.model.attention import CoreAttention
from engine.model.norm import RMSNorm


def _set_by_engine_weights(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def uses_transformer_engine(cfg: Config) -> bool:
    """Whether the model is built from TransformerEngine's layers (`train.transformer_impl`)."""
    impl = cfg.train.transformer_impl
    return impl == "transformer_engine" or (impl == "auto" and platform.has_transformer_engine())


def transformer_config(cfg: Config) -> TransformerConfig:
    m, p = cfg.model, cfg.parallel
    bf16 = cfg.precision == "bf16"
    dtype = torch.bfloat16 if bf16 else torch.float32
    te = uses_transformer_engine(cfg)
    return TransformerConfig(
        num_layers=m.num_layers,
        hidden_size=m.hidden_size,
        ffn_hidden_size=m.ffn_hidden_size,
        num_attention_heads=m.num_attention_heads,
        num_query_groups=m.num_query_groups,
        kv_channels=m.kv_channels,
        tensor_model_parallel_size=p.tp,
        pipeline_model_parallel_size=p.pp,
        sequence_parallel=p.sp,
        normalization="RMSNorm",
        layernorm_epsilon=m.norm_eps,
        gated_linear_unit=True,
        activation_func=F.silu,
        add_bias_linear=False,
        add_qkv_bias=m.qkv_bias,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        # megatron tags tensor-parallel weights (partition dim, stride) only while initializing
        # them; the init itself is a no-op because engine.model.init sets every value afterwards.
        perform_initialization=True,
        init_method=_set_by_engine_weights,
        output_layer_init_method=_set_by_engine_weights,
        use_cpu_initialization=not platform.has_cuda(),
        params_dtype=dtype,
        pipeline_dtype=dtype,
        bf16=bf16,
        # The loss function returns globally normalized sums (engine.losses); megatron must
        # neither divide by the micro-batch count nor average over data-parallel ranks.
        calculate_per_token_loss=True,
        variable_seq_lengths=p.pp > 1,  # packed micro-batches differ in length
        moe_token_dispatcher_type="alltoall",  # megatron rejects its default with the above
        # megatron's torch.compile'd SwiGLU and residual add on CUDA (either spec; on CPUs
        # compiling costs more than it saves); RoPE fused by TE's kernels, or computed on the
        # device by engine.model.rope on the local path.
        bias_activation_fusion=platform.has_cuda(),
        bias_dropout_fusion=platform.has_cuda(),
        apply_rope_fusion=te,
        masked_softmax_fusion=False,
        gradient_accumulation_fusion=False,
        deallocate_pipeline_outputs=True,
        **recompute_settings(cfg),
    )


def recompute_settings(cfg: Config) -> dict:
    """megatron's activation-recomputation fields for `train.recompute`: selective recomputes
    the listed submodules of every layer; full recomputes whole layers, the first
    `recompute_layers` of each pipeline stage (megatron's block method), one at a time."""
    t = cfg.train
    if t.recompute == "selective":
        return {"recompute_granularity": "selective",
                "recompute_modules": list(t.recompute_modules)}
    if t.recompute == "full":
        return {"recompute_granularity": "full", "recompute_method": "block",
                "recompute_num_layers": t.recompute_layers
                or cfg.model.num_layers // cfg.parallel.pp}
    return {}


def local_layer_spec() -> ModuleSpec:
    """megatron's local layers with the engine's RMSNorm and packed-aware core attention."""
    return ModuleSpec(
        module=TransformerLayer,
        submodules=TransformerLayerSubmodules(
            input_layernorm=RMSNorm,
            self_attention=ModuleSpec(
                module=SelfAttention,
                params={"attn_mask_type": AttnMaskType.causal},
                submodules=SelfAttentionSubmodules(
                    linear_qkv=ColumnParallelLinear,
                    core_attention=CoreAttention,
                    linear_proj=RowParallelLinear,
                    q_layernorm=IdentityOp,
                    k_layernorm=IdentityOp,
                ),
            ),
            self_attn_bda=get_bias_dropout_add,
            pre_mlp_layernorm=RMSNorm,
            mlp=ModuleSpec(module=MLP, submodules=MLPSubmodules(
                linear_fc1=ColumnParallelLinear, linear_fc2=RowParallelLinear)),
            mlp_bda=get_bias_dropout_add,
            # Same checkpoint keys as TE's fused norm+linear layers.
            sharded_state_dict_keys_map={
                "input_layernorm.": "self_attention.linear_qkv.layer_norm_",
                "pre_mlp_layernorm.": "mlp.linear_fc1.layer_norm_",
            },
        ),
    )


def layer_spec(config: TransformerConfig, transformer_engine: bool):
    """The single backend switch: TE's spec, or the local spec."""
    if transformer_engine:
        from megatron.core.models.gpt.gpt_layer_specs import (
            get_gpt_layer_with_transformer_engine_spec,
        )

        return get_gpt_layer_with_transformer_engine_spec()
    layer = local_layer_spec()
    return TransformerBlockSubmodules(layer_specs=[layer] * get_num_layers_to_build(config),
                                      layer_norm=RMSNorm)
