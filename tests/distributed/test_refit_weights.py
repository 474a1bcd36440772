"""The refit's gather (engine.rollout.refit): at TP=2 with SP, PP=2 and TP=2 × PP=2 with SP the
trainer's weights come out as the same HF-named tensors, byte for byte, as in one process — every
tensor of the HF model, each once — and each rank receives about what an all-gather of the
model over the model-parallel group would, half of what an all-reduce moves."""

import pytest

from engine.hf.name_map import hf_names, rules
from engine.recipe import load_recipe
from tests.util import TINY, script_json


def _gathered(nproc, *args):
    return script_json(["tests.scripts.refit_weights", *args], nproc, '{"tensors"')


@pytest.fixture(scope="module")
def single():
    return _gathered(1)["tensors"]


def test_one_process_gives_every_hf_tensor_once(single):
    m = load_recipe(TINY).model
    expected = {name for rule in rules(m)
                for layer in (range(m.num_layers) if rule.per_layer else [None])
                for name in hf_names(rule, layer)}
    assert set(single) == expected
    assert single["model.embed_tokens.weight"][0] == [m.vocab_size, m.hidden_size]  # unpadded
    assert single["model.layers.0.self_attn.k_proj.weight"][0] == [
        m.num_query_groups * m.kv_channels, m.hidden_size]
    # layers differ (the gather does not repeat one layer's slice)
    assert single["model.layers.0.mlp.up_proj.weight"] != single["model.layers.1.mlp.up_proj.weight"]


@pytest.mark.parametrize("nproc, layout", [
    (2, ["parallel.tp=2", "parallel.sp=true"]),
    (2, ["parallel.pp=2"]),
    (4, ["parallel.tp=2", "parallel.pp=2", "parallel.sp=true"]),
], ids=["tp2-sp", "pp2", "tp2-pp2-sp"])
def test_every_layout_gathers_the_single_process_tensors(single, nproc, layout):
    gathered = _gathered(nproc, *layout)
    assert gathered["tensors"] == single
    # An all-gather of the whole model over the group receives (n-1)/n of it on each rank; the
    # slack covers the norms (one holder: whole to the other TP ranks) and a stage holding more
    # than its share (the embedding). Summing zero-filled tensors in all-reduces received twice
    # that (measured: 1.0 and 1.5 times the model at TP=2 and TP=2 × PP=2).
    assert len(gathered["received"]) == nproc
    assert max(gathered["received"]) <= gathered["engine_bytes"] * (nproc - 1) / nproc * 1.1
