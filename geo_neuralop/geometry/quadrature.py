"""Every quadrature rule of the package: grids, sphere grids, triangle meshes, Voronoi cells.

One-dimensional trapezoid and periodic rules, Clenshaw-Curtis and Gauss-Legendre
latitudes, flat and geodesic triangle areas, lumped (P1 mass) vertex weights and
spherical Voronoi cell areas. Weights are in the domain's units (length^d, or
steradians on the unit sphere). Grids, sphere grids, meshes, layers and losses
all take their weights from here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from geo_neuralop.utils.checks import check_domain, per_axis

__all__ = [
    "SPHERE_GRIDS",
    "axis_nodes_and_weights",
    "clenshaw_curtis",
    "colatitude_nodes_and_weights",
    "fejer_first",
    "fejer_second",
    "grid_quadrature_weights",
    "lumped_vertex_weights",
    "sphere_quadrature_weights",
    "spherical_triangle_areas",
    "spherical_voronoi_weights",
    "triangle_areas",
]

#: Latitude rules of sphere grids.
SPHERE_GRIDS = ("equiangular", "legendre-gauss")


def axis_nodes_and_weights(
    n: int, lo: float, hi: float, periodic: bool, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """One-dimensional nodes and weights of the composite trapezoid rule.

    Parameters
    ----------
    n : int
        Number of nodes (at least 2 when not periodic, at least 1 when periodic).
    lo, hi : float
        Interval ends (physical units).
    periodic : bool
        If True the interval is a circle of length ``hi - lo``: nodes
        ``lo + i h`` with ``h = (hi - lo) / n`` (the end point ``hi`` is the same
        point as ``lo`` and is left out) and uniform weights ``h``, exact for
        trigonometric polynomials of degree below ``n``. Otherwise ``n`` nodes
        including both ends, ``h = (hi - lo) / (n - 1)``, and trapezoid weights.

    Returns
    -------
    nodes, weights : torch.Tensor, shape [n]
    """
    if periodic:
        if n < 1:
            raise ValueError(f"a periodic axis needs at least 1 node, got n={n}")
        h = (hi - lo) / n
        nodes = lo + h * torch.arange(n, dtype=dtype)
        weights = torch.full((n,), h, dtype=dtype)
    else:
        if n < 2:
            raise ValueError(f"a non-periodic axis needs at least 2 nodes, got n={n}")
        h = (hi - lo) / (n - 1)
        nodes = torch.linspace(lo, hi, n, dtype=dtype)
        weights = torch.full((n,), h, dtype=dtype)
        weights[0] *= 0.5
        weights[-1] *= 0.5
    return nodes, weights


def clenshaw_curtis(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Clenshaw-Curtis nodes and weights on [-1, 1] (Trefethen, Spectral Methods in MATLAB).

    Parameters
    ----------
    n : int
        Number of nodes, at least 2; nodes ``cos(pi k / (n - 1))`` include both ends.

    Returns
    -------
    nodes, weights : np.ndarray, shape [n]
        Nodes in decreasing order (from +1 to -1); weights sum to 2. Exact for
        polynomials of degree below ``n``.
    """
    if n < 2:
        raise ValueError(f"Clenshaw-Curtis needs at least 2 nodes, got n={n}")
    big_n = n - 1
    theta = np.pi * np.arange(n) / big_n
    nodes = np.cos(theta)
    weights = np.zeros(n)
    interior = theta[1:-1]
    v = np.ones(n - 2)
    if big_n % 2 == 0:
        weights[0] = weights[-1] = 1.0 / (big_n**2 - 1)
        k = np.arange(1, big_n // 2)
        v -= (2.0 * np.cos(2.0 * np.outer(interior, k)) / (4.0 * k**2 - 1)).sum(axis=1)
        v -= np.cos(big_n * interior) / (big_n**2 - 1)
    else:
        weights[0] = weights[-1] = 1.0 / big_n**2
        k = np.arange(1, (big_n - 1) // 2 + 1)
        v -= (2.0 * np.cos(2.0 * np.outer(interior, k)) / (4.0 * k**2 - 1)).sum(axis=1)
    weights[1:-1] = 2.0 * v / big_n
    return nodes, weights


def fejer_first(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Fejer's first rule on [-1, 1]: nodes ``cos((k + 1/2) pi / n)``, both ends left out.

    On the sphere these are the latitudes of an equiangular grid whose rows sit half a
    spacing away from the poles (e.g. 89.5, 88.5, ..., -89.5 degrees).

    Parameters
    ----------
    n : int
        Number of nodes, at least 1.

    Returns
    -------
    nodes, weights : np.ndarray, shape [n]
        Nodes in decreasing order; weights sum to 2. Exact for polynomials of
        degree below ``n``.
    """
    if n < 1:
        raise ValueError(f"Fejer's first rule needs at least 1 node, got n={n}")
    theta = np.pi * (np.arange(n) + 0.5) / n
    j = np.arange(1, n // 2 + 1)
    series = (np.cos(2.0 * np.outer(theta, j)) / (4.0 * j**2 - 1)).sum(axis=1)
    return np.cos(theta), 2.0 / n * (1.0 - 2.0 * series)


def fejer_second(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Fejer's second rule on [-1, 1]: nodes ``cos(k pi / (n + 1))``, ``k = 1 .. n``.

    These are the Clenshaw-Curtis nodes of ``n + 2`` points without the two ends: on
    the sphere, an equiangular grid with its pole rows left out (e.g. 89, ..., -89
    degrees in steps of 1).

    Parameters
    ----------
    n : int
        Number of nodes, at least 1.

    Returns
    -------
    nodes, weights : np.ndarray, shape [n]
        Nodes in decreasing order; weights sum to 2. Exact for polynomials of
        degree below ``n``.
    """
    if n < 1:
        raise ValueError(f"Fejer's second rule needs at least 1 node, got n={n}")
    theta = np.pi * np.arange(1, n + 1) / (n + 1)
    j = np.arange(1, (n + 1) // 2 + 1)
    series = (np.sin(np.outer(theta, 2 * j - 1)) / (2 * j - 1)).sum(axis=1)
    return np.cos(theta), 4.0 * np.sin(theta) / (n + 1) * series


def colatitude_nodes_and_weights(nlat: int, grid: str) -> tuple[np.ndarray, np.ndarray]:
    """Colatitudes (radians, from the north pole, increasing) and their weights in cos(theta).

    The weights integrate functions of ``cos(theta)`` over [-1, 1] (sum 2);
    multiplied by ``2 pi / nlon`` they become the solid angle of each grid point.
    """
    if grid == "legendre-gauss":
        if nlat < 1:
            raise ValueError(f"nlat must be at least 1, got {nlat}")
        x, w = np.polynomial.legendre.leggauss(nlat)
        x, w = x[::-1], w[::-1]  # north (x = cos theta = +1) first
    elif grid == "equiangular":
        x, w = clenshaw_curtis(nlat)
    else:
        raise ValueError(f"grid must be one of {SPHERE_GRIDS}, got {grid!r}")
    return np.arccos(np.clip(x, -1.0, 1.0)), w


def triangle_areas(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Areas of flat triangles in 2D or 3D.

    Parameters
    ----------
    points : np.ndarray, shape [N, 2] or [N, 3]
    faces : np.ndarray, shape [F, 3], integer

    Returns
    -------
    np.ndarray, shape [F]
        Areas in squared length units.
    """
    a, b, c = points[faces[:, 0]], points[faces[:, 1]], points[faces[:, 2]]
    if points.shape[1] == 2:
        u, v = b - a, c - a
        return 0.5 * np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0])
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


def spherical_triangle_areas(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Solid angles of geodesic triangles on the unit sphere (Van Oosterom-Strackee).

    Parameters
    ----------
    points : np.ndarray, shape [N, 3]
        Unit vectors.
    faces : np.ndarray, shape [F, 3]

    Returns
    -------
    np.ndarray, shape [F]
        Areas in steradians.
    """
    a, b, c = points[faces[:, 0]], points[faces[:, 1]], points[faces[:, 2]]
    triple = np.abs(np.einsum("ij,ij->i", a, np.cross(b, c)))
    denom = 1.0 + (a * b).sum(1) + (b * c).sum(1) + (c * a).sum(1)
    return 2.0 * np.arctan2(triple, denom)


def lumped_vertex_weights(
    points: np.ndarray, faces: np.ndarray, manifold: str = "euclidean"
) -> np.ndarray:
    """Lumped-mass vertex weights: one third of the adjacent triangle areas.

    Parameters
    ----------
    points : np.ndarray, shape [N, d]
    faces : np.ndarray, shape [F, 3]
    manifold : {"euclidean", "sphere"}
        On the sphere the triangles are geodesic and their areas are solid
        angles, so the weights sum to exactly 4 pi for a closed triangulation.

    Returns
    -------
    np.ndarray, shape [N]
        Zero for vertices that no triangle references.
    """
    if manifold == "sphere":
        areas = spherical_triangle_areas(points, faces)
    else:
        areas = triangle_areas(points, faces)
    weights = np.zeros(points.shape[0], dtype=np.float64)
    np.add.at(weights, faces.reshape(-1), np.repeat(areas / 3.0, 3))
    return weights


def spherical_voronoi_weights(points: np.ndarray) -> np.ndarray:
    """Solid angles of the spherical Voronoi cells of unit vectors (scipy), shape [N]."""
    from scipy.spatial import SphericalVoronoi

    sv = SphericalVoronoi(points, radius=1.0, center=np.zeros(3))
    sv.sort_vertices_of_regions()
    return sv.calculate_areas()


def grid_quadrature_weights(
    shape: Sequence[int],
    domain: Sequence[tuple[float, float]] | tuple[float, float] | None = None,
    periodic: bool | Sequence[bool] = False,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Tensor-product quadrature weights of a regular grid, as a grid.

    Parameters
    ----------
    shape : sequence of int
        Points per axis (1 to 3 axes).
    domain : sequence of (lo, hi) or (lo, hi), optional
        Physical extent of each axis; default the unit interval per axis.
    periodic : bool or sequence of bool
        Per axis: uniform weights ``L / n`` (periodic, no repeated end point) or
        the trapezoid rule including both ends.

    Returns
    -------
    torch.Tensor, shape [*shape]
        Weights summing to the domain's volume; the same values as
        ``regular_grid(shape, domain, periodic).weights.reshape(shape)``.
    """
    shape = tuple(int(n) for n in shape)
    ndim = len(shape)
    if ndim not in (1, 2, 3):
        raise ValueError(f"shape must have 1, 2 or 3 axes, got {shape}")
    dom = check_domain(domain, ndim)
    per = tuple(bool(p) for p in per_axis(periodic, ndim, "periodic"))
    w = torch.ones((), dtype=torch.float64)
    for n, (lo, hi), p in zip(shape, dom, per, strict=True):
        _, wk = axis_nodes_and_weights(n, lo, hi, p)
        w = w[..., None] * wk
    return w.to(dtype=dtype or torch.get_default_dtype(), device=device)


def sphere_quadrature_weights(
    nlat: int,
    nlon: int,
    grid: str = "equiangular",
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Solid angles of a latitude-longitude grid of the unit sphere, as a grid.

    Parameters
    ----------
    nlat, nlon : int
        Latitude rings (north to south) and points per ring.
    grid : {"equiangular", "legendre-gauss"}

    Returns
    -------
    torch.Tensor, shape [nlat, nlon]
        Steradians summing to ``4 pi``; equal to
        ``sphere_grid(nlat, nlon, grid).weights.reshape(nlat, nlon)``.
    """
    if grid not in SPHERE_GRIDS:
        raise ValueError(f"sphere grid must be one of {SPHERE_GRIDS}, got {grid!r}")
    _, wlat = colatitude_nodes_and_weights(int(nlat), grid)
    w = torch.as_tensor(wlat * 2.0 * math.pi / nlon, dtype=torch.float64)
    return w[:, None].expand(int(nlat), int(nlon)).to(
        dtype=dtype or torch.get_default_dtype(), device=device
    )
