"""The HF name map's QKV layout and value-model head, and bad model directories and weights
named: unsupported architectures, missing shards and tensors, tensors the map does not use,
wrong shapes, recipe keys that disagree with config.json."""

import json

import pytest
import torch

from engine.config import ModelConfig
from engine.errors import CheckpointError, ConfigError
from engine.hf.config import hf_config_from_model, model_config_from_hf
from engine.hf.name_map import fuse_qkv, rules, split_qkv
from engine.hf.safetensors_io import HFReader
from engine.recipe import load_recipe


def test_qkv_fuse_split_roundtrip_and_layout():
    m = ModelConfig(num_attention_heads=4, num_query_groups=2, head_dim=2, hidden_size=8)
    q, k, v = torch.arange(8.0)[:, None], 100 + torch.arange(4.0)[:, None], \
        200 + torch.arange(4.0)[:, None]
    fused = fuse_qkv(m, q, k, v)
    # group 0: q heads 0,1 (rows 0-3), k head 0 (100,101), v head 0 (200,201); then group 1
    assert fused[:, 0].tolist() == [0, 1, 2, 3, 100, 101, 200, 201,
                                    4, 5, 6, 7, 102, 103, 202, 203]
    for a, b in zip(split_qkv(m, fused), (q, k, v)):
        assert torch.equal(a, b)


def test_bad_inputs_are_named(hf_models, tmp_path):
    src = hf_models["llama-mqa-tied"]
    config = json.loads((src / "config.json").read_text())
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({**config, "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(ConfigError, match=r"architectures \['GPT2LMHeadModel'\] not supported"):
        load_recipe(None, [f"model.init_from_hf={bad}"])
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        HFReader(bad)
    index = json.loads((src / "model.safetensors.index.json").read_text())
    (bad / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="missing shard"):
        HFReader(bad)
    with pytest.raises(ConfigError, match="model.num_layers=2 in the recipe disagrees"):
        load_recipe(None, [f"model.init_from_hf={src}", "model.num_layers=2"])


def test_weight_mismatches_are_named(hf_models, tmp_path, single_process):
    from safetensors.torch import save_file

    from engine.hf.importer import load_hf_weights
    from engine.model.build import build_model

    src = hf_models["llama-mqa-tied"]
    cfg = load_recipe(None, [f"model.init_from_hf={src}", "data.sources=[{path: x}]",
                             "train.max_steps=1"])
    model = build_model(cfg, first_stage=True, last_stage=True, device=torch.device("cpu"))
    reader = HFReader(src)
    tensors = {name: reader.get(name) for name in reader.names()}

    def attempt(changed):
        directory = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
        directory.mkdir()
        save_file(changed, directory / "model.safetensors")
        load_hf_weights(model, cfg.model, str(directory), 1)

    missing = "tensor model.layers.2.mlp.up_proj.weight is missing"
    with pytest.raises(CheckpointError, match=missing):
        attempt({k: v for k, v in tensors.items() if k != "model.layers.2.mlp.up_proj.weight"})
    unused = "tensors the llama map does not use: model.extra"
    with pytest.raises(CheckpointError, match=unused):
        attempt({**tensors, "model.extra": torch.zeros(1)})
    shape = r"linear_fc2.weight \(layer 1\): the source has shape"
    with pytest.raises(CheckpointError, match=shape):
        attempt({**tensors, "model.layers.1.mlp.down_proj.weight": torch.zeros(128, 100)})


def test_a_value_model_is_a_one_label_sequence_classifier(hf_models):
    src = hf_models["llama-value"]
    config = json.loads((src / "config.json").read_text())
    m = model_config_from_hf(config, "value")
    assert (m.head, m.output_size, m.padded_output_size(2)) == ("value", 1, 128)
    assert [r.hf_names for r in rules(m) if r.engine_key == "output_layer.weight"] == \
        [("score.weight",)]
    back = hf_config_from_model(m, "float32")
    assert back["architectures"] == ["LlamaForSequenceClassification"]
    assert back["id2label"] == {"0": "LABEL_0"}
    two = {**config, "id2label": {"0": "A", "1": "B"}}
    with pytest.raises(ConfigError, match="a value model has one label, this "
                                          "LlamaForSequenceClassification has 2"):
        model_config_from_hf(two, "two")
    tied = model_config_from_hf({**config, "tie_word_embeddings": True}, "tied")
    assert not tied.tie_word_embeddings  # a score head is never the embedding
    lm = model_config_from_hf({**config, "architectures": ["LlamaForCausalLM"]}, "lm")
    assert (lm.head, lm.output_size) == ("lm", config["vocab_size"])
