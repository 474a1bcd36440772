"""Triton kernels of the engine, one per file, each beside the torch reference it is tested against.

Kept free of import-time work: `kernels` is also the import name of another package that
`transformers` probes for.
"""

import functools
import importlib.util


@functools.cache
def triton_installed() -> bool:
    """Whether triton can be imported (it is imported only where a kernel runs)."""
    return importlib.util.find_spec("triton") is not None
