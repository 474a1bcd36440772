"""Tiny random Hugging Face models saved with `transformers`, one per architecture shape the
converters must handle (GQA with Llama-3 RoPE scaling and untied output, MQA tied, Qwen2 with
QKV biases, a Llama value model: `LlamaForSequenceClassification` with one label)."""

import torch

SHAPES = {  # name: (transformers config class, kwargs); all fp32, random weights of scale 0.1
    "llama-gqa2-rope-scaled-untied": ("LlamaConfig", dict(
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
        rope_theta=500000.0, rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                           "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                           "original_max_position_embeddings": 64})),
    "llama-mqa-tied": ("LlamaConfig", dict(num_attention_heads=4, num_key_value_heads=1,
                                           tie_word_embeddings=True)),
    "qwen2-bias-gqa4-tied": ("Qwen2Config", dict(num_attention_heads=8, num_key_value_heads=2,
                                                 head_dim=32, hidden_size=128,
                                                 tie_word_embeddings=True)),
    "llama-value": ("LlamaConfig", dict(num_attention_heads=4, num_key_value_heads=2,
                                        tie_word_embeddings=False, num_labels=1,
                                        pad_token_id=0)),
}


def make_hf_model(directory, shape):
    import transformers

    name, extra = SHAPES[shape]
    config = getattr(transformers, name)(**{
        "hidden_size": 128, "intermediate_size": 192, "num_hidden_layers": 4, "head_dim": 32,
        "vocab_size": 300, "max_position_embeddings": 1024, **extra})
    torch.manual_seed(0)
    auto = transformers.AutoModelForSequenceClassification if "num_labels" in extra else \
        transformers.AutoModelForCausalLM
    model = auto.from_config(config)
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.normal_(1.0 if "norm" in n else 0.0, 0.1)
    model.save_pretrained(directory, max_shard_size="300KB")
    return directory
