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
TINY_RLVR = ROOT / "recipes" / "tiny" / "rlvr.yaml"


def test_registry_finds_every_stage_module():
    assert stage_names() == ["dpo", "pretrain", "rlvr", "sft"]
    for name in stage_names():
        assert get_stage(name).name == name
    with pytest.raises(ConfigError, match="stage='rlhf' is not one of dpo, pretrain, rlvr, sft"):
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


def test_rlvr_stage_prepares_prompts_and_its_own_loop():
    cfg = load_recipe(TINY_RLVR, ["model.init_from_checkpoint=null"])
    stage = get_stage("rlvr")
    data = stage.prepare(cfg)
    prompts = data.examples.records
    assert len(prompts) == data.num_items == len(data.sequences) == 600
    assert all((p.prompt_ids == s).all() for p, s in zip(prompts, data.sequences))
    assert {p.dataset for p in prompts} == {"gsm8k", "ifeval"}  # two verifiers
    assert all(isinstance(p.ground_truth, str) for p in prompts)
    assert not any(m.any() for m in data.examples.target_masks)  # answers are generated
    assert data.tokenizer.decode(data.sequences[0]).endswith("<|assistant|>\n")
    assert "entropy" in stage.loss(cfg).metrics
    assert stage.train is not None and stage.updates_per_step(cfg) == cfg.rlvr.mini_batches


@pytest.mark.parametrize("override, message", [
    ("rlvr.samples_per_prompt=1", "GRPO needs at least 2 answers per prompt"),
    ("rlvr.kl_estimator=k4", "rlvr.kl_estimator='k4' is not one of k1, k2, k3"),
    ("rlvr.advantage_normalization=rank", "rlvr.advantage_normalization='rank'"),
    ("rlvr.mini_batches=3", "256 answers do not split into rlvr.mini_batches=3"),
    ("rollout.max_new_tokens=4000", "does not fit data.max_tokens_per_micro_batch=2048"),
    ("rollout.temperature=0", "rollout.temperature must be > 0"),
    ("rollout.top_p=1.5", "rollout.top_p must be in"),
    ("rollout.dtype=float16", "rollout.dtype='float16' is not one of float32, bfloat16"),
    ("rlvr.kl_coef=-1", "rlvr.kl_coef must be >= 0"),
    ("rlvr.old_logprobs=never", "rlvr.old_logprobs='never' is not one of auto, recompute"),
])
def test_rlvr_stage_checks_its_keys(override, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(TINY_RLVR, ["model.init_from_checkpoint=null", override])


TINY_PPO = ROOT / "recipes" / "tiny" / "ppo.yaml"


def test_ppo_trains_the_policy_without_the_kl_term_and_counts_every_update():
    cfg = load_recipe(TINY_PPO, ["model.init_from_checkpoint=null", "rlvr.mini_batches=2"])
    stage = get_stage("rlvr")
    assert stage.updates_per_step(cfg) == 4 * 2  # epochs × mini-batches: the LR's horizon
    assert stage.loss(cfg).fn.keywords["kl_coef"] == 0.0  # the KL is in PPO's rewards
    grpo = load_recipe(TINY_RLVR, ["model.init_from_checkpoint=null"])
    assert stage.loss(grpo).fn.keywords["kl_coef"] == grpo.rlvr.kl_coef == 0.01


@pytest.mark.parametrize("recipe, overrides, from_training", [
    (TINY_RLVR, [], True),  # GRPO, one optimizer step per rollout batch: on-policy
    (TINY_RLVR, ["rlvr.old_logprobs=recompute"], False),
    (TINY_RLVR, ["rlvr.mini_batches=2"], False),  # the second step's policy has moved
    (TINY_RLVR, ["rlvr.epochs=2"], False),
    (TINY_PPO, ["rlvr.epochs=1"], False),  # PPO's rewards need them before training
])
def test_old_logprobs_come_from_the_training_forward_only_when_on_policy(recipe, overrides,
                                                                        from_training):
    from engine.stages.rlvr import old_logprobs_from_training

    cfg = load_recipe(recipe, ["model.init_from_checkpoint=null", *overrides])
    assert old_logprobs_from_training(cfg) is from_training
    assert get_stage("rlvr").loss(cfg).fn.keywords["on_policy"] is from_training


@pytest.mark.parametrize("override, message", [
    ("rlvr.kl_estimator=k3", "PPO puts the KL into the per-token rewards"),
    ("rlvr.lam=1.5", "rlvr.lam must be in"),
    ("rlvr.epochs=0", "rlvr.epochs must be >= 1"),
    ("value.clip=0", "value.clip must be > 0"),
    ("value.lr=-1", "value.lr must be >= 0"),
    ("rlvr.algorithm=reinforce", "rlvr.algorithm='reinforce' is not one of grpo, ppo"),
    ("eval.samples_per_prompt=0", "eval.samples_per_prompt must be >= 1"),
])
def test_ppo_checks_its_keys(override, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(TINY_PPO, ["model.init_from_checkpoint=null", override])


def test_ppo_value_model_from_hf_must_be_a_reward_model_of_the_same_vocabulary(hf_models):
    def load(shape):
        return load_recipe(TINY_PPO, ["model.init_from_checkpoint=null",
                                      f"value.init_from_hf={hf_models[shape]}"])

    with pytest.raises(ConfigError, match="is a language model; PPO's value model starts from"):
        load("llama-gqa2-rope-scaled-untied")
    with pytest.raises(ConfigError, match=r"its vocabulary \(300\) is not the policy's \(265\)"):
        load("llama-value")


def test_rollout_tp_must_divide_the_world():
    cfg = load_recipe(TINY_RLVR, ["model.init_from_checkpoint=null", "rollout.tp=2"])
    cfg.validate(4)
    with pytest.raises(ConfigError, match="world size 3 is not divisible by rollout.tp=2"):
        cfg.validate(3)
