"""On a GPU, a real out-of-memory (the tiny recipe with layers far larger than the card) ends the
run with status 2 and the engine's one line, naming where and saying that the model states alone
do not fit, without a traceback. Skipped without CUDA (the gpu marker)."""

from engine.cli import EXIT_BAD_INPUT
from tests.util import TINY, launch


def test_a_model_larger_than_the_gpu_ends_with_one_line(tmp_path):
    proc = launch(["engine.train", str(TINY), f"output_dir={tmp_path}", "precision=bf16",
                   "train.transformer_impl=local", "model.hidden_size=32768",
                   "model.ffn_hidden_size=524288", "model.num_attention_heads=256",
                   "model.num_query_groups=8", "train.max_steps=1"])
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert errors[0].startswith("error: rank 0: out of GPU memory in engine/")
    assert "CUDA out of memory. Tried to allocate" in errors[0]
    assert "the model states alone do not fit this GPU's" in errors[0]
