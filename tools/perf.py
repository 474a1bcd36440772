"""Model FLOPs and measured step throughput.

    python -m tools.perf flops RECIPE.yaml [key=value ...] [--seq-len N]
    python -m tools.perf memory RECIPE.yaml [key=value ...] [--world-size N] [--gpu-gib 80]
    [torchrun --nproc-per-node N] -m tools.perf step RECIPE.yaml [key=value ...]
        [--warmup 2] [--steps 5] [--trace DIR]

`flops` prints model FLOPs per token (Megatron-LM's count; causal and non-causal attention) as
JSON, at `--seq-len` (default: data.max_seq_len). `memory` prints the estimated GPU memory per
rank at the recipe's layout on --world-size GPUs (engine.metrics.memory): model states, bytes
per micro-batch token, the step's peak at the recipe's token budget, and the largest budget that
fits on a GPU of --gpu-gib; for RLVR the reference and value models count too, and it says
whether every model's states fit beside the vLLM engines while they generate. `step` builds
the recipe's training at this launch's layout, runs warm-up steps, then times N steps on real
packed batches and prints, from global rank 0: tokens/s/GPU, TFLOP/s/GPU (causal count over the
real sequence lengths), MFU (when the GPU's peak is known or logging.peak_tflops is set), peak
memory, and the time per phase (data, forward-backward, grad reduce, optimizer). With --trace,
the timed steps are recorded with the torch profiler into DIR (one trace per rank, viewable in
TensorBoard or Perfetto), and rank 0 prints the 30 operators and kernels that took the most
time to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys

import torch

from engine.cli import parse, run_main
from engine.compat import platform
from engine.metrics.flops import device_peak_tflops, flops_per_token, step_flops
from engine.recipe import load_recipe


def flops(cfg, seq_len: int | None) -> dict:
    s = seq_len or cfg.data.max_seq_len
    vocab = cfg.model.padded_vocab_size(cfg.parallel.tp)
    causal = flops_per_token(cfg.model, s, vocab, causal=True)
    full = flops_per_token(cfg.model, s, vocab, causal=False)
    return {"seq_len": s, "vocab_size_padded": vocab,
            "flops_per_token_causal": causal, "flops_per_token_noncausal": full,
            "gflops_per_token_causal": causal / 1e9, "gflops_per_token_noncausal": full / 1e9}


def memory(cfg, world_size: int, gpu_gib: float) -> dict:
    from engine.metrics.memory import GIB, recipe_estimate

    cfg.validate(world_size)
    p = cfg.parallel
    e = recipe_estimate(cfg, world_size)
    budget, gpu = cfg.data.max_tokens_per_micro_batch, gpu_gib * GIB
    result = {"tp": p.tp, "pp": p.pp, "dp": cfg.data_parallel_size(world_size),
              "precision": cfg.precision,
              "params_per_rank": e.params_per_rank,
              "model_state_gib": e.model_state_bytes / GIB,
              "other_models_gib": e.other_models_bytes / GIB,
              "mib_per_micro_batch_token": e.bytes_per_token / 2**20,
              "max_tokens_per_micro_batch": budget,
              "estimated_peak_gib": e.step_bytes(budget) / GIB,
              "gpu_gib": gpu_gib, "largest_budget_that_fits": e.max_tokens_per_micro_batch(gpu)}
    if cfg.stage == "rlvr":
        from engine.stages.rlvr import held_models

        frozen, trained = held_models(cfg)
        engines = cfg.rollout.gpu_memory_fraction * gpu
        generation = e.generation_bytes(engines)
        result.update(reference_model=bool(frozen), value_model=bool(trained),
                      engines_gib=engines / GIB, generation_peak_gib=generation / GIB,
                      generation_fits=generation <= gpu)
    return result


def step(cfg, warmup: int, steps: int, trace: str | None) -> dict | None:
    from engine.launch.env import launch_env
    from engine.launch.process_groups import init_distributed, shutdown
    from engine.metrics.log import setup_logging
    from engine.metrics.timing import PhaseTimer
    from engine.stages import get_stage
    from engine.train.build import build_training

    env = launch_env()
    cfg.train.epochs, cfg.train.max_steps = None, warmup + steps
    cfg.optim.warmup_ratio, cfg.optim.warmup_steps = None, 0
    cfg.validate(env.world_size)
    layout = init_distributed(cfg.parallel, env)
    try:
        setup_logging(None)
        stage = get_stage(cfg.stage)
        t = build_training(cfg, layout, stage, run_dir=None)
        stage.before_training(cfg, layout, t)
        timer = PhaseTimer()
        t.step.time_phases(timer)
        for _ in range(warmup):
            t.step(t.loader.next_batch().micro_batches)
        timer.reset()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        tokens = total_flops = 0
        vocab = cfg.model.padded_vocab_size(layout.tp)
        with _profiler(trace, layout.rank):
            for _ in range(steps):
                with timer("data"):
                    batch = t.loader.next_batch()
                t.step(batch.micro_batches)
                tokens += batch.tokens
                total_flops += step_flops(cfg.model, batch.lengths, vocab)
        phases = dict(timer.totals)
        phases["forward_backward"] = (phases.pop("forward_backward_and_grad_reduce")
                                      - phases.get("grad_reduce", 0.0))
        elapsed = sum(phases.values())
        tflops = total_flops / elapsed / layout.world_size / 1e12
        peak = device_peak_tflops(cfg.precision, cfg.logging.peak_tflops)
        result = {
            "device": platform.device_name(), "world_size": layout.world_size,
            "tp": layout.tp, "pp": layout.pp, "dp": layout.dp, "precision": cfg.precision,
            "steps": steps, "tokens_per_step": tokens / steps,
            "tokens_per_s_per_gpu": tokens / elapsed / layout.world_size,
            "tflops_per_gpu": tflops, "mfu": tflops / peak if peak else None,
            "peak_memory_gib": _peak_memory_gib(),
            "seconds_per_step": elapsed / steps,
            "phase_seconds_per_step": {k: v / steps for k, v in sorted(phases.items())},
        }
        return result if layout.is_logger else None
    finally:
        shutdown()


def _profiler(trace: str | None, rank: int):
    if trace is None:
        return contextlib.nullcontext()
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    save = torch.profiler.tensorboard_trace_handler(trace, worker_name=f"rank{rank}")

    def on_trace_ready(prof):
        save(prof)
        if rank == 0:  # the operators and kernels that took the most device (or CPU) time
            key = "cuda_time_total" if torch.cuda.is_available() else "cpu_time_total"
            print(prof.key_averages().table(sort_by=key, row_limit=30), file=sys.stderr)

    return torch.profiler.profile(activities=activities, on_trace_ready=on_trace_ready)


def _peak_memory_gib() -> float:
    """GPU: peak allocated by torch; CPU: peak resident set of this process."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.perf",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("flops", "memory", "step"))
    parser.add_argument("recipe")
    parser.add_argument("--seq-len", type=int)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--trace", help="directory for torch profiler traces")
    parser.add_argument("--world-size", type=int, default=1, help="GPUs (memory)")
    parser.add_argument("--gpu-gib", type=float, default=80.0, help="GPU memory (memory)")
    args, overrides = parse(parser, argv)
    cfg = load_recipe(args.recipe, overrides)
    if args.command == "flops":
        result = flops(cfg, args.seq_len)
    elif args.command == "memory":
        result = memory(cfg, args.world_size, args.gpu_gib)
    else:
        result = step(cfg, args.warmup, args.steps, args.trace)
    if result is not None:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
