"""tools/decontaminate.py: filtered copies, reports and the printed summary for SFT, preference
and RLVR sources; bad input exits with status 2 and one `error:` line."""

from __future__ import annotations

import json

from tests.util import launch

GSM = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
       "in May. How many clips did Natalia sell altogether in April and May?")
MATH = ("How many vertical asymptotes does the graph of $y=\\frac{2}{x^2+x-6}$ have when it is "
        "drawn on the real line?")


def chat(*turns: str) -> dict:
    roles = ["user", "assistant"] * len(turns)
    return {"messages": [{"role": r, "content": t} for r, t in zip(roles, turns)]}


def write_evals(tmp_path) -> list[str]:
    (tmp_path / "gsm8k.jsonl").write_text(
        json.dumps({"question": GSM, "answer": "72"}) + "\n" +
        json.dumps({"question": "Weng earns $12 an hour for babysitting. Yesterday, she just "
                                "did 50 minutes of babysitting. How much did she earn?"}) + "\n")
    (tmp_path / "math.jsonl").write_text(json.dumps({"problem": MATH, "answer": "2"}) + "\n")
    return ["--eval", f"gsm8k={tmp_path / 'gsm8k.jsonl'}",
            "--eval", f"math={tmp_path / 'math.jsonl'}:problem"]


def test_filters_each_source_and_reports(tmp_path):
    evals = write_evals(tmp_path)
    sft_rows = [chat("Write a poem about autumn leaves.", "Leaves fall..."),
                chat(f"Please solve: {GSM.upper()}", "72"),
                chat("Hi", "Hello!", f"Next one.\n{MATH.replace(' ', '  ')}", "2"),
                chat("Give me any word problem.", f"Sure: {GSM}")]  # answer only: kept
    sft_lines = [json.dumps(r) + "\n" for r in sft_rows]
    (tmp_path / "sft.jsonl").write_text("".join(sft_lines))
    pref_rows = [{"prompt": MATH, "chosen": [{"role": "user", "content": MATH},
                                             {"role": "assistant", "content": "2"}],
                  "rejected": [{"role": "user", "content": MATH},
                               {"role": "assistant", "content": "3"}]},
                 {"prompt": "Name a color.",
                  "chosen": [{"role": "user", "content": "Name a color."},
                             {"role": "assistant", "content": "Blue"}],
                  "rejected": [{"role": "user", "content": "Name a color."},
                               {"role": "assistant", "content": "Blue."}]}]
    (tmp_path / "prefs.json").write_text(json.dumps(pref_rows))
    rlvr_rows = [{"messages": [{"role": "user", "content": GSM}], "ground_truth": "72",
                  "dataset": "gsm8k"},
                 {"messages": [{"role": "user", "content": "What is 6 times 7?"}],
                  "ground_truth": "42", "dataset": "gsm8k"}]
    (tmp_path / "rlvr.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rlvr_rows))
    out = tmp_path / "out"
    proc = launch(["tools.decontaminate", *evals, "--train", str(tmp_path / "sft.jsonl"),
                   "--train", str(tmp_path / "prefs.json"), "--train",
                   str(tmp_path / "rlvr.jsonl"), "--out-dir", str(out)], timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]

    assert (out / "sft.decontaminated.jsonl").read_text() == sft_lines[0] + sft_lines[3]
    kept_prefs = (out / "prefs.decontaminated.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in kept_prefs] == [pref_rows[1]]
    assert (out / "rlvr.decontaminated.jsonl").read_text() == json.dumps(rlvr_rows[1]) + "\n"

    report = json.loads((out / "sft.decontamination.json").read_text())
    assert report["rule"] == {"n": 8, "threshold": 0.5, "compared": "user turns"}
    assert report["eval_sets"]["math"] == {"path": str(tmp_path / "math.jsonl"),
                                           "field": "problem", "instances": 1,
                                           "shorter_than_n": 0}
    assert (report["rows_read"], report["rows_contaminated"], report["rows_kept"]) == (4, 2, 2)
    assert report["contaminated_by_benchmark"] == {"gsm8k": 1, "math": 1}
    rows = report["contaminated_rows"]
    assert [r["location"] for r in rows] == [f"{tmp_path / 'sft.jsonl'}:{i}" for i in (2, 3)]
    assert rows[1]["matches"][0] | {"score": None} == {
        "benchmark": "math", "eval_location": f"{tmp_path / 'math.jsonl'}:1",
        "field": "messages[2]", "score": None,
        "ngram": "how many vertical asymptotes does the graph of"}
    prefs = json.loads((out / "prefs.decontamination.json").read_text())
    assert prefs["contaminated_by_benchmark"] == {"math": 1}
    assert prefs["contaminated_rows"][0]["location"] == f"{tmp_path / 'prefs.json'}[record 0]"

    summary = proc.stdout
    assert "gsm8k 2 instances (0 shorter than 8 words), math 1 instances" in summary
    assert f"{tmp_path / 'sft.jsonl'}: 4 rows read, 2 contaminated (gsm8k 1, math 1), " \
           f"0 skipped, 2 kept" in summary
    assert f"example: {tmp_path / 'sft.jsonl'}:2 messages[0] matches gsm8k " \
           f"{tmp_path / 'gsm8k.jsonl'}:1 (score 1.00), shared n-gram \"natalia sold clips to " \
           f"48 of her friends\"" in summary
    assert f"{tmp_path / 'rlvr.jsonl'}: 2 rows read, 1 contaminated (gsm8k 1)" in summary


def error_lines(proc) -> list[str]:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    return proc.stderr.strip().splitlines()


def test_bad_evaluation_file_exits_2_with_one_error_line(tmp_path):
    (tmp_path / "gsm8k.jsonl").write_text(json.dumps({"question": GSM}) + "\n{not json\n")
    (tmp_path / "train.jsonl").write_text(json.dumps(chat("hi", "hello")) + "\n")
    proc = launch(["tools.decontaminate", "--eval", f"gsm8k={tmp_path / 'gsm8k.jsonl'}",
                   "--train", str(tmp_path / "train.jsonl"), "--out-dir", str(tmp_path / "o")],
                  timeout=120)
    assert error_lines(proc) == [f"error: {tmp_path / 'gsm8k.jsonl'}:2: invalid JSON (Expecting "
                                 f"property name enclosed in double quotes)"]


def test_bad_training_row_is_named_or_skipped(tmp_path):
    evals = write_evals(tmp_path)
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps(chat("hi", "hello")) + "\n" +
                     json.dumps({"messages": [{"role": "robot", "content": "beep"}]}) + "\n")
    args = ["tools.decontaminate", *evals, "--train", str(train), "--out-dir",
            str(tmp_path / "out")]
    lines = error_lines(launch(args, timeout=120))
    assert lines == [f"error: {train}:2: messages[0].role 'robot' is not one of system, user, "
                     f"assistant"]
    proc = launch([*args, "--on-bad-row", "skip"], timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 rows read, 0 contaminated (none), 1 skipped, 1 kept" in proc.stdout
    assert f"skipped 1 unknown_role, first: {train}:2: messages[0].role" in proc.stdout


def test_bad_options_exit_2_with_one_error_line(tmp_path):
    evals = write_evals(tmp_path)
    for extra in (["--eval", "gsm8k"], ["--eval", f"gsm8k={tmp_path / 'math.jsonl'}"],
                  ["--threshold", "1.5"]):
        proc = launch(["tools.decontaminate", *evals, *extra, "--train",
                       str(tmp_path / "none.jsonl"), "--out-dir", str(tmp_path / "out")],
                      timeout=120)
        assert len(error_lines(proc)) == 1 and proc.stderr.startswith("error: ")
