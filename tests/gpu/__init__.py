"""Helpers of the GPU tests: measuring scripts run with TF32 off, and the parity check against
`transformers` that both layer specs pass."""

from tests.util import script_json

# TE runs fp32 GEMMs in TF32 on Hopper, which bounds fp32 agreement near 1e-2; the parity checks
# compare the mapping and the kernels' math, so they run with TF32 off.
STRICT_FP32 = {"NVIDIA_TF32_OVERRIDE": "0"}

# bf16 weights and activations against transformers in fp32 on logits of scale 4.6: 0.11
# measured on an H100 through TE, and 0.11 by the engine's local path in bf16 on a CPU — the
# bf16 rounding itself, hence the wider tolerance.
PARITY_TOLERANCES = [("fp32", 1e-4), ("bf16", 0.2)]


def strict_json(args: list[str]) -> dict:
    """The JSON line of a measuring script (tests/scripts), run with TF32 off."""
    return script_json(args, marker="max_abs_diff", timeout=600, env=STRICT_FP32)


def assert_matches_transformers(hf_models, precision: str, tolerance: float,
                                transformer_engine: bool, *overrides: str) -> None:
    hf_dir = hf_models["llama-gqa2-rope-scaled-untied"]
    result = strict_json(["tests.scripts.hf_parity", str(hf_dir), f"precision={precision}",
                          *overrides])
    assert result["transformer_engine"] is transformer_engine, "another layer spec was used"
    assert result["max_abs_diff"] <= tolerance, result
    assert result["logit_scale"] > 1.0
