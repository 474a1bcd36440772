"""tools/compare_rl.py: runs compared within the smallest token budget, the table's numbers, the
SVG's polylines, and errors that name the file, line and field."""

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from engine.errors import DataError, UserError
from tests.util import ROOT
from tools.compare_rl import main

SVG = "{http://www.w3.org/2000/svg}"
PANELS = ("training-reward", "eval-reward", "eval-accuracy")

# grpo: steps of 76 tokens up to step 5 (380), step 6 ends at 452 (within 1% of the budget of
# 450), step 7 at 552 (outside). Steps 3 and 4 were first logged with other values, then
# rewritten after a resume: the last lines count.
GRPO_METRICS = [
    {"step": 1, "generated_tokens": 76, "reward": 0.0, "accuracy": 0.0, "loss": 1.0},
    {"step": 2, "generated_tokens": 76, "reward": 0.2, "accuracy": 0.1},
    {"step": 3, "generated_tokens": 999, "reward": 9.0, "accuracy": 0.9},
    {"step": 4, "generated_tokens": 999, "reward": 9.0, "accuracy": 0.9},
    {"step": 3, "generated_tokens": 76, "reward": 0.4, "accuracy": 0.2},
    {"step": 4, "generated_tokens": 76, "reward": 0.6, "accuracy": 0.3},
    {"step": 5, "generated_tokens": 76, "reward": 0.8, "accuracy": 0.4},
    {"step": 6, "generated_tokens": 72, "reward": 1.0, "accuracy": 0.5},
    {"step": 7, "generated_tokens": 100, "reward": 5.0, "accuracy": 0.9},
]
GRPO_EVALS = [
    {"step": 0, "eval_reward": 0.1, "eval_accuracy": 0.25},
    {"step": 3, "eval_reward": 0.5, "eval_accuracy": 0.5},
    {"step": 6, "eval_reward": 0.7, "eval_accuracy": 0.625},
    {"step": 7, "eval_reward": 3.0, "eval_accuracy": 0.9},  # 552 tokens: past the budget
]
# ppo: 3 steps of 150 tokens; its total (450) is the budget.
PPO_METRICS = [{"step": s, "generated_tokens": 150, "reward": r, "accuracy": 0.5}
               for s, r in ((1, 1.0), (2, 2.0), (3, 4.0))]
PPO_EVALS = [
    {"step": 0, "eval_reward": 0.2, "eval_accuracy": 0.125},
    {"step": 2, "eval_reward": 0.3, "eval_accuracy": 0.375},
    {"step": 3, "eval_reward": 0.45, "eval_accuracy": 0.5},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def make_run(root, name, metrics, evals=None):
    run = root / name
    run.mkdir()
    write_jsonl(run / "metrics.jsonl", metrics)
    if evals is not None:
        write_jsonl(run / "eval.jsonl", evals)
    return run


@pytest.fixture
def runs(tmp_path):
    return (make_run(tmp_path, "grpo", GRPO_METRICS, GRPO_EVALS),
            make_run(tmp_path, "ppo", PPO_METRICS, PPO_EVALS))


def table_rows(stdout):
    """{label: cells} of the Markdown table's data rows."""
    lines = [line for line in stdout.splitlines() if line.startswith("| ")][2:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return {row[0]: row[1:] for row in cells}


def polyline_points(panel, index):
    (line,) = panel.findall(f"{SVG}polyline[@class='run-{index}']")
    return [tuple(float(v) for v in p.split(",")) for p in line.get("points").split()]


def test_table_compares_within_the_smallest_budget(runs, capsys):
    assert main([str(r) for r in runs]) == 0
    out = capsys.readouterr().out
    assert "common budget: 450 generated tokens" in out
    rows = table_rows(out)
    # grpo: steps 1-6 (452 tokens, within 1%); last 5 = steps 2-6: (0.2+0.4+0.6+0.8+1.0)/5
    # eval: first at step 0, last within the budget at step 6 (step 7's 3.0 is past it)
    assert rows["grpo"] == ["6", "452", "0.00", "0.60", "0.10", "0.70", "25.0%", "62.5%"]
    # ppo: all 3 steps (450 tokens); last 5 = all: (1+2+4)/3
    assert rows["ppo"] == ["3", "450", "1.00", "2.33", "0.20", "0.45", "12.5%", "50.0%"]
    svg = runs[1] / "rl_comparison.svg"
    assert out.strip().splitlines()[-1] == f"plot: {svg}"
    assert svg.is_file()


def test_svg_has_a_polyline_per_run_and_panel(runs, tmp_path, capsys):
    out = tmp_path / "cmp.svg"
    assert main([str(r) for r in runs] + ["--labels", "GRPO <a&b>,PPO", "--out", str(out)]) == 0
    root = ET.parse(out).getroot()
    panels = {g.get("id"): g for g in root.iter(f"{SVG}g")}
    assert set(panels) == set(PANELS)
    counts = {"training-reward": (7, 3), "eval-reward": (4, 3), "eval-accuracy": (4, 3)}
    for key, panel in panels.items():
        assert len(panel.findall(f"{SVG}polyline")) == 2
        for index, count in enumerate(counts[key]):
            xs = [x for x, _ in polyline_points(panel, index)]
            assert len(xs) == count
            assert xs == sorted(xs) and len(set(xs)) == count
        texts = [t.text for t in panel.iter(f"{SVG}text")]
        assert "GRPO <a&b>" in texts and "PPO" in texts
        assert any(t.endswith("k") for t in texts)
    train, evals = panels["training-reward"], panels["eval-reward"]
    grpo_train, grpo_eval = polyline_points(train, 0), polyline_points(evals, 0)
    ppo_train, ppo_eval = polyline_points(train, 1), polyline_points(evals, 1)
    # an evaluation at step s sits at the tokens after step s; step 0 at 0 tokens
    assert grpo_eval[1][0] == grpo_train[2][0] and grpo_eval[2][0] == grpo_train[5][0]
    assert ppo_eval[0][0] == grpo_eval[0][0] < ppo_train[0][0]
    assert ppo_eval[2][0] == ppo_train[2][0]
    # the budget line stands at ppo's total, 450 tokens, in every panel
    for panel in panels.values():
        (budget,) = panel.findall(f"{SVG}line[@class='budget']")
        assert float(budget.get("x1")) == ppo_train[2][0]
    # eval_accuracy is drawn in percent: a higher accuracy is higher up (smaller y)
    acc = polyline_points(panels["eval-accuracy"], 0)
    assert acc[0][1] > acc[1][1] > acc[2][1] > acc[3][1]
    # the y ticks of 20..90% end at 100; the x ticks, in thousands, at 600 (grpo's 552 tokens)
    texts = [t.text for t in panels["eval-accuracy"].iter(f"{SVG}text")]
    assert max(float(t) for t in texts if t.replace(".", "").isdigit()) == 100
    assert [t for t in texts if t.endswith("k")][-1] == "0.6k"


def test_runs_without_evaluations(tmp_path, capsys):
    a = make_run(tmp_path, "a", PPO_METRICS)
    b = make_run(tmp_path, "b", GRPO_METRICS)
    assert main([str(a), str(b)]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows["a"][4:] == ["—"] * 4 and rows["b"][4:] == ["—"] * 4
    root = ET.parse(b / "rl_comparison.svg").getroot()
    panels = {g.get("id"): g for g in root.iter(f"{SVG}g")}
    assert len(panels["training-reward"].findall(f"{SVG}polyline")) == 2
    for key in ("eval-reward", "eval-accuracy"):
        assert panels[key].findall(f"{SVG}polyline") == []
        assert "no evaluations" in [t.text for t in panels[key].iter(f"{SVG}text")]


def test_missing_field_names_file_line_and_field(runs):
    metrics = runs[0] / "metrics.jsonl"
    rows = list(GRPO_METRICS)
    rows[1] = {"step": 2, "reward": 0.2}
    write_jsonl(metrics, rows)
    message = f"{metrics}:2: missing field 'generated_tokens'"
    with pytest.raises(DataError, match=re.escape(message)):
        main([str(r) for r in runs])


def test_bad_json_and_missing_file(runs):
    evals = runs[1] / "eval.jsonl"
    evals.write_text(json.dumps(PPO_EVALS[0]) + "\n{not json\n")
    with pytest.raises(DataError, match=re.escape(f"{evals}:2: not JSON")):
        main([str(r) for r in runs])
    missing = runs[0] / "metrics.jsonl"
    missing.unlink()
    with pytest.raises(DataError, match=re.escape(f"{missing}: cannot read")):
        main([str(r) for r in runs])


def test_labels_must_match_the_runs(runs):
    with pytest.raises(UserError, match="--labels: 3 labels for 2 run directories"):
        main([str(r) for r in runs] + ["--labels", "a,b,c"])


def test_command_line_error_is_one_line_without_traceback(runs):
    proc = subprocess.run([sys.executable, "-m", "tools.compare_rl", *map(str, runs),
                           "--labels", "only-one"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr == "error: --labels: 1 labels for 2 run directories\n"
