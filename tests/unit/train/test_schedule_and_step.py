"""The forward-only pass gives log p(label) per token equal to log-softmax of the full logits,
and the train step reduces every metric a loss declares, not only "loss": a sum, or for the
loss's maxima, a maximum."""

import numpy as np
import pytest
import torch

from engine.config import Config, ModelConfig, SourceConfig
from engine.data.packing import collate
from engine.launch.layout import Layout
from engine.losses.cross_entropy import weighted_cross_entropy
from engine.losses.registry import LossFunction
from engine.model.build import build_model, vocab_logits
from engine.model.init import init_weights
from engine.train.schedule import forward_collect, label_logprobs
from engine.train.step import TrainStep

CPU = torch.device("cpu")


def _cfg():
    cfg = Config(model=ModelConfig(num_layers=2, hidden_size=64, ffn_hidden_size=96,
                                   num_attention_heads=2, num_query_groups=1, head_dim=32,
                                   vocab_size=50))
    cfg.data.sources = [SourceConfig(path="unused")]
    cfg.train.max_steps = 1
    return cfg


def _micro_batches():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 50, size=n) for n in (9, 5, 12)]
    return [collate(seqs[:2], [np.ones(8), np.ones(4)], 0, 1),
            collate(seqs[2:], [np.full(11, 0.5)], 0, 1)]


def _model(cfg):
    model = build_model(cfg, first_stage=True, last_stage=True, device=CPU).eval()
    init_weights(model, cfg.model, seed=5)
    return model


def test_label_logprobs_equal_log_softmax_of_full_logits(single_process):
    cfg, mbs = _cfg(), _micro_batches()
    model = _model(cfg)
    got = label_logprobs(model, mbs, cfg.model.vocab_size, CPU, last_stage=True)
    full = forward_collect(model, mbs, lambda mb, out: vocab_logits(out, 50), CPU, True)
    assert len(got) == len(full) == 2
    for mb, lp, logits in zip(mbs, got, full):
        expected = torch.log_softmax(logits.float(), -1)
        labels = mb.labels
        for i in range(len(labels)):
            want = expected[i, labels[i]].item() if labels[i] >= 0 else 0.0
            assert lp[i].item() == pytest.approx(want, abs=1e-5)
    assert label_logprobs(model, mbs, 50, CPU, last_stage=False) is None


def test_step_reduces_every_declared_metric(single_process):
    from engine.train.optimizer import build_optimizer, wrap_for_training

    cfg = _cfg()
    model = wrap_for_training(_model(cfg), cfg)
    optimizer, scheduler = build_optimizer(model, cfg, max_steps=1, warmup_steps=0)

    def three_metrics(mb, logits):
        loss = weighted_cross_entropy(logits, mb.labels, mb.loss_weights, 50)
        sequences = torch.tensor(float(mb.num_sequences))
        return loss, torch.tensor(mb.num_tokens), {"loss": loss.detach(), "sequences": sequences,
                                                   "longest": mb.cu_seqlens.diff().max().float()}

    layout = Layout(rank=0, world_size=1, tp=1, pp=1, dp=1, tp_rank=0, pp_rank=0, dp_rank=0,
                    device=CPU)
    step = TrainStep(model, optimizer, scheduler, layout,
                     LossFunction(three_metrics, ("loss", "sequences"), maxima=("longest",)))
    evaluated = step.evaluate(_micro_batches())
    assert evaluated["sequences"] == 3.0  # summed over both micro-batches
    assert evaluated["longest"] == 12.0  # the longest of 9, 5 and 12 tokens, not their sum
    result = step(_micro_batches())
    assert list(result.metrics) == ["loss", "sequences", "longest"]
    assert (result.metrics["sequences"], result.metrics["longest"]) == (3.0, 12.0)
    assert result.loss == pytest.approx(
        evaluated["loss"], rel=1e-6)  # the same weights before the update
    assert result.grad_norm > 0 and not result.skipped
