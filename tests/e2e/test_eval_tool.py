"""tools.eval on the run dir of the tiny SFT model (exported on the fly, generating with vLLM):
the same exact match, overall and per category, as the engine's own greedy evaluation at the end
of training — the same model and prompts — and every benchmark kind scored and written."""

import json

import pytest

from tests.util import ROOT, launch

pytest.importorskip("vllm")

EVAL = ROOT / "recipes" / "tiny" / "data"


def test_eval_tool_reproduces_the_engines_exact_match(tiny_sft_run, tmp_path):
    proc = launch(["tools.eval", "--model", str(tiny_sft_run), "--dtype", "float32",
                   "--max-new-tokens", "64",  # eval.max_new_tokens of the tiny SFT recipe
                   "--bench", f"chat={EVAL / 'chat_eval.jsonl'}",
                   "--bench", f"gsm8k={EVAL / 'eval/gsm8k_test.jsonl'}",
                   "--bench", f"math={EVAL / 'eval/math_test.jsonl'}",
                   "--bench", f"ifeval={EVAL / 'eval/ifeval_input.jsonl'}",
                   "--out", str(tmp_path)], timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((tmp_path / "summary.json").read_text())["results"]
    engine = json.loads((tiny_sft_run / "eval.jsonl").read_text().splitlines()[-1])
    for key, value in engine.items():
        if key.startswith("eval_exact_match"):
            assert results["chat"][key.removeprefix("eval_")] == value, (key, results["chat"])
    assert results["gsm8k"]["instances"] == 5 and 0 <= results["gsm8k"]["accuracy"] <= 1
    assert set(results["ifeval"]) >= {"prompt_loose", "prompt_strict", "instruction_loose"}
    rows = [json.loads(line) for line in (tmp_path / "chat.jsonl").read_text().splitlines()]
    assert len(rows) == 200 and set(rows[0]) >= {"id", "prompt", "answers", "samples"}
    assert "| chat | 200 | exact_match |" in proc.stdout
    assert (tmp_path / "hf" / "config.json").is_file()  # the export it generated with
