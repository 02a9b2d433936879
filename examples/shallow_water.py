"""
Shallow water on the rotating sphere
====================================

Generate shallow-water trajectories with torch-harmonics' spectral solver, train a
:class:`~geo_neuralop.models.LocalSFNO` (spherical FNO blocks with local DISCO and
differential layers on the sphere), evaluate its rollout against persistence and draw
the height field on a Mollweide map. A few minutes on 2 cores (most of it training).

Run: ``.venv/bin/python examples/shallow_water.py``.
"""

# %%
# Data: 20 trajectories of height, vorticity and divergence on a 32 x 64 grid, one frame
# per hour. Running the script again reuses the finished dataset.
from pathlib import Path

import matplotlib.pyplot as plt

from geo_neuralop.data import generate_dataset, load_predictions
from geo_neuralop.training.evaluation import format_results
from geo_neuralop.training.experiment import run_experiment
from geo_neuralop.viz import plot_sphere_maps

OUT = Path("outputs/examples/shallow_water")
generate_dataset("swe", OUT / "data", n_samples=20, seed=0, workers=1, progress=False,
                 params={"nlat": 32, "n_frames": 12})

# %%
# Train: the state one hour ahead, as a change of the current state (residual).
config = {
    "data": {"path": str(OUT / "data")},
    "model": {"name": "local_sfno", "lmax": 16, "hidden_channels": 16, "n_layers": 3,
              "disco_radius": 0.3},
    "trainer": {"epochs": 10, "batch_size": 8, "lr": 3e-3, "scheduler": "cosine",
                "grad_clip": 1.0, "progress": False},
    "evaluation": {"rollout_steps": 6, "prediction_files": 1},
}
result = run_experiment(config, OUT / "run", overwrite=True)
print(format_results(result["evaluation"]))

# %%
# The height after the 6-hour rollout: truth, prediction and error on Mollweide maps.
prediction = load_predictions(result["evaluation"]["predictions"][0])
truth, predicted = prediction.field("height")
picture = plot_sphere_maps(prediction.cloud, truth[-1], predicted[-1],
                           OUT / "pictures" / "height_map.png", field="height")
plt.figure(figsize=(10, 3))
plt.imshow(plt.imread(picture))
plt.axis("off")
plt.show()
