"""Megatron-style post-training engine: SFT, DPO and RLVR for Llama-family models."""
