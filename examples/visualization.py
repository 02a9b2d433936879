"""
Pictures of fields on meshes and on the sphere
==============================================

Render the example pictures under examples/pictures/ and time each rendering.

Run with ``.venv/bin/python examples/visualization.py``. Off-screen rendering is
configured automatically when there is no display. The fields are analytic
stand-ins for a model's output (a travelling wave in the DFG channel, a
zonal jet with a perturbation on the sphere) so the script needs no trained
model; ``geo-neuralop render PREDICTIONS.h5`` draws the same pictures from an
evaluation's prediction file.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from geo_neuralop.geometry import perforated_rectangle_mesh, sphere_grid
from geo_neuralop.utils import atomic_path
from geo_neuralop.viz import (
    animate_rollout,
    plot_sphere_maps,
    render_mesh_comparison,
    render_sphere_comparison,
)

# The documentation build sets GEO_NEURALOP_PICTURES, so building it leaves these files alone.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("GEO_NEURALOP_PICTURES", HERE / "pictures"))


def channel_fields(mesh, t: float) -> tuple[np.ndarray, np.ndarray]:
    """A wake-like pattern behind the cylinder and a slightly wrong prediction of it."""
    x, y = mesh.pos.double().T.numpy()
    envelope = np.exp(-((y - 0.2) / 0.12) ** 2) * (1 - np.exp(-(x - 0.2) / 0.3)) * (x > 0.2)
    truth = envelope * np.sin(12 * (x - 0.9 * t)) + 4 * y * (0.41 - y) / 0.41**2
    prediction = envelope * 0.93 * np.sin(12 * (x - 0.9 * t) + 0.15) + 4 * y * (0.41 - y) / 0.41**2
    return truth, prediction


def globe_fields(grid) -> tuple[np.ndarray, np.ndarray]:
    """A mid-latitude jet with a wave-6 perturbation, and a prediction with a phase error."""
    x, y, z = grid.pos.double().T.numpy()
    lon, lat = np.arctan2(y, x), np.arcsin(np.clip(z, -1, 1))
    jet = np.tanh((lat - np.pi / 4) / 0.15)
    truth = jet + 0.4 * np.cos(6 * lon) * np.exp(-((lat - np.pi / 4) / 0.2) ** 2)
    prediction = jet + 0.35 * np.cos(6 * lon + 0.2) * np.exp(-((lat - np.pi / 4) / 0.2) ** 2)
    return truth, prediction


def main() -> dict[str, float]:
    OUT.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def timed(name, fn, *args, **kwargs):
        start = time.perf_counter()
        fn(*args, **kwargs)
        timings[name] = round(time.perf_counter() - start, 2)
        print(f"{name}: {timings[name]:.2f} s")

    mesh = perforated_rectangle_mesh(0.02)
    truth, prediction = channel_fields(mesh, 0.0)
    timed("cylinder_comparison.png", render_mesh_comparison, mesh, truth, prediction,
          OUT / "cylinder_comparison.png", field="u", width=800)
    coarse = perforated_rectangle_mesh(0.04)
    coarse_truth, coarse_prediction = channel_fields(coarse, 0.0)
    timed("cylinder_edges.png", render_mesh_comparison, coarse, coarse_truth, coarse_prediction,
          OUT / "cylinder_edges.png", field="u", width=700, show_edges=True)
    grid = sphere_grid(64, 128, "equiangular")
    truth, prediction = globe_fields(grid)
    timed("globe_comparison.png", render_sphere_comparison, grid, truth, prediction,
          OUT / "globe_comparison.png", field="h", panel_size=260)
    timed("globe_mollweide.png", plot_sphere_maps, grid, truth, prediction,
          OUT / "globe_mollweide.png", field="h")
    frames = [channel_fields(mesh, t) for t in np.linspace(0, 0.6, 8)]
    timed("cylinder_rollout.gif (8 frames)", animate_rollout, mesh,
          np.stack([f[0] for f in frames]), np.stack([f[1] for f in frames]),
          OUT / "cylinder_rollout.gif", field="u", times=np.linspace(0, 0.6, 8))
    table = ["| picture | seconds |", "|---|---|"] + [f"| {k} | {v} |" for k, v in timings.items()]
    with atomic_path(OUT / "timings.md") as tmp:
        tmp.write_text("Rendering times on 2 CPU cores (EGL off-screen, first call includes "
                       "VTK start-up), from `python examples/visualization.py`:\n\n"
                       + "\n".join(table) + "\n")
    with atomic_path(OUT / "timings.json") as tmp:
        tmp.write_text(json.dumps(timings, indent=2) + "\n")
    return timings


if __name__ == "__main__":
    main()
    import matplotlib.pyplot as plt

    for name in ("cylinder_comparison.png", "globe_comparison.png", "globe_mollweide.png"):
        if (OUT / name).exists():  # the PyVista pictures need OpenGL (EGL off-screen)
            plt.figure(figsize=(10, 3.5))
            plt.imshow(plt.imread(OUT / name))
            plt.axis("off")
            plt.title(name)
    plt.show()
