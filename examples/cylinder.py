"""
Flow past a cylinder on unstructured meshes
===========================================

Generate a few trajectories with the finite element solver (each on its own mesh, with
its own Reynolds number and cylinder), train a :class:`~geo_neuralop.models.MeshNO`
(mesh -> latent grid -> mesh, so one model takes every mesh), evaluate it against the
persistence forecast, and draw truth, prediction and error. The defaults are small
(about 2 minutes on 2 cores); ``geo-neuralop generate cylinder`` and
``examples/configs/cylinder.yaml`` are the full-size versions.

Run: ``.venv/bin/python examples/cylinder.py``.
"""

# %%
# Data: 6 trajectories of (u, v, p) on meshes of about 700 vertices. Running the
# script again reuses the finished dataset.
from pathlib import Path

import matplotlib.pyplot as plt

from geo_neuralop.data import generate_dataset, load_dataset, load_predictions
from geo_neuralop.training.evaluation import format_results
from geo_neuralop.training.experiment import run_experiment
from geo_neuralop.viz import render_predictions, rendering_available

OUT = Path("outputs/examples/cylinder")
generate_dataset("cylinder", OUT / "data", n_samples=6, seed=0, workers=1, progress=False,
                 params={"target_vertices": 700, "n_frames": 16, "reynolds_range": [90, 150]})
train = load_dataset(OUT / "data", "train")
print(train, "| first mesh:", train.cloud(0).num_nodes, "vertices")

# %%
# Train: one frame (and the Reynolds number, and the node types) in, the next frame out.
config = {
    "data": {"path": str(OUT / "data")},
    "model": {"name": "mesh_no", "latent_shape": [32, 8], "hidden_channels": 16,
              "n_layers": 2, "n_modes": [12, 6]},
    "trainer": {"epochs": 8, "batch_size": 4, "lr": 3e-3, "scheduler": "cosine",
                "progress": False},
    "evaluation": {"rollout_steps": 8, "prediction_files": 1},
}
result = run_experiment(config, OUT / "run", overwrite=True)

# %%
# Evaluate: relative L2 errors (quadrature-weighted on each mesh) of one step and of an
# 8-step rollout, beside persistence (the last state held constant).
print(format_results(result["evaluation"]))

# %%
# Render truth, prediction and error of the rollout's last frame on the test mesh.
prediction = load_predictions(result["evaluation"]["predictions"][0])
if rendering_available():
    (picture,) = render_predictions(prediction, OUT / "pictures", "cylinder", field="u",
                                    width=900)
    plt.figure(figsize=(9, 3))
    plt.imshow(plt.imread(picture))
    plt.axis("off")
    plt.show()
