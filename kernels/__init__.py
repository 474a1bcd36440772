"""Triton kernels of the engine, one per file, each beside the torch reference it is tested against.

Kept free of import-time work: `kernels` is also the import name of another package that
`transformers` probes for.
"""
