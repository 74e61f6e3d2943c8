"""Training and evaluation engine: configs, the loop and its hooks, checkpoints, distributed helpers."""

from demopose.engine.config import apply_overrides, load_config, save_config
from demopose.engine.hooks import CheckpointHook, EvalHook, HookBase, JSONLWriter, ProgressHook, default_hooks
from demopose.engine.optim import build_optimizer, build_scheduler
from demopose.engine.sampler import ResumableSampler, sample_seed
from demopose.engine.trainer import Trainer, TrainerConfig, move_to_device, seed_everything

__all__ = [
    "CheckpointHook",
    "EvalHook",
    "HookBase",
    "JSONLWriter",
    "ProgressHook",
    "ResumableSampler",
    "Trainer",
    "TrainerConfig",
    "apply_overrides",
    "build_optimizer",
    "build_scheduler",
    "default_hooks",
    "load_config",
    "move_to_device",
    "sample_seed",
    "save_config",
    "seed_everything",
]
