"""Training: losses and metrics, the trainer, rollouts, experiments and their evaluation.

The names users need are here; the rest (distributed helpers, checkpoint files,
data adapters) live in the submodules.
"""

from geo_neuralop.training.config import ConfigError, load_config
from geo_neuralop.training.evaluation import evaluate_checkpoint, load_trained_model
from geo_neuralop.training.experiment import run_experiment
from geo_neuralop.training.losses import (
    H1Loss,
    LpLoss,
    SobolevLoss,
    h1_error,
    lp_error,
    sobolev_error,
)
from geo_neuralop.training.metrics import error_metrics
from geo_neuralop.training.rollout import RolloutResult, rollout
from geo_neuralop.training.trainer import Trainer, TrainerConfig

__all__ = [
    "ConfigError",
    "H1Loss",
    "LpLoss",
    "RolloutResult",
    "SobolevLoss",
    "Trainer",
    "TrainerConfig",
    "error_metrics",
    "evaluate_checkpoint",
    "h1_error",
    "load_config",
    "load_trained_model",
    "lp_error",
    "rollout",
    "run_experiment",
    "sobolev_error",
]
