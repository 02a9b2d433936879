"""Point clouds as PyVista surfaces, with fields checked and attached as point data."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.geometry.triangulation import sphere_grid_faces


def as_numpy(values, name: str, n: int) -> np.ndarray:
    """A per-point field as a float64 array ``[N]``, with a clear error for a wrong length."""
    arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(
        values)
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"field {name!r} must have shape [N] (one component), got {arr.shape}; "
                         "pick a component or pass its magnitude")
    if arr.shape[0] != n:
        raise ValueError(f"field {name!r} has {arr.shape[0]} values but the cloud has {n} points")
    return arr


def warn_nan(arr: np.ndarray, name: str, nan_color: str) -> None:
    count = int(np.isnan(arr).sum())
    if count:
        warnings.warn(f"field {name!r} has {count} NaN value(s) of {arr.size}; they are drawn "
                      f"in {nan_color}", RuntimeWarning, stacklevel=3)


def cloud_surface(cloud: PointCloud):
    """A ``pyvista.PolyData`` of the cloud: its faces, grid cells, or a convex hull (sphere).

    Planar clouds are placed in the plane z = 0. Sphere clouds without faces are
    triangulated: lat/lon grids by their grid cells, other points by their convex
    hull (the spherical Delaunay triangulation).
    """
    import pyvista as pv

    points = cloud.pos.detach().cpu().double().numpy()
    if points.shape[1] < 3:
        points = np.pad(points, ((0, 0), (0, 3 - points.shape[1])))
    faces = getattr(cloud, "faces", None)
    if faces is not None:
        faces = faces.cpu().numpy()
    elif cloud.manifold == "sphere" and getattr(cloud, "grid_shape", None) is not None:
        faces = sphere_grid_faces(*cloud.grid_shape)
    elif cloud.manifold == "sphere":
        from scipy.spatial import ConvexHull

        faces = ConvexHull(points).simplices
    if faces is None:
        return pv.PolyData(points)
    cells = np.hstack([np.full((len(faces), 1), 3), faces]).reshape(-1)
    return pv.PolyData(points, cells)
