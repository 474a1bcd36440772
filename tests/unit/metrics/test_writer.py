"""metrics.jsonl / eval.jsonl on resume: records past the resumed step are dropped, a torn line
is dropped (not fatal), and the file is replaced atomically."""

import json

from engine.metrics.writer import MetricsWriter


def test_resume_keeps_records_up_to_its_step_and_drops_a_torn_line(tmp_path):
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) for s in (1, 2, 3, 4)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 5, "lo')
    writer = MetricsWriter(tmp_path, tensorboard=False, after_step=3)
    writer.write({"step": 4, "loss": 0.2})
    writer.close()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records == [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5},
                       {"step": 3, "loss": 1.0 / 3}, {"step": 4, "loss": 0.2}]
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_fresh_start_empties_old_records(tmp_path):
    (tmp_path / "eval.jsonl").write_text('{"step": 0}\n')
    MetricsWriter(tmp_path, tensorboard=False).close()
    assert (tmp_path / "eval.jsonl").read_text() == ""
