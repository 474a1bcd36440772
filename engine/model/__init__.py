"""The model: layer spec and config (the TE/local switch), GPTModel stages, core attention,
norm, layout-independent init. Knows nothing of launching, data files or checkpoint formats."""
