"""Hugging Face ↔ engine: logits equal `transformers` after loading (TP=1, TP=2, PP=2), export
reproduces the original tensors bit for bit, a checkpoint trained at TP=2 × PP=2 exports to a
model `transformers` loads with the engine's logits, and bad inputs are named."""

import json

import pytest
import torch

from engine.config import ConfigError, load_config
from engine.convert import fuse_qkv, split_qkv
from engine.hf_checkpoint import HFReader
from tests.util import ROOT, launch

SHAPES = {  # name: (transformers config class, kwargs); all fp32, random weights of scale 0.1
    "llama-gqa2-rope-scaled-untied": ("LlamaConfig", dict(
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
        rope_theta=500000.0, rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                           "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                           "original_max_position_embeddings": 64})),
    "llama-mqa-tied": ("LlamaConfig", dict(num_attention_heads=4, num_key_value_heads=1,
                                           tie_word_embeddings=True)),
    "qwen2-bias-gqa4-tied": ("Qwen2Config", dict(num_attention_heads=8, num_key_value_heads=2,
                                                 head_dim=32, hidden_size=128,
                                                 tie_word_embeddings=True)),
}


def make_hf_model(directory, shape):
    import transformers

    name, extra = SHAPES[shape]
    config = getattr(transformers, name)(**{
        "hidden_size": 128, "intermediate_size": 192, "num_hidden_layers": 4, "head_dim": 32,
        "vocab_size": 300, "max_position_embeddings": 1024, **extra})
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.normal_(1.0 if "norm" in n else 0.0, 0.1)
    model.save_pretrained(directory, max_shard_size="300KB")
    return directory


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {shape: make_hf_model(root / shape, shape) for shape in SHAPES}


def _parity(hf_dir, nproc, *args):
    proc = launch(["tests/scripts/hf_parity.py", str(hf_dir), *args], nproc=nproc,
                  module=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads([line for line in proc.stdout.splitlines() if "max_abs_diff" in line][0])


LAYOUTS = {"tp1": (1, []), "tp2": (2, ["parallel.tp=2"]), "pp2": (2, ["parallel.pp=2"])}
CASES = [(shape, layout) for shape in SHAPES for layout in LAYOUTS
         if not (shape == "llama-mqa-tied" and layout == "tp2")]  # 1 KV head: TP must divide it


@pytest.mark.parametrize("shape, layout", CASES, ids=[f"{s}-{l}" for s, l in CASES])
def test_engine_logits_equal_transformers(hf_models, shape, layout):
    nproc, layout = LAYOUTS[layout]
    result = _parity(hf_models[shape], nproc, *layout)
    assert result["max_abs_diff"] <= 1e-4, result
    assert result["logit_scale"] > 1.0


def test_qkv_fuse_split_roundtrip_and_layout():
    from engine.config import ModelConfig

    m = ModelConfig(num_attention_heads=4, num_query_groups=2, head_dim=2, hidden_size=8)
    q, k, v = torch.arange(8.0)[:, None], 100 + torch.arange(4.0)[:, None], \
        200 + torch.arange(4.0)[:, None]
    fused = fuse_qkv(m, q, k, v)
    # group 0: q heads 0,1 (rows 0-3), k head 0 (100,101), v head 0 (200,201); then group 1
    assert fused[:, 0].tolist() == [0, 1, 2, 3, 100, 101, 200, 201,
                                    4, 5, 6, 7, 102, 103, 202, 203]
    for a, b in zip(split_qkv(m, fused), (q, k, v)):
        assert torch.equal(a, b)


def _recipe(tmp_path, hf_dir, **overrides):
    corpus = ROOT / "recipes" / "tiny" / "data" / "corpus.jsonl"
    text = (f"output_dir: {tmp_path / 'run'}\nstage: pretrain\nmodel:\n  init_from_hf: {hf_dir}\n"
            f"data:\n  sources: [{{path: {corpus}}}]\n  tokenizer: byte\n  max_seq_len: 128\n"
            f"  max_tokens_per_micro_batch: 512\n  global_batch_size: 8\n"
            f"train:\n  max_steps: 3\n")
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def _export(ckpt, out):
    proc = launch(["tools/convert_checkpoint.py", "engine-to-hf", "--ckpt", str(ckpt),
                   "--out", str(out)], module=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout[proc.stdout.index("{"):])


def test_hf_to_engine_to_hf_is_bit_exact(hf_models, tmp_path):
    """Loaded at TP=2 × PP=2, saved (lr 0: weights untouched), exported: the same tensors."""
    hf_dir = hf_models["llama-gqa2-rope-scaled-untied"]
    recipe = _recipe(tmp_path, hf_dir)
    proc = launch(["engine.train", str(recipe), "optim.lr=0.0", "optim.min_lr=0.0",
                   "train.max_steps=1", "parallel.tp=2", "parallel.pp=2"], nproc=4)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = _export(tmp_path / "run" / "checkpoints" / "step_1", tmp_path / "hf")
    assert result["dtype"] == "torch.float32"
    original, exported = HFReader(hf_dir), HFReader(tmp_path / "hf")
    assert exported.names() == original.names()
    for name in original.names():
        assert torch.equal(exported.get(name), original.get(name)), name


def test_checkpoint_trained_at_tp2_pp2_exports_to_transformers(hf_models, tmp_path):
    hf_dir = hf_models["qwen2-bias-gqa4-tied"]
    recipe = _recipe(tmp_path, hf_dir)
    proc = launch(["engine.train", str(recipe), "optim.lr=1e-3", "parallel.tp=2",
                   "parallel.pp=2", "parallel.sp=true"], nproc=4)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = tmp_path / "run" / "checkpoints" / "step_3"
    _export(ckpt, tmp_path / "hf")
    # transformers on the export vs the engine on the checkpoint it was exported from
    result = _parity(tmp_path / "hf", 1, "--engine-ckpt", str(ckpt))
    assert result["max_abs_diff"] <= 1e-4, result
    # and training moved the weights away from the starting model
    assert not torch.equal(HFReader(tmp_path / "hf").get("model.norm.weight"),
                           HFReader(hf_dir).get("model.norm.weight"))


def test_bad_inputs_are_named(hf_models, tmp_path):
    src = hf_models["llama-mqa-tied"]
    config = json.loads((src / "config.json").read_text())
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({**config, "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(ConfigError, match=r"architectures \['GPT2LMHeadModel'\] not supported"):
        load_config(None, [f"model.init_from_hf={bad}"])
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="no model.safetensors"):
        HFReader(bad)
    index = json.loads((src / "model.safetensors.index.json").read_text())
    (bad / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ConfigError, match="missing shard"):
        HFReader(bad)
    with pytest.raises(ConfigError, match="model.num_layers=2 in the recipe disagrees"):
        load_config(None, [f"model.init_from_hf={src}", "model.num_layers=2"])


def test_weight_mismatches_are_named(hf_models, tmp_path, single_process):
    from safetensors.torch import save_file

    from engine.dist import Layout
    from engine.models import build_model
    from engine.weights import load_hf_weights

    src = hf_models["llama-mqa-tied"]
    cfg = load_config(None, [f"model.init_from_hf={src}", "data.sources=[{path: x}]",
                             "train.max_steps=1"])
    layout = Layout(rank=0, world_size=1, tp=1, pp=1, dp=1, tp_rank=0, pp_rank=0, dp_rank=0,
                    device=torch.device("cpu"))
    model = build_model(cfg, layout)
    reader = HFReader(src)
    tensors = {name: reader.get(name) for name in reader.names()}

    def attempt(changed):
        directory = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
        directory.mkdir()
        save_file(changed, directory / "model.safetensors")
        load_hf_weights(model, cfg.model, str(directory), 384)

    with pytest.raises(ConfigError, match="tensor model.layers.2.mlp.up_proj.weight is missing"):
        attempt({k: v for k, v in tensors.items() if k != "model.layers.2.mlp.up_proj.weight"})
    with pytest.raises(ConfigError, match="tensors the llama map does not use: model.extra"):
        attempt({**tensors, "model.extra": torch.zeros(1)})
    with pytest.raises(ConfigError, match=r"linear_fc2.weight \(layer 1\): the source has shape"):
        attempt({**tensors, "model.layers.1.mlp.down_proj.weight": torch.zeros(128, 100)})


def test_hf_to_engine_checkpoint_roundtrip_and_parity(hf_models, tmp_path):
    """hf-to-engine writes a weights-only checkpoint: it exports back bit for bit, and loaded
    at TP=2 (model.init_from_checkpoint) gives transformers' logits."""
    hf_dir = hf_models["llama-gqa2-rope-scaled-untied"]
    proc = launch(["tools/convert_checkpoint.py", "hf-to-engine", "--hf", str(hf_dir), "--out",
                   str(tmp_path / "engine")], module=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert summary["bytes"] > 0 and summary["peak_rss_gib"] > 0
    _export(tmp_path / "engine", tmp_path / "hf")
    original, exported = HFReader(hf_dir), HFReader(tmp_path / "hf")
    assert exported.names() == original.names()
    assert all(torch.equal(exported.get(n), original.get(n)) for n in original.names())
    result = _parity(hf_dir, 2, "--engine-ckpt", str(tmp_path / "engine"), "parallel.tp=2")
    assert result["max_abs_diff"] <= 1e-4, result
    cfg = load_config(None, [f"model.init_from_checkpoint={tmp_path / 'engine'}"])
    assert cfg.model.num_query_groups == 2 and cfg.model.rope_scaling.factor == 8.0
