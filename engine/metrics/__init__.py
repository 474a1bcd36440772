"""Metrics: the log, metrics.jsonl / eval.jsonl / tensorboard, throughput and the progress line,
model FLOPs and MFU, per-phase timing."""
