"""Compare RL runs (GRPO, PPO, ...) at equal numbers of generated tokens.

    python -m tools.compare_rl RUN_DIR [RUN_DIR ...] [--labels grpo,ppo] [--out FILE.svg]

Each RUN_DIR holds `metrics.jsonl` (a line per training step: `step`, `generated_tokens`,
`reward`) and may hold `eval.jsonl` (a line per evaluation: `step`, 0 = before training,
`eval_reward`, `eval_accuracy`); a step written twice (a resumed run) counts once, as its last
line. The x axis is the cumulative number of generated tokens after each step. The common budget
is the smallest total over the runs; steps more than 1% past it are left out of the table.
Prints a Markdown table, a row per run: steps and tokens within the budget, training reward of
the first step and mean of the last 5, held-out reward and accuracy first and last. Writes an
SVG of training reward, held-out reward and held-out accuracy against generated tokens (default:
rl_comparison.svg in the last RUN_DIR) and prints its path.
"""

from __future__ import annotations

import argparse
import json
import sys
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from math import ceil, floor, log10
from pathlib import Path
from statistics import fmean
from xml.sax.saxutils import escape

from engine.cli import run_main
from engine.errors import DataError, UserError

TOLERANCE = 0.01  # a step this far past the budget still counts as within it
LAST_STEPS = 5  # the training reward is averaged over this many last steps within the budget
DASH = "—"
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf")
PLOT_W, PLOT_H = 300, 200  # plot area of a panel, px
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 36, 48  # panel margins around the plot area, px
LEGEND_ROW = 16  # px per legend line, below the x axis label


@dataclass
class Run:
    label: str
    tokens: list[int]  # cumulative generated tokens after each step
    rewards: list[float]  # mean training reward of each step
    evals: list[tuple[int, float, float]] | None  # (tokens, eval_reward, eval_accuracy)


@dataclass
class Panel:
    key: str
    title: str
    ylabel: str
    series: list[list[tuple[float, float]] | None]  # (tokens, value) per run; None: no data


def read_jsonl(path: Path, fields: tuple[str, ...]) -> dict[int, dict]:
    """{step: row}, the last line of each step kept; every row must hold `step` and `fields`."""
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    rows = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{number}: not JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{number}: expected a JSON object")
        for field in ("step", *fields):
            if field not in row:
                raise DataError(f"{path}:{number}: missing field {field!r}")
            if isinstance(row[field], bool) or not isinstance(row[field], (int, float)):
                raise DataError(f"{path}:{number}: field {field!r} is not a number")
        rows[row["step"]] = row
    return rows


def read_evals(path: Path, tokens_after: dict[int, int]) -> list[tuple[int, float, float]]:
    """(tokens, eval_reward, eval_accuracy) per evaluation, placed after its step's tokens."""
    rows = read_jsonl(path, ("eval_reward", "eval_accuracy"))
    for step in rows:
        if step not in tokens_after:
            raise DataError(f"{path}: evaluation at step {step}, a step metrics.jsonl lacks")
    return [(tokens_after[s], rows[s]["eval_reward"], rows[s]["eval_accuracy"])
            for s in sorted(rows)]


def read_run(run_dir: Path, label: str) -> Run:
    path = run_dir / "metrics.jsonl"
    metrics = read_jsonl(path, ("generated_tokens", "reward"))
    if not metrics:
        raise DataError(f"{path}: no training steps")
    steps = sorted(metrics)
    tokens = list(accumulate(metrics[s]["generated_tokens"] for s in steps))
    evals = None  # no eval.jsonl, or an empty one
    if (run_dir / "eval.jsonl").exists():
        evals = read_evals(run_dir / "eval.jsonl", {0: 0, **dict(zip(steps, tokens))}) or None
    return Run(label, tokens, [metrics[s]["reward"] for s in steps], evals)


def labels_for(labels: str | None, run_dirs: list[Path]) -> list[str]:
    if labels is None:
        return [d.resolve().name for d in run_dirs]
    names = labels.split(",")
    if len(names) != len(run_dirs):
        raise UserError(f"--labels: {len(names)} labels for {len(run_dirs)} run directories")
    return names


def steps_within(run: Run, budget: int) -> int:
    """How many of the run's first steps end at most TOLERANCE past the budget."""
    return bisect_right(run.tokens, budget * (1 + TOLERANCE))


def eval_cells(run: Run, budget: int) -> list[str]:
    """eval_reward first and last, eval_accuracy first and last, within the budget."""
    if run.evals is None:
        return [DASH] * 4
    inside = [e for e in run.evals if e[0] <= budget * (1 + TOLERANCE)]
    first, last = run.evals[0], inside[-1] if inside else None
    return [f"{first[1]:.2f}", f"{last[1]:.2f}" if last else DASH,
            f"{100 * first[2]:.1f}%", f"{100 * last[2]:.1f}%" if last else DASH]


def table_row(run: Run, budget: int) -> list[str]:
    n = steps_within(run, budget)
    last = run.rewards[max(0, n - LAST_STEPS):n]
    return [run.label.replace("|", "\\|"), str(n), str(run.tokens[n - 1] if n else 0),
            f"{run.rewards[0]:.2f}", f"{fmean(last):.2f}" if last else DASH,
            *eval_cells(run, budget)]


def table(runs: list[Run], budget: int) -> str:
    header = ["run", "steps", "tokens", "reward step 1", f"reward last {LAST_STEPS}",
              "eval reward first", "eval reward last", "eval accuracy first",
              "eval accuracy last"]
    rows = [header, ["---"] * len(header)] + [table_row(run, budget) for run in runs]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def panels(runs: list[Run]) -> list[Panel]:
    def evals(index: int, scale: float) -> list[list[tuple[float, float]] | None]:
        return [None if run.evals is None else [(e[0], scale * e[index]) for e in run.evals]
                for run in runs]

    return [Panel("training-reward", "training reward", "reward",
                  [list(zip(run.tokens, run.rewards)) for run in runs]),
            Panel("eval-reward", "held-out reward", "eval reward", evals(1, 1.0)),
            Panel("eval-accuracy", "held-out accuracy", "eval accuracy (%)", evals(2, 100.0))]


def axis(lo: float, hi: float) -> list[float]:
    """Ticks 1, 2 or 5 times a power of ten apart, covering [lo, hi]; first and last: the ends."""
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / 4
    power = 10 ** floor(log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first, last = floor(lo / step), ceil(hi / step)
    return [round(i * step, 12) for i in range(first, last + 1)]


@dataclass
class Frame:
    """Data to pixel coordinates inside a panel; the ticks' ends are the plot area's edges."""
    xticks: list[float]
    yticks: list[float]

    def x(self, value: float) -> str:
        lo, hi = self.xticks[0], self.xticks[-1]
        return f"{LEFT + (value - lo) / (hi - lo) * PLOT_W:.1f}"

    def y(self, value: float) -> str:
        lo, hi = self.yticks[0], self.yticks[-1]
        return f"{TOP + PLOT_H - (value - lo) / (hi - lo) * PLOT_H:.1f}"


def svg_axes(frame: Frame, ylabel: str) -> list[str]:
    """Frame, tick marks and labels (x in thousands of tokens), axis labels."""
    bottom = TOP + PLOT_H
    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" fill="none" '
             'stroke="#000"/>']
    for x in frame.xticks:
        parts += [f'<line x1="{frame.x(x)}" y1="{bottom}" x2="{frame.x(x)}" y2="{bottom + 4}" '
                  'stroke="#000"/>',
                  f'<text x="{frame.x(x)}" y="{bottom + 16}" text-anchor="middle">'
                  f"{x / 1000:g}k</text>"]
    for y in frame.yticks:
        parts += [f'<line x1="{LEFT - 4}" y1="{frame.y(y)}" x2="{LEFT}" y2="{frame.y(y)}" '
                  'stroke="#000"/>',
                  f'<text x="{LEFT - 6}" y="{frame.y(y)}" text-anchor="end" '
                  f'dominant-baseline="middle">{y:g}</text>']
    return parts + [f'<text x="{LEFT + PLOT_W / 2}" y="{bottom + 34}" text-anchor="middle">'
                    "generated tokens</text>",
                    f'<text transform="translate(16,{TOP + PLOT_H / 2}) rotate(-90)" '
                    f'text-anchor="middle">{escape(ylabel)}</text>']


def svg_runs(panel: Panel, frame: Frame, labels: list[str]) -> list[str]:
    """A polyline with point markers per run that has data, and the legend below the axes."""
    parts, legend = [], TOP + PLOT_H + BOTTOM
    for index, series in enumerate(panel.series):
        if series is None:
            continue
        colour = COLOURS[index % len(COLOURS)]
        xy = " ".join(f"{frame.x(x)},{frame.y(y)}" for x, y in series)
        parts.append(f'<polyline class="run-{index}" points="{xy}" fill="none" '
                     f'stroke="{colour}" stroke-width="1.5"/>')
        parts += [f'<circle cx="{frame.x(x)}" cy="{frame.y(y)}" r="2" fill="{colour}"/>'
                  for x, y in series]
        parts += [f'<line x1="{LEFT}" y1="{legend}" x2="{LEFT + 20}" y2="{legend}" '
                  f'stroke="{colour}" stroke-width="2"/>',
                  f'<text x="{LEFT + 26}" y="{legend + 4}">{escape(labels[index])}</text>']
        legend += LEGEND_ROW
    return parts


def svg_panel(panel: Panel, offset: int, budget: int, labels: list[str]) -> list[str]:
    """Title, axes, the dashed budget line and the runs; a note where no run has data."""
    centre = LEFT + PLOT_W / 2
    parts = [f'<g id="{panel.key}" transform="translate({offset},0)">',
             f'<text x="{centre}" y="20" text-anchor="middle" font-size="13">'
             f"{escape(panel.title)}</text>"]
    points = [p for series in panel.series if series for p in series]
    if not points:
        return parts + [f'<text x="{centre}" y="{TOP + PLOT_H / 2}" text-anchor="middle" '
                        'fill="#888">no evaluations</text>', "</g>"]
    ys = [y for _, y in points]
    frame = Frame(axis(0, max(budget, *(x for x, _ in points))), axis(min(ys), max(ys)))
    budget_x = frame.x(budget)
    return parts + svg_axes(frame, panel.ylabel) + [
        f'<line class="budget" x1="{budget_x}" y1="{TOP}" x2="{budget_x}" y2="{TOP + PLOT_H}" '
        'stroke="#555" stroke-dasharray="4 3"/>',
        f'<text x="{budget_x}" y="{TOP - 4}" text-anchor="middle" fill="#555">budget</text>',
        *svg_runs(panel, frame, labels), "</g>"]


def svg(runs: list[Run], budget: int) -> str:
    """The panels side by side, as an SVG document."""
    width, height = LEFT + PLOT_W + RIGHT, TOP + PLOT_H + BOTTOM + LEGEND_ROW * len(runs)
    labels = [run.label for run in runs]
    body = [line for i, panel in enumerate(panels(runs))
            for line in svg_panel(panel, i * width, budget, labels)]
    return "\n".join([f'<svg xmlns="http://www.w3.org/2000/svg" width="{3 * width}" '
                       f'height="{height}" font-family="sans-serif" font-size="11">',
                       f'<rect width="{3 * width}" height="{height}" fill="#fff"/>',
                       *body, "</svg>"]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.compare_rl",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--labels", help="comma-separated, one per RUN_DIR "
                                         "(default: the directories' names)")
    parser.add_argument("--out", help="SVG file (default: rl_comparison.svg in the last RUN_DIR)")
    args = parser.parse_args(argv)
    run_dirs = [Path(d) for d in args.runs]
    labels = labels_for(args.labels, run_dirs)
    runs = [read_run(d, label) for d, label in zip(run_dirs, labels)]
    budget = min(run.tokens[-1] for run in runs)
    print(f"common budget: {budget} generated tokens (the smallest total; steps up to "
          f"{TOLERANCE:.0%} past it count)\n")
    print(table(runs, budget))
    out = Path(args.out) if args.out else run_dirs[-1] / "rl_comparison.svg"
    out.write_text(svg(runs, budget))
    print(f"plot: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
