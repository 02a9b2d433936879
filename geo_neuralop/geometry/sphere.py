"""Quadrature rules on the unit sphere.

- :func:`sphere_grid`: tensor-product latitude/longitude grids ("equiangular" with
  Clenshaw-Curtis weights in cos(colatitude), "legendre-gauss") with the point
  ordering and weights of torch-harmonics (scaled to sum to 4 pi);
- :func:`icosphere`: subdivided icosahedra with lumped geodesic-triangle weights;
- :func:`fibonacci_sphere` and :func:`from_sphere_points`: arbitrary points with
  spherical Voronoi cell areas as weights.

Weights are solid angles (steradians) and sum to 4 pi.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from geo_neuralop.geometry.grid_spec import SphereGridSpec
from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.geometry.quadrature import lumped_vertex_weights, spherical_voronoi_weights
from geo_neuralop.utils.checks import is_int


def sphere_grid(
    nlat: int, nlon: int, grid: str = "equiangular", dtype: torch.dtype | None = None
) -> PointCloud:
    """A latitude-longitude grid on the unit sphere, ordered as torch-harmonics orders it.

    Parameters
    ----------
    nlat, nlon : int
        Number of latitude rings and of points per ring.
    grid : {"equiangular", "legendre-gauss"}
        "equiangular": colatitudes ``pi k / (nlat - 1)`` including both poles,
        Clenshaw-Curtis weights. "legendre-gauss": Gauss nodes in
        ``cos(colatitude)``, exact for spherical harmonics products of total
        degree below ``2 nlat`` (and ``nlon``) in each direction.
    dtype : torch.dtype, optional

    Returns
    -------
    PointCloud
        ``pos [nlat * nlon, 3]`` in C order of ``(lat, lon)``: north to south,
        longitudes ``2 pi j / nlon``. ``weights`` in steradians (sum 4 pi),
        torch-harmonics' latitude weights times ``2 pi / nlon``. The equiangular
        grid repeats the pole ``nlon`` times (each copy with its share of the
        pole weight), as torch-harmonics does. Metadata: ``grid_shape``, ``grid``.
    """
    spec = SphereGridSpec(nlat, nlon, grid)
    dtype = dtype or torch.get_default_dtype()
    return PointCloud(
        torch.as_tensor(spec.unit_vectors().reshape(-1, 3), dtype=dtype),
        spec.weights(dtype=torch.float64).reshape(-1).to(dtype),
        manifold="sphere",
        allow_duplicates=grid == "equiangular",
        grid_shape=spec.shape,
        grid=spec.grid,
    )


def _outward_hull_faces(points: np.ndarray) -> np.ndarray:
    from scipy.spatial import ConvexHull

    faces = ConvexHull(points).simplices.astype(np.int64)
    a, b, c = points[faces[:, 0]], points[faces[:, 1]], points[faces[:, 2]]
    flip = np.einsum("ij,ij->i", a, np.cross(b - a, c - a)) < 0
    faces[flip] = faces[flip][:, [0, 2, 1]]
    return faces


def icosphere(subdivisions: int = 3, dtype: torch.dtype | None = None) -> PointCloud:
    """A subdivided icosahedron projected onto the unit sphere.

    Parameters
    ----------
    subdivisions : int
        Number of 4-to-1 subdivisions (``10 * 4**s + 2`` vertices).
    dtype : torch.dtype, optional

    Returns
    -------
    PointCloud
        Vertices, outward-oriented ``faces``, and lumped weights (one third of
        the solid angle of each adjacent geodesic triangle; sum exactly 4 pi,
        second-order accurate).
    """
    import trimesh

    if not (is_int(subdivisions) or isinstance(subdivisions, bool)) or subdivisions < 0:
        raise ValueError(f"subdivisions must be a non-negative int, got {subdivisions!r}")
    subdivisions = int(subdivisions)
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    points = np.asarray(mesh.vertices, dtype=np.float64)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    weights = lumped_vertex_weights(points, faces, manifold="sphere")
    dtype = dtype or torch.get_default_dtype()
    return PointCloud(
        torch.as_tensor(points, dtype=dtype),
        torch.as_tensor(weights, dtype=dtype),
        manifold="sphere",
        faces=torch.as_tensor(faces),
    )


def from_sphere_points(
    points: np.ndarray | torch.Tensor,
    triangulate: bool = True,
    dtype: torch.dtype | None = None,
    **fields: torch.Tensor,
) -> PointCloud:
    """Arbitrary points on the unit sphere with spherical Voronoi weights.

    Parameters
    ----------
    points : array, shape [N, 3]
        Unit vectors (at least 4, not all on one great circle).
    triangulate : bool
        Also store the spherical Delaunay triangulation (convex hull) as
        ``faces``, for rendering and mesh export.
    dtype : torch.dtype, optional
    **fields : torch.Tensor
        Fields sampled at the points.

    Returns
    -------
    PointCloud
        Weights are Voronoi cell areas in steradians (sum 4 pi).
    """
    pts = points.detach().cpu().double().numpy() if isinstance(points, torch.Tensor) else (
        np.asarray(points, dtype=np.float64)
    )
    if pts.ndim != 2 or pts.shape[1] != 3 or pts.shape[0] < 4:
        raise ValueError(f"points must have shape [N >= 4, 3], got {pts.shape}")
    # Validate first, so a bad point gets its index named before scipy fails on it.
    dtype = dtype or torch.get_default_dtype()
    PointCloud(torch.as_tensor(pts), torch.ones(len(pts), dtype=torch.float64), "sphere")
    singular = np.linalg.svd(pts, compute_uv=False)
    if singular[-1] <= 1e-9 * singular[0]:
        _, _, vt = np.linalg.svd(pts)
        raise ValueError(
            f"points all lie on one great circle (the plane through the centre with normal "
            f"{np.round(vt[-1], 6).tolist()}): they do not cover the sphere, so they have no "
            f"spherical Voronoi cells; give points spread over the sphere (e.g. "
            f"fibonacci_sphere, icosphere or sphere_grid)")
    weights = spherical_voronoi_weights(pts)
    faces = torch.as_tensor(_outward_hull_faces(pts)) if triangulate else None
    return PointCloud(
        torch.as_tensor(pts, dtype=dtype),
        torch.as_tensor(weights, dtype=dtype),
        manifold="sphere",
        faces=faces,
        **fields,
    )


def fibonacci_sphere(n: int, dtype: torch.dtype | None = None) -> PointCloud:
    """``n`` nearly uniform points on the golden-angle spiral, with Voronoi weights.

    Parameters
    ----------
    n : int
        Number of points (at least 4).
    dtype : torch.dtype, optional

    Returns
    -------
    PointCloud
        Points ``z_i = 1 - (2 i + 1) / n``, longitude ``i * pi (3 - sqrt 5)``;
        spherical Voronoi weights (sum 4 pi) and Delaunay ``faces``.
    """
    if not is_int(n) or n < 4:
        raise ValueError(f"n must be an int of at least 4, got {n!r}")
    n = int(n)
    i = np.arange(n, dtype=np.float64)
    z = 1.0 - (2.0 * i + 1.0) / n
    r = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
    lon = i * math.pi * (3.0 - math.sqrt(5.0))
    pts = np.stack([r * np.cos(lon), r * np.sin(lon), z], axis=1)
    return from_sphere_points(pts, dtype=dtype)
