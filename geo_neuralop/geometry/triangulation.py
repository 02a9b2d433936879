"""Irregular triangle meshes of rectangles, for tests, convergence studies and demos."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from geo_neuralop.geometry.mesh_conversion import from_mesh
from geo_neuralop.geometry.point_cloud import PointCloud


def jittered_rectangle_mesh(
    shape: tuple[int, int],
    domain: Sequence[tuple[float, float]] = ((0.0, 1.0), (0.0, 1.0)),
    jitter: float = 0.25,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> PointCloud:
    """An irregular triangulation of a rectangle with lumped vertex weights.

    A ``shape[0] x shape[1]`` vertex grid whose interior vertices are moved by a
    uniform random offset of up to ``jitter`` cell widths per axis (boundary
    vertices slide along their edge, corners stay), each cell split along a
    randomly chosen diagonal. The mesh is unstructured in the sense that
    matters for quadrature and convolution tests (no two cells alike), yet
    every triangle stays valid for ``jitter < 0.5`` and the mesh width scales
    as ``1 / shape``, so refinement studies are clean.

    Parameters
    ----------
    shape : (int, int)
        Vertices along x and y (each at least 2).
    domain : ((x0, x1), (y0, y1))
        The rectangle, physical units.
    jitter : float
        Maximal vertex displacement in cell widths, in ``[0, 0.5)``.
    seed : int
        Seed of the random offsets and diagonals.
    dtype : torch.dtype, optional

    Returns
    -------
    PointCloud
        2D points, faces, lumped weights (summing to the rectangle's area).
    """
    nx, ny = shape
    if nx < 2 or ny < 2:
        raise ValueError(f"shape must have at least 2 vertices per axis, got {shape}")
    if not 0.0 <= jitter < 0.5:
        raise ValueError(f"jitter must be in [0, 0.5), got {jitter}")
    (x0, x1), (y0, y1) = domain
    rng = np.random.default_rng(seed)
    hx, hy = (x1 - x0) / (nx - 1), (y1 - y0) / (ny - 1)
    ix, iy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    dx = rng.uniform(-jitter, jitter, ix.shape)
    dy = rng.uniform(-jitter, jitter, iy.shape)
    dx[(ix == 0) | (ix == nx - 1)] = 0.0
    dy[(iy == 0) | (iy == ny - 1)] = 0.0
    x = x0 + (ix + dx) * hx
    y = y0 + (iy + dy) * hy
    points = np.stack([x.reshape(-1), y.reshape(-1)], axis=1)

    vid = np.arange(nx * ny).reshape(nx, ny)
    a, b = vid[:-1, :-1].reshape(-1), vid[1:, :-1].reshape(-1)
    c, d = vid[1:, 1:].reshape(-1), vid[:-1, 1:].reshape(-1)
    diag = rng.random(a.shape[0]) < 0.5
    tri1 = np.where(diag[:, None], np.stack([a, b, c], 1), np.stack([a, b, d], 1))
    tri2 = np.where(diag[:, None], np.stack([a, c, d], 1), np.stack([b, c, d], 1))
    faces = np.concatenate([tri1, tri2])
    return from_mesh((points, faces), dtype=dtype)
