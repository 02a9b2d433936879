"""``PointCloud``: points with quadrature weights as a PyTorch Geometric graph.

A point cloud is the discretization every other part of geo_neuralop works on: a
set of points ``pos`` with quadrature weights ``weights`` such that
``sum_i f(pos_i) * weights_i`` approximates the integral of ``f`` over the domain
(a planar region, a surface in R^3, or the unit sphere). Triangles (``faces``)
are optional; fields sampled at the points are stored as extra attributes whose
first dimension is the number of points.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from geo_neuralop.geometry.grid_spec import GridSpec, SphereGridSpec

MANIFOLDS = ("euclidean", "sphere")

#: Largest allowed deviation of a sphere point from unit norm.
SPHERE_TOLERANCE = 1e-6

#: A triangle is degenerate when twice its area is below this fraction of its
#: longest edge squared (a scale-free measure of flatness).
DEGENERATE_TRIANGLE_TOLERANCE = 1e-12

#: Attributes that describe the cloud rather than a field sampled on it.
STRUCTURAL_KEYS = frozenset({"pos", "weights", "faces", "manifold"})


class PointCloud(Data):
    """Points with quadrature weights, optionally triangulated, as a PyG ``Data``.

    Parameters
    ----------
    pos : torch.Tensor, shape [N, d]
        Point coordinates, floating point. ``d`` is 1, 2 or 3 for
        ``manifold="euclidean"``; sphere points are unit vectors in R^3.
    weights : torch.Tensor, shape [N]
        Positive quadrature weights (units of length^dim of the domain, e.g.
        area for a surface; steradians on the unit sphere).
    manifold : {"euclidean", "sphere"}
        Geometry in which distances are measured.
    faces : torch.Tensor, shape [F, 3], optional
        Triangle vertex indices (long), each in ``[0, N)``.
    allow_duplicates : bool
        Permit coincident points. Only structured grids need this (the pole rows
        of an equiangular sphere grid); it is not stored on the cloud.
    **fields : torch.Tensor
        Fields sampled at the points, each with first dimension ``N`` (for
        example ``u=[N, 2]`` or ``p=[N]``). Other metadata (grid shape, domain)
        may be passed as plain Python values.

    Raises
    ------
    ValueError
        Naming the first offending index for NaN/inf positions, non-positive or
        non-finite weights, faces indexing missing vertices, degenerate
        triangles, duplicate points and sphere points off the unit sphere; and
        for shape mismatches and unknown manifolds.
    TypeError
        For non-tensor ``pos``/``weights``/``faces`` or integer positions.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.geometry import PointCloud
    >>> pos = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> cloud = PointCloud(pos, torch.full((3,), 1 / 6), faces=torch.tensor([[0, 1, 2]]))
    >>> float(cloud.weights.sum())
    0.5

    A batch of clouds of different sizes collates with PyG:

    >>> from torch_geometric.data import Batch
    >>> batch = Batch.from_data_list([cloud, cloud])
    >>> batch.faces.tolist()
    [[0, 1, 2], [3, 4, 5]]
    """

    def __init__(
        self,
        pos: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
        manifold: str | None = None,
        faces: torch.Tensor | None = None,
        allow_duplicates: bool = False,
        **fields: Any,
    ) -> None:
        # PyG builds empty instances while collating and separating batches; only
        # a cloud built with positions is validated.
        super().__init__()
        if pos is None:
            if weights is not None or faces is not None:
                raise ValueError("pos is required when weights or faces are given")
            for key, value in fields.items():
                setattr(self, key, value)
            if manifold is not None:
                self.manifold = manifold
            return
        if manifold is None:
            manifold = "euclidean"
        pos, weights, faces = _validate_structure(pos, weights, manifold, faces, allow_duplicates)
        self.pos = pos
        self.weights = weights
        self.manifold = manifold
        if faces is not None:
            self.faces = faces
        n = pos.shape[0]
        for key, value in fields.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] != n:
                raise ValueError(
                    f"field {key!r} has {value.shape[0]} rows but the cloud has {n} points"
                )
            setattr(self, key, value)

    # --- PyG batching -----------------------------------------------------------------
    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "faces":
            return self.num_nodes
        return super().__inc__(key, value, *args, **kwargs)

    def __cat_dim__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "faces":
            return 0
        return super().__cat_dim__(key, value, *args, **kwargs)

    # --- convenience ------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Number of coordinates per point (``pos.shape[1]``)."""
        return int(self.pos.shape[1])

    @property
    def field_names(self) -> list[str]:
        """Names of the per-point tensor attributes other than pos and weights."""
        n = self.num_nodes
        names = []
        for key in self.keys():
            if key in STRUCTURAL_KEYS or key == "batch" or key == "ptr":
                continue
            value = self[key]
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == n:
                names.append(key)
        return sorted(names)

    @property
    def grid_spec(self) -> GridSpec | SphereGridSpec | None:
        """The grid of a cloud made by ``regular_grid`` or ``sphere_grid`` (None otherwise, and
        for batches of several clouds)."""
        shape = getattr(self, "grid_shape", None)
        if shape is None or not all(isinstance(n, int) for n in shape):
            return None
        if self.manifold == "sphere":
            grid = getattr(self, "grid", None)
            return None if grid is None else SphereGridSpec(*tuple(shape), grid)
        domain, periodic = getattr(self, "domain", None), getattr(self, "periodic", None)
        if domain is None or periodic is None:
            return None
        return GridSpec(tuple(shape), domain, periodic)

    def integrate(self, values: torch.Tensor) -> torch.Tensor:
        """Quadrature integral of point values over the cloud.

        Parameters
        ----------
        values : torch.Tensor, shape [N] or [N, C]
            Values at the points.

        Returns
        -------
        torch.Tensor, shape [] or [C]
            ``sum_i weights_i * values_i``.
        """
        if values.shape[0] != self.num_nodes:
            raise ValueError(
                f"values has {values.shape[0]} rows but the cloud has {self.num_nodes} points"
            )
        w = self.weights.to(values.dtype)
        if values.dim() == 1:
            return (w * values).sum()
        return torch.einsum("n,n...->...", w, values)

    def validate(self, allow_duplicates: bool = False) -> PointCloud:
        """Run the construction checks again (after editing attributes in place)."""
        _validate_structure(
            self.pos, self.weights, self.manifold, getattr(self, "faces", None), allow_duplicates
        )
        return self


def _validate_structure(
    pos: Any,
    weights: Any,
    manifold: Any,
    faces: Any,
    allow_duplicates: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    if not isinstance(pos, torch.Tensor):
        raise TypeError(f"pos must be a torch.Tensor, got {type(pos).__name__}")
    if not torch.is_floating_point(pos):
        raise TypeError(f"pos must be floating point, got dtype {pos.dtype}")
    if pos.dim() != 2:
        raise ValueError(f"pos must have shape [N, d], got shape {tuple(pos.shape)}")
    n, d = pos.shape
    if n == 0:
        raise ValueError("pos is empty: a point cloud needs at least one point")
    if manifold not in MANIFOLDS:
        raise ValueError(f"manifold must be one of {MANIFOLDS}, got {manifold!r}")
    if manifold == "euclidean" and d not in (1, 2, 3):
        raise ValueError(f"euclidean point clouds have 1, 2 or 3 coordinates, got {d}")
    if manifold == "sphere" and d != 3:
        raise ValueError(f"sphere points must be unit vectors in R^3, got {d} coordinates")

    pos_np = pos.detach().cpu().numpy()
    bad = ~np.isfinite(pos_np).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"pos has a NaN or infinite coordinate at point index {i}: {pos_np[i]}")

    if weights is None:
        raise ValueError("weights is required: quadrature weights of shape [N]")
    if not isinstance(weights, torch.Tensor):
        raise TypeError(f"weights must be a torch.Tensor, got {type(weights).__name__}")
    if weights.shape != (n,):
        raise ValueError(f"weights must have shape [{n}], got shape {tuple(weights.shape)}")
    if not torch.is_floating_point(weights):
        weights = weights.to(pos.dtype)
    w_np = weights.detach().cpu().numpy()
    bad = ~(np.isfinite(w_np) & (w_np > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"weights must be positive and finite; weights[{i}] = {w_np[i]} at point index {i}"
        )

    if manifold == "sphere":
        off = np.abs(np.linalg.norm(pos_np, axis=1) - 1.0)
        bad = off > SPHERE_TOLERANCE
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"sphere point index {i} is off the unit sphere: |pos| - 1 = {off[i]:.3e} "
                f"(tolerance {SPHERE_TOLERANCE:g})"
            )

    if not allow_duplicates:
        _check_duplicates(pos_np)

    if faces is not None:
        faces = validate_faces(faces, pos_np)
    return pos, weights, faces


def _check_duplicates(pos_np: np.ndarray) -> None:
    _, first, counts = np.unique(pos_np, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        # The first point (in input order) that repeats an earlier point.
        seen = np.zeros(pos_np.shape[0], dtype=bool)
        seen[first] = True
        i = int(np.argmax(~seen))
        j = int(np.flatnonzero((pos_np == pos_np[i]).all(axis=1))[0])
        raise ValueError(f"duplicate points: point index {i} repeats point index {j} ({pos_np[i]})")


def validate_faces(faces: Any, pos_np: np.ndarray) -> torch.Tensor:
    """``faces`` as a long tensor ``[F, 3]``, checked against the points ``pos_np [N, d]``.

    Raises
    ------
    TypeError
        For faces that are not an integer tensor.
    ValueError
        For a wrong shape, an index of a missing vertex, or a degenerate (zero-area)
        triangle (naming the face index and its vertices).
    """
    if not isinstance(faces, torch.Tensor):
        raise TypeError(f"faces must be a torch.Tensor, got {type(faces).__name__}")
    if torch.is_floating_point(faces) or faces.dtype == torch.bool:
        raise TypeError(f"faces must be an integer tensor, got dtype {faces.dtype}")
    faces = faces.long()
    if faces.dim() != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape [F, 3], got shape {tuple(faces.shape)}")
    f_np = faces.detach().cpu().numpy()
    n = pos_np.shape[0]
    bad = ((f_np < 0) | (f_np >= n)).any(axis=1)
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(
            f"faces index missing vertices: face index {k} = {f_np[k].tolist()} "
            f"but the cloud has {n} points"
        )
    if f_np.shape[0] == 0:
        return faces
    p = pos_np if pos_np.shape[1] == 3 else np.pad(pos_np, ((0, 0), (0, 3 - pos_np.shape[1])))
    a, b, c = p[f_np[:, 0]], p[f_np[:, 1]], p[f_np[:, 2]]
    twice_area = np.linalg.norm(np.cross(b - a, c - a), axis=1)
    longest = np.max(
        np.stack([((b - a) ** 2).sum(1), ((c - b) ** 2).sum(1), ((a - c) ** 2).sum(1)]), axis=0
    )
    bad = twice_area <= DEGENERATE_TRIANGLE_TOLERANCE * longest
    bad |= longest == 0
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(
            f"degenerate (zero-area) triangle: face index {k} = {f_np[k].tolist()}"
        )
    return faces
