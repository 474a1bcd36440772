"""Losses: pure functions on a packed micro-batch and its logits, registered by name
(`registry`; every module of this package that registers one is loaded on first lookup), and
the global loss-reduction weights (`reduction`)."""
