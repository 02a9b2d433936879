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


def perforated_rectangle_mesh(
    h: float,
    domain: Sequence[tuple[float, float]] = ((0.0, 2.2), (0.0, 0.41)),
    holes: Sequence[tuple[float, float, float]] = ((0.2, 0.2, 0.05),),
    jitter: float = 0.2,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> PointCloud:
    """A Delaunay triangle mesh of a rectangle with circular holes (default: the DFG channel).

    Vertices: a jittered grid of spacing ``h`` kept away from the holes, points on
    the rectangle's edges, and ``ceil(2 pi r / h)`` points on each hole's circle.
    Triangles whose centroid falls inside a hole are removed, so each hole is a
    polygonal boundary of the mesh. Meant for pictures, tests and demos; the
    cylinder-flow solver meshes its own, graded domains.

    Parameters
    ----------
    h : float
        Target edge length (physical units).
    domain : ((x0, x1), (y0, y1))
    holes : sequence of (cx, cy, radius)
    jitter : float
        Interior vertex displacement in units of ``h``, below 0.35.
    seed : int
    dtype : torch.dtype, optional

    Returns
    -------
    PointCloud
        2D points, faces and lumped weights (summing to the area of the rectangle
        minus the polygonal holes).
    """
    from scipy.spatial import Delaunay

    (x0, x1), (y0, y1) = domain
    if not h > 0 or h > min(x1 - x0, y1 - y0) / 2:
        raise ValueError(f"h must be positive and below half the domain's width, got {h}")
    if not 0.0 <= jitter < 0.35:
        raise ValueError(f"jitter must be in [0, 0.35), got {jitter}")
    for cx, cy, r in holes:
        if not (x0 < cx - r and cx + r < x1 and y0 < cy - r and cy + r < y1 and r > 0):
            raise ValueError(f"hole ({cx}, {cy}, {r}) must lie inside the domain")
    rng = np.random.default_rng(seed)
    nx, ny = int(round((x1 - x0) / h)) + 1, int(round((y1 - y0) / h)) + 1
    xs, ys = np.linspace(x0, x1, nx), np.linspace(y0, y1, ny)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    interior = (gx > x0) & (gx < x1) & (gy > y0) & (gy < y1)
    gx = gx + np.where(interior, rng.uniform(-jitter, jitter, gx.shape) * (xs[1] - xs[0]), 0)
    gy = gy + np.where(interior, rng.uniform(-jitter, jitter, gy.shape) * (ys[1] - ys[0]), 0)
    points = np.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    keep = np.ones(len(points), dtype=bool)
    circles = []
    for cx, cy, r in holes:
        keep &= np.hypot(points[:, 0] - cx, points[:, 1] - cy) > r + 0.6 * h
        m = max(8, int(np.ceil(2 * np.pi * r / h)))
        angle = 2 * np.pi * np.arange(m) / m
        circles.append(np.stack([cx + r * np.cos(angle), cy + r * np.sin(angle)], 1))
    points = np.concatenate([points[keep], *circles])
    faces = Delaunay(points).simplices
    centroids = points[faces].mean(axis=1)
    inside = np.zeros(len(faces), dtype=bool)
    for cx, cy, r in holes:
        inside |= np.hypot(centroids[:, 0] - cx, centroids[:, 1] - cy) < r
    return from_mesh((points, faces[~inside]), remove_unreferenced=True, dtype=dtype)


def grid_faces(shape: Sequence[int]) -> torch.Tensor:
    """Two triangles per cell of a 2D grid whose points are numbered ``i * ny + j``, ``[F, 3]``."""
    nx, ny = (int(n) for n in shape)
    index = torch.arange(nx * ny).reshape(nx, ny)
    a, b = index[:-1, :-1].reshape(-1), index[1:, :-1].reshape(-1)
    c, d = index[1:, 1:].reshape(-1), index[:-1, 1:].reshape(-1)
    return torch.cat([torch.stack([a, b, c], 1), torch.stack([a, c, d], 1)])


def sphere_grid_faces(nlat: int, nlon: int) -> np.ndarray:
    """Triangles of a latitude-longitude grid, closed across the longitude seam, ``[F, 3]``."""
    i, j = np.meshgrid(np.arange(nlat - 1), np.arange(nlon), indexing="ij")
    a = i * nlon + j
    b = i * nlon + (j + 1) % nlon
    c = (i + 1) * nlon + (j + 1) % nlon
    d = (i + 1) * nlon + j
    return np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3),
                           np.stack([a, c, d], -1).reshape(-1, 3)])


def with_grid_faces(cloud: PointCloud) -> PointCloud:
    """The cloud, triangulated when it is a 2D regular grid without faces (for renderers)."""
    shape = getattr(cloud, "grid_shape", None)
    if (shape is None or cloud.manifold != "euclidean" or len(shape) != 2
            or getattr(cloud, "faces", None) is not None or min(shape) < 2):
        return cloud
    return PointCloud(cloud.pos, cloud.weights, manifold=cloud.manifold, faces=grid_faces(shape),
                      grid_shape=tuple(shape), domain=cloud.domain, periodic=cloud.periodic)
