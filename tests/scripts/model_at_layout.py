"""The set-up every parity script shares: a recipe with command-line overrides, the process
groups of the launch (torchrun or one process), and the recipe's model built at that layout.

    cfg, layout, model = model_at_layout(recipe, overrides)   # model in eval mode, not initialized
"""

from engine.launch.env import launch_env
from engine.launch.process_groups import init_distributed
from engine.launch.seeds import seed_everything
from engine.model.build import build_model
from engine.recipe import load_recipe


def model_at_layout(recipe, overrides: list[str], whole_model: bool = False):
    """`whole_model`: every rank builds all layers with embedding and output (no pipeline)."""
    cfg = load_recipe(recipe, overrides)
    env = launch_env()
    cfg.validate(env.world_size)
    layout = init_distributed(cfg.parallel, env)
    seed_everything(cfg.seed)
    model = build_model(cfg, first_stage=whole_model or layout.is_first_stage,
                        last_stage=whole_model or layout.is_last_stage, device=layout.device)
    return cfg, layout, model.eval()
