"""Flat Mollweide maps of sphere fields with matplotlib (no OpenGL needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.utils import atomic_path
from geo_neuralop.viz.surfaces import as_numpy, warn_nan


def lon_lat(cloud: PointCloud) -> tuple[np.ndarray, np.ndarray]:
    """Longitude in (-pi, pi] and latitude in [-pi/2, pi/2] of sphere points, radians."""
    pos = cloud.pos.detach().cpu().double().numpy()
    return np.arctan2(pos[:, 1], pos[:, 0]), np.arcsin(np.clip(pos[:, 2], -1.0, 1.0))


def plot_sphere_maps(
    cloud: PointCloud,
    truth,
    prediction,
    path: str | Path,
    field: str = "field",
    cmap: str = "RdBu_r",
    error_cmap: str = "magma",
) -> Path:
    """Truth, prediction and absolute error as three Mollweide maps in one PNG.

    Parameters
    ----------
    cloud : PointCloud
        Sphere cloud (any point set: the map triangulates longitude/latitude).
    truth, prediction : array, shape [N]
    path : str or Path
        PNG written atomically.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.tri import Triangulation

    if cloud.manifold != "sphere":
        raise ValueError(f"plot_sphere_maps needs a sphere cloud, got {cloud.manifold!r}")
    n = cloud.num_nodes
    truth = as_numpy(truth, f"{field} (truth)", n)
    prediction = as_numpy(prediction, f"{field} (prediction)", n)
    warn_nan(truth, f"{field} (truth)", "magenta")
    warn_nan(prediction, f"{field} (prediction)", "magenta")
    lon, lat = lon_lat(cloud)
    # repeated points (the poles of equiangular grids) would break the triangulation
    _, keep = np.unique(np.round(np.stack([lon, lat], 1), 12), axis=0, return_index=True)
    keep = np.sort(keep)
    tri = Triangulation(lon[keep], lat[keep])
    error = np.abs(prediction - truth)
    both = np.concatenate([truth, prediction])
    vmin, vmax = np.nanmin(both), np.nanmax(both)
    fig = plt.figure(figsize=(15, 3.6), dpi=110)
    panels = [(truth, "truth", vmin, vmax, cmap), (prediction, "prediction", vmin, vmax, cmap),
              (error, "|prediction - truth|", 0.0, np.nanmax(error) or 1e-12, error_cmap)]
    for k, (values, title, lo, hi, cm) in enumerate(panels):
        ax = fig.add_subplot(1, 3, k + 1, projection="mollweide")
        colormap = plt.get_cmap(cm).with_extremes(bad="magenta")
        art = ax.tripcolor(tri, np.ma.masked_invalid(values[keep]), cmap=colormap, vmin=lo,
                           vmax=hi, shading="gouraud")
        ax.set_title(f"{field}: {title}")
        ax.grid(True, alpha=0.3)
        ax.set_xticklabels([])
        fig.colorbar(art, ax=ax, orientation="horizontal", pad=0.05, fraction=0.06)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
