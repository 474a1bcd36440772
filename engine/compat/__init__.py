"""Host compatibility: optional-dependency detection, the CPU redirection of megatron-core's CUDA
calls, and fixes for megatron-core bugs — each patch documented in the module that applies it."""
