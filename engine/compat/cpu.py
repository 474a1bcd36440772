"""Make megatron-core run on a host without CUDA. Active only when CUDA is absent.

megatron-core assumes a GPU in a handful of places. `activate()` redirects exactly these, and
nothing else in the engine works around CUDA:

1. `torch.cuda.current_device()` as a `device=` argument (RoPE buffers, TP scratch buffers, p2p
   shape tensors, grad buffers), `device="cuda"` literals in tensor factories (the pipeline
   schedules' token counter, the optimizer's found-inf flags, grad-clipping norms),
   `torch.cuda.synchronize()` / `empty_cache()` (p2p, DDP, optimizer), and CUDA streams and
   events (DDP's communication stream). In the modules listed in `_MODULES_USING_CUDA`, the name
   `torch` is rebound to a proxy that behaves like `torch` except that these calls land on the
   CPU: factories get `device="cpu"`, `current_device()` returns "cpu", synchronize/empty_cache
   do nothing, streams and events are inert (the CPU runs everything in program order).
2. Tensor methods that assume CUDA: `tensor.type() == 'torch.cuda.FloatTensor'` dtype checks in
   the optimizers and grad clipping, `weight.data.cuda()` when the tied output layer is
   synchronized with the embedding across pipeline stages, and `send_tensor.cuda()` when the
   distributed optimizer gathers its states for a checkpoint. During exactly those functions
   (`_CUDA_TENSOR_METHODS`), `Tensor.type()` without arguments reports the CUDA type name of a
   CPU tensor (the dtype the check is about is unchanged) and `Tensor.cuda()` returns the tensor.
3. megatron's RNG tracker: `model_parallel_cuda_manual_seed` with `inference_rng_tracker=True`
   (see `engine.launch.seeds`), because CUDA RNG states cannot be forked on the CPU. The
   engine's weights come from per-tensor CPU generators (`engine.model.init`), and Llama-family
   models have no dropout, so no CUDA RNG stream is consumed.

4. Activation recomputation (`train.recompute`): megatron's checkpoint saves and restores the
   CUDA RNG state around each recomputed forward. A CPU has none (megatron saves the CPU RNG
   state beside it), so `_get_cuda_rng_state` returns an empty state and `_set_cuda_rng_state`
   does nothing, instead of failing, or queuing one callback per restore for a CUDA
   initialization that never comes.

`activate()` is idempotent and does nothing when `torch.cuda.is_available()`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import types

import torch

_MODULES_USING_CUDA = (
    "megatron.core.utils",
    "megatron.core.tensor_parallel.layers",
    "megatron.core.tensor_parallel.mappings",
    "megatron.core.tensor_parallel.random",
    "megatron.core.models.common.embeddings.rotary_pos_embedding",
    "megatron.core.pipeline_parallel.schedules",
    "megatron.core.pipeline_parallel.p2p_communication",
    "megatron.core.distributed.distributed_data_parallel",
    "megatron.core.distributed.param_and_grad_buffer",
    "megatron.core.distributed.finalize_model_grads",
    "megatron.core.optimizer.optimizer",
    "megatron.core.optimizer.distrib_optimizer",
    "megatron.core.optimizer.clip_grads",
    "megatron.core.dist_checkpointing.strategies.filesystem_async",
    "megatron.core.dist_checkpointing.strategies.state_dict_saver",
    "megatron.core.dist_checkpointing.strategies.async_utils",
)

# (module, attribute path) of the functions that call `Tensor.type()` or `Tensor.cuda()`.
_CUDA_TENSOR_METHODS = (
    ("megatron.core.optimizer.distrib_optimizer",
     "DistributedOptimizer._build_model_and_main_param_groups"),
    ("megatron.core.optimizer.optimizer", "Float16OptimizerWithFloat16Params.__init__"),
    ("megatron.core.optimizer.clip_grads", "clip_grad_by_total_norm_fp32"),
    ("megatron.core.optimizer.optimizer", "clip_grad_by_total_norm_fp32"),
    ("megatron.core.models.common.language_module.language_module",
     "LanguageModule.setup_embeddings_and_output_layer"),
    ("megatron.core.optimizer.distrib_optimizer",
     "DistributedOptimizer.get_parameter_state_dp_zero"),
)

_FACTORIES = ("zeros", "ones", "empty", "full", "tensor", "arange", "rand", "randn", "randint")
_active = False


def _cpu_device(device):
    if device is None:
        return None
    if isinstance(device, int) or torch.device(device).type == "cuda":
        return torch.device("cpu")
    return device


class _InertStream:
    """Stands in for torch.cuda.Stream/Event: the CPU executes in order, so waits are no-ops."""

    def __init__(self, *args, **kwargs):
        pass

    def wait_stream(self, other):
        pass

    def wait_event(self, event):
        pass

    def record_event(self, event=None):
        return _InertStream()

    def record(self, stream=None):
        pass

    def wait(self, stream=None):
        pass

    def synchronize(self):
        pass

    def query(self):
        return True


class _CpuCuda(types.ModuleType):
    """`torch.cuda` as megatron-core sees it on a CPU host."""

    def __init__(self):
        super().__init__("torch.cuda")
        self.Stream = _InertStream
        self.Event = _InertStream

    def __getattr__(self, name):
        return getattr(torch.cuda, name)

    @staticmethod
    def current_device():
        return "cpu"

    @staticmethod
    def synchronize(device=None):
        pass

    @staticmethod
    def empty_cache():
        pass

    @staticmethod
    def default_stream(device=None):
        return _InertStream()

    @staticmethod
    def current_stream(device=None):
        return _InertStream()

    @staticmethod
    def stream(stream):
        return contextlib.nullcontext()


class _CpuTorch(types.ModuleType):
    """`torch` with CUDA device requests redirected to the CPU; everything else is torch."""

    def __init__(self):
        super().__init__("torch")
        self.cuda = _CpuCuda()
        for name in _FACTORIES:
            setattr(self, name, self._redirect(getattr(torch, name)))

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def _redirect(factory):
        @functools.wraps(factory)
        def on_cpu(*args, **kwargs):
            if "device" in kwargs:
                kwargs["device"] = _cpu_device(kwargs["device"])
            return factory(*args, **kwargs)

        return on_cpu


_CUDA_TYPE_NAMES = {
    torch.float32: "torch.cuda.FloatTensor",
    torch.float16: "torch.cuda.HalfTensor",
    torch.bfloat16: "torch.cuda.BFloat16Tensor",
}


def _with_cuda_tensor_methods(fn):
    original_type, original_cuda = torch.Tensor.type, torch.Tensor.cuda

    def cuda_named_type(self, dtype=None, *args, **kwargs):
        if dtype is None and not args and not kwargs and self.dtype in _CUDA_TYPE_NAMES:
            return _CUDA_TYPE_NAMES[self.dtype]
        return original_type(self, dtype, *args, **kwargs)

    def stay_on_cpu(self, *args, **kwargs):
        return self

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        torch.Tensor.type, torch.Tensor.cuda = cuda_named_type, stay_on_cpu
        try:
            return fn(*args, **kwargs)
        finally:
            torch.Tensor.type, torch.Tensor.cuda = original_type, original_cuda

    return wrapper


def activate() -> bool:
    """Apply the redirections when CUDA is absent. Returns True when they are in force."""
    global _active
    if torch.cuda.is_available():
        return False
    if _active:
        return True
    proxy = _CpuTorch()
    for name in _MODULES_USING_CUDA:
        module = importlib.import_module(name)
        if getattr(module, "torch", None) is torch:
            module.torch = proxy
    for module_name, path in _CUDA_TENSOR_METHODS:
        owner = importlib.import_module(module_name)
        *parents, attr = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        raw = owner.__dict__[attr]
        if isinstance(raw, classmethod):
            setattr(owner, attr, classmethod(_with_cuda_tensor_methods(raw.__func__)))
        else:
            setattr(owner, attr, _with_cuda_tensor_methods(raw))
    rng = importlib.import_module("megatron.core.tensor_parallel.random")
    rng._get_cuda_rng_state = _no_cuda_rng_state
    rng._set_cuda_rng_state = _set_no_cuda_rng_state
    _active = True
    return True


def _no_cuda_rng_state(*args, **kwargs) -> torch.Tensor:
    return torch.empty(0, dtype=torch.uint8)


def _set_no_cuda_rng_state(*args, **kwargs) -> None:
    pass


def is_active() -> bool:
    return _active
