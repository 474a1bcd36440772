"""The one list of each choice a recipe makes; the modules that implement them import these."""

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
