"""A step whose gradient norm is not finite changes nothing (weights, Adam's moments, its step
count) and says so; a finite one is megatron's own optimizer step, bit for bit; too many skipped
steps in a row end the run with an error naming them."""

import math

import numpy as np
import pytest
import torch

from engine.config import Config, ModelConfig, SourceConfig
from engine.data.packing import collate
from engine.errors import DivergenceError
from engine.launch.layout import Layout
from engine.losses.cross_entropy import weighted_cross_entropy
from engine.losses.registry import LossFunction
from engine.model.build import build_model
from engine.model.init import init_weights
from engine.train.optimizer import apply_update, build_optimizer, wrap_for_training
from engine.train.schedule import run_schedule
from engine.train.skips import SkippedSteps
from engine.train.step import TrainStep

CPU = torch.device("cpu")
LAYOUT = Layout(rank=0, world_size=1, tp=1, pp=1, dp=1, tp_rank=0, pp_rank=0, dp_rank=0,
                device=CPU)


def _cfg(precision: str, clip_grad: float = 1.0) -> Config:
    cfg = Config(model=ModelConfig(num_layers=2, hidden_size=64, ffn_hidden_size=96,
                                   num_attention_heads=2, num_query_groups=1, head_dim=32,
                                   vocab_size=50), precision=precision)
    cfg.data.sources = [SourceConfig(path="unused")]
    cfg.train.max_steps = 4
    cfg.optim.lr, cfg.optim.clip_grad = 1e-2, clip_grad
    return cfg


def _micro_batches(seed: int):
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(0, 50, size=n) for n in (9, 5, 12)]
    return [collate(seqs[:2], [np.ones(8), np.ones(4)], 0, 1),
            collate(seqs[2:], [np.full(11, 0.5)], 0, 1)]


def _training(cfg: Config):
    model = build_model(cfg, first_stage=True, last_stage=True, device=CPU)
    init_weights(model, cfg.model, seed=5)
    model = wrap_for_training(model, cfg)
    optimizer, scheduler = build_optimizer(model, cfg, max_steps=4, warmup_steps=0)
    return model, optimizer, scheduler


def _loss(scale: float = 1.0) -> LossFunction:
    """Cross-entropy; `scale` nan poisons every gradient."""
    def loss(mb, logits):
        value = weighted_cross_entropy(logits, mb.labels, mb.loss_weights, 50) * scale
        return value, torch.tensor(mb.num_tokens), {"loss": value.detach()}
    return LossFunction(loss, ("loss",))


def _state(model, optimizer) -> dict[str, torch.Tensor]:
    """Every weight, and every Adam moment and step count, as copies."""
    out = {f"weight.{n}": p.detach().clone() for n, p in model.named_parameters()}
    for i, state in enumerate(optimizer.optimizer.state.values()):
        for key, value in state.items():
            out[f"adam.{i}.{key}"] = torch.as_tensor(value).clone()
    return out


def _assert_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("clip_grad", [1.0, 0.0])
def test_a_finite_step_is_megatrons_step(single_process, precision, clip_grad):
    cfg = _cfg(precision, clip_grad)
    ours, theirs = _training(cfg), _training(cfg)
    for seed in (0, 1):
        norms = []
        for (model, optimizer, _), step in ((ours, True), (theirs, False)):
            model.zero_grad_buffer()
            optimizer.zero_grad()
            run_schedule(model, _micro_batches(seed), _loss(), CPU, forward_only=False)
            if step:
                ok, norm = apply_update(optimizer, clip_grad)
                assert ok
            else:
                ok, norm, _ = optimizer.step()
                assert ok
                norm = norm if clip_grad else optimizer.get_grad_norm()
            norms.append(norm)
        assert math.isfinite(norms[0]) and norms[0] > 0 and norms[0] == norms[1]
        _assert_equal(_state(ours[0], ours[1]), _state(theirs[0], theirs[1]))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_nonfinite_gradient_changes_nothing(single_process, precision):
    model, optimizer, scheduler = _training(_cfg(precision))
    good, poisoned = (TrainStep(model, optimizer, scheduler, LAYOUT, _loss(scale))
                      for scale in (1.0, math.nan))
    assert not good(_micro_batches(0)).skipped  # Adam's moments exist from here on
    before = _state(model, optimizer)
    result = poisoned(_micro_batches(1))
    assert result.skipped and math.isnan(result.grad_norm)
    _assert_equal(_state(model, optimizer), before)
    after = good(_micro_batches(2))  # the run goes on from the same weights
    assert not after.skipped and math.isfinite(after.grad_norm) and math.isfinite(after.loss)
    assert not torch.equal(_state(model, optimizer)["adam.0.step"], before["adam.0.step"])


def test_skips_in_a_row_end_the_run_after_the_limit_and_a_good_step_resets_them():
    skips = SkippedSteps(limit=2)
    for step, skipped in enumerate([True, True, False, True, True], start=1):
        skips.see(step, skipped, {"grad_norm": math.nan}, "run/checkpoints/step_0")
    assert (skips.in_a_row, skips.total) == (2, 4)
    with pytest.raises(DivergenceError) as error:
        skips.see(6, True, {"grad_norm": math.inf, "value_grad_norm": 1.5},
                  "run/checkpoints/step_3")
    message = str(error.value)
    for part in ("step 6", "steps 4-6", "3 in a row", "train.max_skipped_in_a_row=2",
                 "grad_norm inf", "value_grad_norm 1.5", "step 3's", "run/checkpoints/step_3"):
        assert part in message, part


def test_a_limit_of_zero_stops_at_the_first_skip():
    skips = SkippedSteps(limit=0)
    skips.see(1, False, {"grad_norm": 2.0}, "none")
    with pytest.raises(DivergenceError, match="step 2: .* at steps 2-2"):
        skips.see(2, True, {"grad_norm": math.nan}, "none")
