"""`engine-to-hf` never writes a model beside another one: a non-empty output directory is
refused, and `overwrite` first removes the model files already there (a stale lone
`model.safetensors` would otherwise be what `transformers` loads)."""

import shutil

import pytest
import torch

from engine.errors import CheckpointError
from engine.hf.exporter import export_hf
from engine.hf.importer import import_hf
from engine.hf.safetensors_io import HFReader


@pytest.fixture(scope="module")
def engine_ckpt(hf_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("engine") / "ckpt"
    import_hf(hf_models["llama-mqa-tied"], out)
    return out


def _tensors(directory):
    reader = HFReader(directory)
    return {name: reader.get(name) for name in reader.names()}


def test_non_empty_output_is_refused_untouched(engine_ckpt, tmp_path):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"stale")
    with pytest.raises(CheckpointError, match="is not empty .*pass --overwrite"):
        export_hf(engine_ckpt, out)
    assert [p.name for p in out.iterdir()] == ["model.safetensors"]
    with pytest.raises(CheckpointError, match="is a file, not a directory"):
        export_hf(engine_ckpt, out / "model.safetensors")


def test_overwrite_replaces_a_stale_model_and_keeps_other_files(hf_models, engine_ckpt,
                                                                tmp_path):
    clean = tmp_path / "clean"
    export_hf(engine_ckpt, clean)
    out = tmp_path / "hf"
    out.mkdir()
    other = hf_models["llama-gqa2-rope-scaled-untied"]  # another model, sharded
    for f in other.iterdir():
        shutil.copy(f, out / f.name)
    stale_single = next(other.glob("*.safetensors"))
    shutil.copy(stale_single, out / "model.safetensors")  # what transformers would prefer
    (out / "NOTES.md").write_text("kept")
    export_hf(engine_ckpt, out, overwrite=True)
    assert not (out / "model.safetensors").exists() and (out / "NOTES.md").read_text() == "kept"
    new, want = _tensors(out), _tensors(clean)
    assert new.keys() == want.keys()
    assert all(torch.equal(new[k], want[k]) for k in want)
    assert sorted(p.name for p in out.glob("*.safetensors")) == \
        sorted(p.name for p in clean.glob("*.safetensors"))
