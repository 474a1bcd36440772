"""tools/verify.py: scores in row order, a summary per dataset, rows not judged named, a bad row
named by file and line (or counted)."""

import json

from tests.util import launch


def _rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_scores_rows_in_order_with_a_summary(tmp_path):
    lowercase = json.dumps({"func_name": "validate_lowercase", "N": None})
    rows = _rows(tmp_path / "rows.jsonl", [
        {"dataset": "gsm8k", "ground_truth": "72", "response": "So 3 * 24 = 72. It is 72."},
        {"dataset": "gsm8k", "ground_truth": "72", "response": "It is 70."},
        {"dataset": "gsm8k", "ground_truth": "", "response": "It is 70."},
        {"dataset": "gsm8k", "ground_truth": "1250",
         "response": "<|user|>\nQ\n<|assistant|>\nThat makes 1,250."},
        {"dataset": "math", "ground_truth": "\\frac{1}{2}", "response": "So $\\boxed{0.5}$."},
        {"dataset": "ifeval", "ground_truth": lowercase, "response": "all in lower case."},
        {"dataset": "ifeval", "ground_truth": lowercase, "response": "Not In Lower Case."},
    ])
    proc = launch(["tools.verify", str(rows), "--workers", "2"], timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = [json.loads(line) for line in (tmp_path / "rows.scores.jsonl").read_text()
              .splitlines()]
    assert [s["score"] for s in scores] == [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    assert [s["location"] for s in scores] == [f"{rows}:{i}" for i in range(1, 8)]
    assert scores[2]["error"].startswith("bad_input: a gsm8k ground truth must be")
    table = proc.stdout.splitlines()
    assert table[1].split()[:3] == ["gsm8k", "4", "0.5000"] and "1 bad_input" in table[1]
    assert f"first: {rows}:3: bad_input" in table[2]
    assert table[3].split() == ["ifeval", "2", "0.5000", "none"]
    assert table[4].split() == ["math", "1", "1.0000", "none"]


def test_bad_row_is_named_or_counted(tmp_path):
    rows = _rows(tmp_path / "rows.jsonl", [
        {"dataset": "gsm8k", "ground_truth": "1", "response": "1"},
        {"dataset": "gsm8k", "ground_truth": "1"},
    ])
    proc = launch(["tools.verify", str(rows)], timeout=180)
    assert proc.returncode == 2
    assert f"error: {rows}:2: missing field 'response'" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = launch(["tools.verify", str(rows), "--on-bad-row", "skip"], timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "skipped rows: {'missing_field': 1}" in proc.stdout
