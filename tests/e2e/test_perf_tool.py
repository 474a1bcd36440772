"""tools/perf.py: FLOPs per token as JSON, and a timed step with its phase breakdown."""

import json

from tests.util import ROOT, TINY, launch

TULU_8B = ROOT / "recipes" / "tulu3" / "llama3.1-8b" / "sft.yaml"


def _json(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout[proc.stdout.index("{"):])


def test_flops_command():
    out = _json(launch(["tools.perf", "flops", str(TULU_8B), "--seq-len", "8192"], timeout=120))
    assert round(out["gflops_per_token_causal"], 1) == 51.5
    assert round(out["gflops_per_token_noncausal"], 1) == 57.9


def test_step_command_with_trace(tmp_path):
    out = _json(launch(["tools.perf", "step", str(TINY), "parallel.tp=2", "--warmup", "1",
                        "--steps", "2", "--trace", str(tmp_path / "trace")], nproc=2, timeout=300))
    assert out["world_size"] == 2 and out["tp"] == 2 and out["steps"] == 2
    assert out["tokens_per_s_per_gpu"] > 0 and out["tflops_per_gpu"] > 0
    assert out["mfu"] is None  # no GPU peak on a CPU
    phases = out["phase_seconds_per_step"]
    assert set(phases) == {"data", "forward_backward", "grad_reduce", "optimizer"}
    assert abs(sum(phases.values()) - out["seconds_per_step"]) < 1e-6
    assert phases["forward_backward"] > phases["optimizer"] > 0
    assert len(list((tmp_path / "trace").glob("rank*.pt.trace.json"))) == 2
