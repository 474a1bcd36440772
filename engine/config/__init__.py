"""Typed run configuration: dataclasses per section, read from YAML recipes with `key=value`
overrides, validated before any process group exists.

    cfg = load_recipe("recipes/tiny/pretrain.yaml", ["train.max_steps=10", "parallel.tp=2"])
    cfg.validate(world_size=4)

(`engine.recipe.load_recipe` builds a Config from `read_recipe` + `build_config` and takes the
architecture of the model a run starts from.) Every error names the offending key
(`parallel.tp`, `model.num_query_groups`, ...). Unknown keys and values of the wrong type are
rejected, never ignored. This package knows no file format but YAML.

- `choices`: the one list of each choice (precisions, losses, kernels, ...);
- `sections`: the dataclasses, one per recipe section, and `Config`, a whole run;
- `checks`: what `Config.validate` rejects;
- `parse`: YAML and overrides to a raw mapping, and a mapping to typed sections.
"""

from engine.config.choices import (  # noqa: F401
    ADVANTAGE_NORMALIZATIONS, ARCHS, CHAT_TEMPLATES, CROSS_ENTROPY_KERNELS, HEADS, KL_ESTIMATORS,
    MATH_RULES, OLD_LOGPROBS, PRECISIONS, PREFERENCE_LOSSES, RECOMPUTE, RECOMPUTE_MODULES,
    REDUCTIONS, RL_ALGORITHMS, TRANSFORMER_IMPLS)
from engine.config.parse import build_config, model_config_from_dict, read_recipe  # noqa: F401
from engine.config.sections import (  # noqa: F401
    CheckpointConfig, Config, DataConfig, DPOConfig, EvalConfig, LoggingConfig, ModelConfig,
    OptimConfig, ParallelConfig, RLVRConfig, RolloutConfig, RopeScalingConfig, SourceConfig,
    TrainConfig, ValueConfig)
from engine.errors import ConfigError  # noqa: F401
