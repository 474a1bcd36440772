"""RLVR's rollout placement: vLLM engines colocated with the trainer's ranks, behind the small
interface the RLVR loop uses (a placement on other GPUs or nodes would offer the same three
calls).

    rollout = ColocatedRollout(cfg, layout, stop_token_ids, work_dir)
    rollout.refit(model, version=step)               # every rank: the trainer's weights, in place
    groups = rollout.generate(prompts, seeds, spec, model)  # every rank: every completion
    rollout.sleep()                                  # GPU: memory to the trainer until a refit
    rollout.shutdown()

Every rank holds one vLLM worker (vLLM's `external_launcher` under torchrun, the engine in this
process otherwise); each group of `rollout.tp` consecutive ranks is one engine, so the world
holds world / `rollout.tp` engines, whatever the trainer's TP × PP × DP layout. Prompt i goes to
engine i mod engines with its own sampling seed, so the answers do not depend on how many
engines there are; every rank receives every answer (one all-gather of token ids, log-probs and
failures).

The engines start from the model's config.json alone (vLLM's dummy weights), and the first
refit gives them the trainer's weights: no export, and a resumed run's engines start from the
resumed weights. A refit walks the trainer's tensors once (`engine.rollout.refit.hf_weights`,
a collective over each model-parallel group; one tensor whole at a time) and streams them into
the engine. On GPUs the engines sleep (weights and KV cache freed) from `sleep` to the next
refit.

An engine that fails while generating (vLLM raises; in a group, the failure is agreed by all
ranks) is shut down, rebuilt, refit with the current weights and asked again, up to
`max_rebuilds` times per call.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch.distributed as dist

from engine.atomic import write_atomic
from engine.config import Config
from engine.hf.config import hf_config_from_model
from engine.launch.layout import Layout
from engine.metrics.log import log
from engine.rollout.refit import hf_weights
from engine.rollout.vllm_engine import Completion, RolloutEngine, SamplingSpec


class ColocatedRollout:
    def __init__(self, cfg: Config, layout: Layout, stop_token_ids: list[int], work_dir: Path,
                 max_rebuilds: int = 2):
        self.cfg, self.layout, self.stop_token_ids = cfg, layout, list(stop_token_ids)
        self.engines = layout.world_size // cfg.rollout.tp
        self.engine_index = layout.rank // cfg.rollout.tp
        self.max_rebuilds = max_rebuilds
        self.rebuilds = 0
        self.config_dir = Path(work_dir) / "rollout_model"
        if layout.rank == 0:
            self.config_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(self.config_dir / "config.json",
                         json.dumps(hf_config_from_model(cfg.model, self.dtype), indent=1))
        dist.barrier()
        self.engine: RolloutEngine | None = None
        self.version = -1
        self._start()

    @property
    def dtype(self) -> str:
        return self.cfg.rollout.dtype or ("float32" if self.cfg.precision == "fp32"
                                          else "bfloat16")

    def _start(self) -> None:
        r, start = self.cfg.rollout, time.perf_counter()
        self.engine = RolloutEngine(
            str(self.config_dir), stop_token_ids=self.stop_token_ids,
            max_model_len=self.cfg.rlvr.max_prompt_tokens + r.max_new_tokens, tp=r.tp,
            dtype=self.dtype, seed=self.cfg.seed, gpu_memory_fraction=r.gpu_memory_fraction,
            cpu_kv_cache_gib=r.cpu_kv_cache_gib, weights="dummy",
            distributed=self.layout.world_size > 1)
        log.info("rollout: %d vLLM engine(s) of tensor-parallel size %d started in %.1fs",
                 self.engines, r.tp, time.perf_counter() - start)

    def refit(self, model, version: int) -> float:
        """Load the trainer's current weights into the engines; the seconds it took. On GPUs
        the engines' KV cache wakes after the weights are in, so the gather's tensors never
        share the card with it."""
        start = time.perf_counter()
        self.engine.wake_up("weights")
        self.engine.load_weights(hf_weights(model, self.cfg.model), version)
        self.engine.wake_up("kv_cache")
        self.version = version
        return time.perf_counter() - start

    def generate(self, prompts: list[list[int]], seeds: list[int], spec: SamplingSpec,
                 model) -> list[list[Completion]]:
        """`spec.n` completions of every prompt, on every rank (`model`: the trainer's, to
        refit a rebuilt engine)."""
        mine = list(range(self.engine_index, len(prompts), self.engines))
        leader = self.layout.rank % self.cfg.rollout.tp == 0  # its engine's answers go out
        for attempt in range(self.max_rebuilds + 1):
            local, error = self._try_generate([prompts[i] for i in mine],
                                              [seeds[i] for i in mine], spec)
            gathered = [None] * self.layout.world_size
            dist.all_gather_object(gathered, (local if leader else None, error))
            errors = [e for _, e in gathered if e is not None]
            if not errors:
                break
            if attempt == self.max_rebuilds:
                raise RuntimeError(f"the rollout engines failed {attempt + 1} times; last: "
                                   f"{errors[0]}")
            log.warning("rollout engine failed (%s): rebuilding it from the current weights "
                        "and generating again", errors[0])
            self._rebuild(model)
        out: list[list[Completion] | None] = [None] * len(prompts)
        for engine, (completions, _) in enumerate(gathered[::self.cfg.rollout.tp]):
            for i, group in zip(range(engine, len(prompts), self.engines), completions):
                out[i] = group
        return out

    def _try_generate(self, prompts, seeds, spec) -> tuple[list, str | None]:
        self.engine.check_ready(self.version)
        try:
            return self.engine.generate(prompts, spec, seeds=seeds), None
        except Exception as e:  # vLLM's engine-dead and worker errors have no common base
            return [], f"{type(e).__name__}: {e}"

    def _rebuild(self, model) -> None:
        try:
            self.engine.shutdown()
        except Exception as e:  # it is already broken; say so and go on
            log.warning("shutting the failed rollout engine down: %s", e)
        self.rebuilds += 1
        self._start()
        self.refit(model, self.version)

    def sleep(self) -> None:
        """GPU: free the engines' memory for training; the next `refit` wakes them."""
        self.engine.sleep()

    def shutdown(self) -> None:
        if self.engine is not None:
            self.engine.shutdown()
            self.engine = None
