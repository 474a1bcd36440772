"""Every command line's one error path: a bad recipe, bad data or a bad checkpoint exits with
status 2 and one `error: ...` line naming the key, file and line, or checkpoint — before any
process group, never with a traceback; `key=value` overrides go anywhere on the line."""

import json
import shutil

from tests.util import TINY, launch


def _fails_cleanly(proc, message: str) -> None:
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


def test_cli_fails_before_any_process_group(tmp_path):
    # WORLD_SIZE=3 without a rendezvous: had a process group been attempted, it would fail on
    # the missing MASTER_ADDR instead of naming the key.
    proc = launch(["engine.train", str(TINY), "parallel.tp=2", f"output_dir={tmp_path}"],
                  env={"RANK": "0", "WORLD_SIZE": "3"}, timeout=120)
    assert proc.returncode == 2
    assert "error: world size 3 is not divisible by parallel.tp" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "metrics.jsonl").exists()


def test_cli_names_unknown_key():
    proc = launch(["engine.train", str(TINY), "train.max_step=3"], timeout=120)
    assert proc.returncode == 2
    assert "unknown key train.max_step (did you mean train.max_steps?)" in proc.stderr


def test_cli_reports_bad_data_without_traceback(tmp_path):
    source = tmp_path / "docs.jsonl"
    source.write_text('{"text": "fine"}\n{"txt": "oops"}\n')
    proc = launch(["engine.train", str(TINY), f"output_dir={tmp_path / 'run'}",
                   f"data.sources=[{{path: {source}}}]"], timeout=120)
    assert proc.returncode == 2
    assert f"error: {source}:2: missing field 'text'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_tools_report_bad_recipes_and_checkpoints(tmp_path):
    _fails_cleanly(launch(["tools.prepare_data", str(tmp_path / "nope.yaml")], timeout=120),
                   f"recipe not found: {tmp_path / 'nope.yaml'}")
    _fails_cleanly(launch(["tools.perf", "flops", str(TINY), "parallel.tpp=2"], timeout=120),
                   "unknown key parallel.tpp (did you mean parallel.tp?)")
    _fails_cleanly(launch(["tools.convert_checkpoint", "engine-to-hf", "--ckpt",
                           str(tmp_path), "--out", str(tmp_path / "hf")], timeout=120),
                   f"{tmp_path}: not a complete engine checkpoint (no metadata.json)")
    _fails_cleanly(launch(["engine.train", str(TINY), f"output_dir={tmp_path / 'run'}",
                           f"model.init_from_checkpoint={tmp_path}"], timeout=120),
                   f"{tmp_path}: not a complete engine checkpoint (no metadata.json)")
    _fails_cleanly(launch(["tools.generate_hf", "--hf", str(tmp_path), "hi"], timeout=120),
                   f"{tmp_path}: no config.json (not a Hugging Face model directory)")


def test_overrides_are_accepted_after_flags():
    def flops(*args):
        proc = launch(["tools.perf", "flops", str(TINY), *args], timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout[proc.stdout.index("{"):])["flops_per_token_causal"]

    assert flops("--seq-len", "128", "model.num_layers=8") == \
        flops("model.num_layers=8", "--seq-len", "128") > flops("--seq-len", "128")


def test_output_dir_that_cannot_be_created_is_named(tmp_path):
    (tmp_path / "file").write_text("")
    _fails_cleanly(launch(["engine.train", str(TINY), f"output_dir={tmp_path / 'file' / 'run'}"],
                          timeout=120),
                   f"output_dir={tmp_path / 'file' / 'run'}: cannot create it (Not a directory)")


def test_corrupt_safetensors_is_named_before_any_model(tmp_path, hf_models):
    broken = tmp_path / "hf"
    shutil.copytree(hf_models["llama-mqa-tied"], broken)
    shard = sorted(broken.glob("*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[:100])
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"stage: pretrain\nmodel:\n  init_from_hf: {broken}\ndata:\n  sources: "
                      f"[{{path: unused.jsonl}}]\n  tokenizer: byte\ntrain:\n  max_steps: 1\n")
    _fails_cleanly(launch(["engine.train", str(recipe), f"output_dir={tmp_path / 'run'}"],
                          timeout=120),
                   f"{shard}: not a readable safetensors file")
    assert not (tmp_path / "run").exists()


def test_a_value_model_is_refused_as_a_policy(tmp_path, hf_models):
    recipe = tmp_path / "recipe.yaml"
    value = hf_models["llama-value"]
    recipe.write_text(f"stage: sft\nmodel:\n  init_from_hf: {value}\ndata:\n  sources: "
                      f"[{{path: unused.jsonl}}]\n  tokenizer: byte\ntrain:\n  max_steps: 1\n")
    _fails_cleanly(launch(["engine.train", str(recipe), f"output_dir={tmp_path / 'run'}"],
                          timeout=120),
                   f"model.head=value: stage sft trains a language model; {value} is a value")
