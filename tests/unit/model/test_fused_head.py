"""A model built with `train.cross_entropy=fused` keeps the output layer's weight and checkpoint
keys, hands its hidden states to the loss, gives the logits and log-probs of the unfused model,
and trains a step without ever holding the [tokens, vocabulary] logits (while the unfused one
does, which shows the probe can fail). With either head a step's forward and backward read no
device value on the host."""

import dataclasses

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from engine.config import Config, ModelConfig, SourceConfig
from engine.data.packing import collate
from engine.losses.registry import get_loss
from engine.model.build import build_model
from engine.model.head import HiddenStates, HiddenStatesHead, fuses_head
from engine.model.init import init_weights
from engine.train.schedule import forward_logits, label_logprobs, run_schedule
from kernels.linear_cross_entropy import CHUNK_TOKENS
from tests.dispatch_probes import HostReads

CPU = torch.device("cpu")
VOCAB = 300  # padded to 384, a width no other tensor of this model has


def _cfg(kernel: str, tied: bool = True) -> Config:
    cfg = Config(model=ModelConfig(num_layers=2, hidden_size=64, ffn_hidden_size=96,
                                   num_attention_heads=2, num_query_groups=1, head_dim=32,
                                   vocab_size=VOCAB, tie_word_embeddings=tied))
    cfg.data.sources = [SourceConfig(path="unused")]
    cfg.train.max_steps = 1
    cfg.train.cross_entropy = kernel
    return cfg


def _model(cfg):
    model = build_model(cfg, first_stage=True, last_stage=True, device=CPU)
    init_weights(model, cfg.model, seed=5)
    return model


def _micro_batches(lengths=(9, 5, 12)):
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, VOCAB, size=n) for n in lengths]
    return [collate(seqs, [np.full(n - 1, 0.01) for n in lengths], 0, 1)]


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_the_fused_model_has_the_same_weights_and_logits(single_process, tied):
    fused, plain = _model(_cfg("fused", tied)), _model(_cfg("megatron", tied))
    assert isinstance(fused.output_layer, HiddenStatesHead) and fuses_head(fused)
    assert not fuses_head(plain)
    fused_state, plain_state = fused.state_dict(), plain.state_dict()
    assert fused_state.keys() == plain_state.keys()
    assert ("output_layer.weight" in fused_state) is not tied
    for key, value in plain_state.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(fused_state[key], value), key
    mb = _micro_batches()[0]
    with torch.no_grad():
        torch.testing.assert_close(forward_logits(fused, mb), forward_logits(plain, mb))
    got = label_logprobs(fused, [mb], VOCAB, CPU, last_stage=True)[0]
    expected = label_logprobs(plain, [mb], VOCAB, CPU, last_stage=True)[0]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_the_loss_gets_hidden_states(single_process):
    seen = []

    def spy(mb, out):
        seen.append(out)
        return torch.zeros(()), torch.tensor(1), {}

    run_schedule(_model(_cfg("fused")), _micro_batches(), spy, CPU, forward_only=True,
                 collect_non_loss_data=True)
    (out,) = seen
    assert isinstance(out, HiddenStates) and out.hidden.shape == (26, 64)
    assert out.weight.shape[1] == 64 and out.vocab_start == 0 and out.tp_group is None


class _LogitsShapes(TorchDispatchMode):
    """The shapes of every tensor produced whose last dimension is the padded vocabulary."""

    def __init__(self, padded_vocab: int):
        super().__init__()
        self.padded_vocab, self.shapes = padded_vocab, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.shapes += [tuple(t.shape) for t in tree_leaves(out)
                        if isinstance(t, torch.Tensor) and t.dim() == 2
                        and t.shape[-1] == self.padded_vocab]
        return out


@pytest.mark.parametrize("kernel", ["fused", "megatron"])
def test_a_training_step_never_holds_the_whole_logits(single_process, kernel):
    cfg = _cfg(kernel)
    model = _model(cfg)
    micro_batches = _micro_batches((1500, 1500, 1200))  # 4,200 tokens: three chunks
    loss = get_loss("cross_entropy", real_vocab_size=VOCAB, kernel=kernel)
    probe = _LogitsShapes(cfg.model.padded_vocab_size(1))
    with probe:
        run_schedule(model, micro_batches, loss, CPU, forward_only=False)
    rows = max(shape[0] for shape in probe.shapes)
    if kernel == "fused":
        assert rows == CHUNK_TOKENS
    else:
        assert rows == 4200  # the probe sees the whole logits when they exist
    assert model.embedding.word_embeddings.weight.grad.abs().sum() > 0


def test_the_fused_head_replaces_only_a_language_models_last_stage(single_process):
    cfg = _cfg("fused")
    assert not hasattr(build_model(cfg, first_stage=True, last_stage=False, device=CPU),
                       "output_layer")
    value = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, head="value"))
    assert not fuses_head(build_model(value, first_stage=True, last_stage=True, device=CPU))


@pytest.mark.parametrize("kernel", ["fused", "megatron"])
def test_forward_backward_reads_nothing_on_the_host(single_process, kernel):
    cfg = _cfg(kernel)
    model = _model(cfg)
    loss = get_loss("cross_entropy", real_vocab_size=VOCAB, kernel=kernel)
    with HostReads() as probe:
        run_schedule(model, _micro_batches(), loss, CPU, forward_only=False)
    assert probe.count == 0
    assert model.embedding.word_embeddings.weight.grad.abs().sum() > 0
