"""PPO's value model (`rlvr.algorithm=ppo`), built, trained and checkpointed beside the policy.

    critic = Critic(cfg, layout, training)
    values = critic.values(sequences, pad_id)        # per target of each sequence, every rank
    result = critic.step(micro_batches)              # one update on the `value` loss

The model is a decoder with a scalar head (`model.head=value`, column 0 of its output layer) at
the policy's TP/PP/SP layout: a reward model's, with its architecture, from `value.init_from_hf`
(HF `...ForSequenceClassification` with one label; Tülu 3 used its 8B reward model, for the 70B
policy too), or else the policy's architecture and initial weights with a head of zeros (so its
first values are 0, and the first updates train the head). Its optimizer is its own Adam with
the policy's settings and schedule (warmup, decay, horizon) but the peak LR `value.lr` (`min_lr`
scaled alike). The loss is `value` (`engine.losses.ppo`): `value.coef` × the clipped value loss
(`value.clip`) on the micro-batch's `old_values` and `returns`. The run checkpoints it as the
companion "value" of the policy (`engine.checkpoint.train_state`: its tensors under the key
prefix `value.`, its config in the checkpoint's meta), and `engine-to-hf --part value` exports
it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from engine.config import Config, ModelConfig
from engine.hf.config import hf_architecture
from engine.hf.importer import hf_source
from engine.launch.layout import Layout
from engine.losses.registry import get_loss
from engine.model.init import Source
from engine.train.build import Training, build_model_with_weights, weight_source
from engine.train.optimizer import build_optimizer, wrap_for_training
from engine.train.reference import token_values
from engine.train.step import TrainStep


def value_model_config(cfg: Config) -> ModelConfig:
    """The value model's architecture: the reward model's, or the policy's with a scalar head
    (never tied: a score head has no embedding to share)."""
    if cfg.value.init_from_hf:
        m, _ = hf_architecture(cfg.value.init_from_hf)
        return dataclasses.replace(m, init_from_hf=cfg.value.init_from_hf,
                                   make_vocab_size_divisible_by=
                                   cfg.model.make_vocab_size_divisible_by)
    return dataclasses.replace(cfg.model, head="value", tie_word_embeddings=False)


def value_config(cfg: Config) -> Config:
    """The run's config as the value model trains under it: its model and its LR."""
    o = cfg.optim
    lr = cfg.value.lr if cfg.value.lr is not None else o.lr
    scale = lr / o.lr if o.lr else 1.0
    return dataclasses.replace(cfg, model=value_model_config(cfg),
                               optim=dataclasses.replace(o, lr=lr, min_lr=o.min_lr * scale))


def _with_fresh_head(source: Source) -> Source:
    """A language model's tensors for a value model: all but the output layer, which is 0."""

    def tensor(key: str, layer: int | None, shape: tuple) -> torch.Tensor:
        if key == "output_layer.weight":
            return torch.zeros(shape)
        return source(key, layer, shape)

    return tensor


class Critic:
    def __init__(self, cfg: Config, layout: Layout, training: Training):
        self.cfg, self.layout = value_config(cfg), layout
        m = self.model_config = self.cfg.model
        if cfg.value.init_from_hf:
            source = hf_source(m, cfg.value.init_from_hf, layout.tp)
            what = f"weights from the reward model {cfg.value.init_from_hf}"
        else:
            policy_source, what = weight_source(cfg.model, cfg.seed, layout.tp)
            source, what = _with_fresh_head(policy_source), f"the policy's {what}, head zeros"
        model = build_model_with_weights(self.cfg, layout, source, what, role="value model")
        self.model = wrap_for_training(model, self.cfg)
        self.optimizer, self.scheduler = build_optimizer(self.model, self.cfg, training.updates,
                                                         training.warmup_updates)
        loss = get_loss("value", real_vocab_size=1, value_clip=cfg.value.clip,
                        value_coef=cfg.value.coef)
        self.step = TrainStep(self.model, self.optimizer, self.scheduler, layout, loss)

    def values(self, sequences: list[np.ndarray], pad_id: int) -> list[np.ndarray]:
        """The value at every position but the last of each sequence: V(tokens 0..i)."""
        return token_values(self.model, sequences, self.layout, self.cfg, pad_id)
