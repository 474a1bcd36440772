"""The stage seam: stages are found by name, and pretrain and sft both go through it — their
data preparation, their registered loss, their evaluator and their own recipe checks."""

from types import SimpleNamespace

import pytest

from engine.data.prepare import Prepared
from engine.errors import ConfigError
from engine.losses.registry import LossFunction
from engine.recipe import load_recipe
from engine.stages import get_stage, stage_names
from tests.util import ROOT, TINY

TINY_SFT = ROOT / "recipes" / "tiny" / "sft.yaml"
TINY_DPO = ROOT / "recipes" / "tiny" / "dpo.yaml"


def test_registry_finds_every_stage_module():
    assert stage_names() == ["dpo", "pretrain", "sft"]
    for name in stage_names():
        assert get_stage(name).name == name
    with pytest.raises(ConfigError, match="stage='rlhf' is not one of dpo, pretrain, sft"):
        get_stage("rlhf")


@pytest.mark.parametrize("recipe, chat, pairs", [(TINY, False, False), (TINY_SFT, True, False),
                                                 (TINY_DPO, True, True)],
                         ids=["pretrain", "sft", "dpo"])
def test_stage_provides_data_loss_and_evaluator(recipe, chat, pairs):
    cfg = load_recipe(recipe, ["eval.sources=[]", "model.init_from_checkpoint=null"])
    stage = get_stage(cfg.stage)
    data = stage.prepare(cfg)
    assert isinstance(data, Prepared) and data.num_items * (2 if pairs else 1) == \
        len(data.sequences) > 0
    masks = data.examples.target_masks
    assert all(len(m) == len(s) - 1 for m, s in zip(masks, data.sequences))
    # pretrain trains on every next token; sft and dpo on assistant tokens only
    assert all(m.all() for m in masks) is not chat
    assert (data.examples.chat is not None) is chat
    loss = stage.loss(cfg)
    assert isinstance(loss, LossFunction) and ("rewards/accuracy" in loss.metrics) is pairs
    assert stage.evaluator(cfg, None, SimpleNamespace(data=data)) is None  # no eval.sources


def test_stage_checks_its_own_keys():
    chats = TINY_SFT.parent / "data" / "chat_eval.jsonl"
    with pytest.raises(ConfigError, match="eval.sources holds chat data, which needs stage: sft"):
        load_recipe(TINY, [f"eval.sources=[{{path: {chats}}}]"])
    with pytest.raises(ConfigError, match="cannot hold a pair of data.max_seq_len=256"):
        load_recipe(TINY_DPO, ["model.init_from_checkpoint=null",
                               "data.max_tokens_per_micro_batch=300"])
