"""Forecasting recipe on shallow water: fine-tuning a one-step SFNO with 2-step rollouts (the SFNO
paper's recipe) lowers its 12-hour rollout error more than fine-tuning it as long with one-step
targets (slow: about two minutes on one CPU thread)."""

import pytest
import torch

from geo_neuralop.data import generate_dataset
from geo_neuralop.training.experiment import run_experiment


@pytest.mark.slow
def test_two_step_fine_tuning_lowers_the_twelve_step_error(tmp_path):
    torch.set_num_threads(1)
    data = tmp_path / "swe"
    generate_dataset("swe", data, n_samples=24, params={"nlat": 16, "n_frames": 18},
                     progress=False, log=None)
    model = {"name": "sfno", "lmax": 16, "hidden_channels": 32, "n_layers": 3, "residual": True}

    def config(epochs, lr, **trainer):
        return {"data": {"path": str(data)}, "model": model,
                "trainer": {"epochs": epochs, "batch_size": 8, "lr": lr, "progress": False,
                            "device": "cpu", "seed": 0, **trainer},
                "evaluation": {"device": "cpu", "rollout_steps": 12, "prediction_files": 0,
                               "checkpoint": "last"}}

    run_experiment(config(20, 3e-3), tmp_path / "base")
    errors = {}
    for steps in (1, 2):
        result = run_experiment(config(6, 1e-3, rollout_steps=steps,
                                       init_from=str(tmp_path / "base" / "model.pt")),
                                tmp_path / f"fine_tune_{steps}")
        errors[steps] = result["evaluation"]["rollout"]["model"]["rel_l2"]
    # measured (seed 0): 12-step relative L2 0.866 (2-step) vs 0.917 (1-step)
    assert errors[2][11] < 0.97 * errors[1][11], errors
    assert sum(errors[2]) < sum(errors[1]), errors
