"""Activation recomputation (`train.recompute`): a step with any setting gives the same loss,
gradient norm and weights as one without, bit for bit (recomputed norms: to float32 rounding);
the tensors saved for the backward shrink by at least what the memory estimate counts on, and
with full recomputation of the first k layers by k equal shares; bad settings are refused
naming the key."""

import numpy as np
import pytest
import torch

from engine.config import Config, ModelConfig, SourceConfig
from engine.data.packing import collate
from engine.errors import ConfigError
from engine.launch.layout import Layout
from engine.losses.cross_entropy import weighted_cross_entropy
from engine.losses.registry import LossFunction
from engine.metrics.memory import estimate_memory
from engine.model.build import build_model
from engine.model.init import init_weights
from engine.train.optimizer import build_optimizer, wrap_for_training
from engine.train.schedule import forward_packed
from engine.train.step import TrainStep

CPU = torch.device("cpu")
LAYOUT = Layout(rank=0, world_size=1, tp=1, pp=1, dp=1, tp_rank=0, pp_rank=0, dp_rank=0,
                device=CPU)
LAYERS, HIDDEN, FFN = 4, 64, 160
SETTINGS = [("selective", ["mlp"], None), ("selective", ["core_attn", "layernorm"], None),
            ("selective", ["mlp", "core_attn", "layernorm"], None), ("full", ["mlp"], None),
            ("full", ["mlp"], 1)]


def _cfg(recompute="none", modules=("mlp",), layers=None) -> Config:
    cfg = Config(model=ModelConfig(num_layers=LAYERS, hidden_size=HIDDEN, ffn_hidden_size=FFN,
                                   num_attention_heads=4, num_query_groups=2, vocab_size=50))
    cfg.data.sources = [SourceConfig(path="unused")]
    cfg.train.max_steps = 2
    cfg.train.recompute, cfg.train.recompute_modules = recompute, list(modules)
    cfg.train.recompute_layers = layers
    cfg.validate(1)
    return cfg


def _micro_batches(seed: int):
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(0, 50, size=n) for n in (17, 9, 30)]
    return [collate(seqs[:2], [np.ones(16), np.ones(8)], 0, 1),
            collate(seqs[2:], [np.full(29, 0.5)], 0, 1)]


def _loss() -> LossFunction:
    def loss(mb, logits):
        value = weighted_cross_entropy(logits, mb.labels, mb.loss_weights, 50)
        return value, torch.tensor(mb.num_tokens), {"loss": value.detach()}
    return LossFunction(loss, ("loss",))


def _model(cfg: Config):
    model = build_model(cfg, first_stage=True, last_stage=True, device=CPU)
    init_weights(model, cfg.model, seed=3)
    return model


def _train(cfg: Config):
    model = wrap_for_training(_model(cfg), cfg)
    optimizer, scheduler = build_optimizer(model, cfg, max_steps=2, warmup_steps=0)
    step = TrainStep(model, optimizer, scheduler, LAYOUT, _loss())
    results = [step(_micro_batches(seed)) for seed in (0, 1)]
    return [(r.loss, r.grad_norm) for r in results], \
        {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("recompute, modules, layers", SETTINGS)
def test_recomputation_trains_exactly_as_without(single_process, recompute, modules, layers):
    want_numbers, want_weights = _train(_cfg())
    numbers, weights = _train(_cfg(recompute, modules, layers))
    if "layernorm" not in modules or recompute != "selective":
        assert numbers == want_numbers
        for name, value in want_weights.items():
            assert torch.equal(weights[name], value), name
        return
    # a recomputed norm's input gradient adds its two paths (residual and norm) in another
    # order: the gradients are equal to float32 rounding (and Adam's normalization magnifies
    # that in the weights of near-zero gradients, so the gradients are compared)
    assert sum(numbers, ()) == pytest.approx(sum(want_numbers, ()), rel=1e-6)
    want, got = _gradients(_cfg()), _gradients(_cfg(recompute, modules, layers))
    for name, value in want.items():
        assert (got[name] - value).abs().max() <= 1e-6 * value.abs().max(), name


def _gradients(cfg: Config) -> dict[str, torch.Tensor]:
    model, mb = _model(cfg).train(), _micro_batches(0)[0]
    (forward_packed(model, mb) ** 2).mean().backward()
    return {n: p.grad for n, p in model.named_parameters()}


def _saved_bytes(cfg: Config) -> int:
    """Bytes of the distinct storages that one forward pass saves for its backward."""
    model, mb = _model(cfg).train(), _micro_batches(0)[0]
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = forward_packed(model, mb)  # all saved storages alive: distinct addresses
    del output
    return sum(storages.values())


def test_saved_activations_shrink_by_at_least_the_estimate(single_process):
    tokens = int(_micro_batches(0)[0].num_tokens)
    none = _saved_bytes(_cfg())

    def estimated(cfg):
        return estimate_memory(cfg, 1, 1, 1, cross_entropy="megatron").activation_bytes_per_token

    for cfg in (_cfg("selective", ["mlp"]), _cfg("selective", ["mlp", "layernorm"]),
                _cfg("full")):
        freed = none - _saved_bytes(cfg)
        # the CPU path saves more than the GPU kernels the estimate counts (unfused SwiGLU,
        # attention scores), so it frees at least as much
        assert freed >= (estimated(_cfg()) - estimated(cfg)) * tokens > 0, cfg.train
    every_layer = none - _saved_bytes(_cfg("full"))
    for k in range(1, LAYERS):  # equal shares, but for a few small tensors the layers share
        share = none - _saved_bytes(_cfg("full", layers=k))
        assert share == pytest.approx(every_layer * k / LAYERS, rel=0.01), k


@pytest.mark.parametrize("overrides, message", [
    ({"recompute": "some"}, "train.recompute='some' is not one of none, selective, full"),
    ({"recompute": "selective", "recompute_modules": ["mlp", "qkv"]},
     "train.recompute_modules='qkv' is not one of mlp, core_attn, layernorm"),
    ({"recompute": "selective", "recompute_modules": []}, "needs train.recompute_modules"),
    ({"recompute": "selective", "recompute_layers": 2}, "applies to train.recompute=full"),
    ({"recompute": "full", "recompute_layers": 5}, "must be 1..4 .the layers of a pipeline"),
])
def test_bad_settings_name_the_key(overrides, message):
    cfg = Config(model=ModelConfig(num_layers=LAYERS, hidden_size=HIDDEN, ffn_hidden_size=FFN,
                                   num_attention_heads=4, num_query_groups=2, vocab_size=50))
    cfg.data.sources = [SourceConfig(path="unused")]
    cfg.train.max_steps = 1
    for key, value in overrides.items():
        setattr(cfg.train, key, value)
    with pytest.raises(ConfigError, match=message):
        cfg.validate(1)
