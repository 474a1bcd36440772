"""Llama-family decoders (Llama 3/3.1/3.2, Qwen2/2.5) as megatron-core GPTModel pipeline stages.

    model = build_model(cfg, layout)      # this rank's stage, weights not yet set

`layer_spec()` is the one switch between backends: TransformerEngine's fused layers when TE
and CUDA are present, otherwise megatron's local linear layers with the engine's RMSNorm and
packed-sequence core attention. The embedding and output layer hold a vocabulary padded to a
multiple of `make_vocab_size_divisible_by` (and of TP); `real_vocab_size` tells the loss and the
logits which columns are real, so the padding never shows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from megatron.core.models.gpt import GPTModel
from megatron.core.tensor_parallel import gather_from_tensor_model_parallel_region
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
from megatron.core.fusions.fused_bias_dropout import get_bias_dropout_add

from engine import platform
from engine.attention import CoreAttention
from engine.config import Config, ModelConfig, RopeScalingConfig
from engine.dist import Layout
from engine.norm import RMSNorm


def padded_vocab_size(m: ModelConfig, tp: int) -> int:
    """Vocabulary rounded up so that every TP rank holds an equal slice."""
    multiple = math.lcm(m.make_vocab_size_divisible_by, tp)
    return -(-m.vocab_size // multiple) * multiple


def _set_by_engine_weights(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def transformer_config(cfg: Config) -> TransformerConfig:
    m, p = cfg.model, cfg.parallel
    bf16 = cfg.precision == "bf16"
    dtype = torch.bfloat16 if bf16 else torch.float32
    te = platform.has_transformer_engine()
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
        # them; the init itself is a no-op because engine.weights sets every value afterwards.
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
        bias_activation_fusion=te,
        bias_dropout_fusion=te,
        apply_rope_fusion=te,
        masked_softmax_fusion=False,
        gradient_accumulation_fusion=False,
        deallocate_pipeline_outputs=True,
    )


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


def layer_spec(config: TransformerConfig):
    """The single backend switch: TE's spec with TE and CUDA, the local spec otherwise."""
    if platform.has_transformer_engine():
        from megatron.core.models.gpt.gpt_layer_specs import (
            get_gpt_layer_with_transformer_engine_spec,
        )

        return get_gpt_layer_with_transformer_engine_spec()
    layer = local_layer_spec()
    return TransformerBlockSubmodules(layer_specs=[layer] * get_num_layers_to_build(config),
                                      layer_norm=RMSNorm)


def llama3_inv_freq(head_dim: int, theta: float, scaling: RopeScalingConfig | None):
    """RoPE inverse frequencies, with Llama-3 scaling when configured (as HF computes them)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    if scaling is None:
        return inv_freq
    low_wavelen = scaling.original_max_position_embeddings / scaling.low_freq_factor
    high_wavelen = scaling.original_max_position_embeddings / scaling.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / scaling.factor, inv_freq)
    smooth = ((scaling.original_max_position_embeddings / wavelen - scaling.low_freq_factor)
              / (scaling.high_freq_factor - scaling.low_freq_factor))
    smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(medium, smoothed, scaled)


def build_model(cfg: Config, layout: Layout) -> GPTModel:
    """This rank's pipeline stage of the model, on the rank's device, weights unset."""
    config = transformer_config(cfg)
    m = cfg.model
    model = GPTModel(
        config=config,
        transformer_layer_spec=layer_spec(config),
        vocab_size=padded_vocab_size(m, layout.tp),
        max_sequence_length=m.max_position_embeddings,
        pre_process=layout.is_first_stage,
        post_process=layout.is_last_stage,
        parallel_output=True,
        share_embeddings_and_output_weights=m.tie_word_embeddings,
        position_embedding_type="rope",
        rotary_base=int(m.rope_theta),
    )
    model.rotary_pos_emb.inv_freq = llama3_inv_freq(
        m.kv_channels, m.rope_theta, m.rope_scaling).to(layout.device)
    model.real_vocab_size = m.vocab_size
    return model.to(layout.device)


def vocab_logits(logits: torch.Tensor, real_vocab_size: int) -> torch.Tensor:
    """TP-sharded logits [..., vocab_padded/TP] -> full logits [..., vocab] (padding dropped)."""
    return gather_from_tensor_model_parallel_region(logits)[..., :real_vocab_size]
