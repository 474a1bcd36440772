"""Checkpoints: the trainer's resumable state (`train_state`), single tensors read from and
weights-only checkpoints written to the on-disk format (`reader`, `writer`), and a model's
weights and architecture taken from a checkpoint (`weights`)."""
