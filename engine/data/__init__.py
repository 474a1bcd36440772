"""Data: tokenizers, sources, packing into THD micro-batches, the resumable global-batch loader."""
