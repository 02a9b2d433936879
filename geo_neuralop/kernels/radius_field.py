"""``RadiusField``: a kernel support radius that varies with position but not with the mesh.

Graded meshes (the DFG cylinder channel: cells 15x finer at the cylinder than at the
outlet) defeat a fixed physical radius: one small enough to stay local near the
cylinder leaves the coarse corners with too few neighbours to span two
directions, and one large enough for the corners puts thousands of neighbours near
the cylinder. A radius *field* ``r(x)`` fixes this while keeping the layer a
discretization of one continuous operator,

    (K v)(x) = sum_k theta_k  int psi_k((y - x) / r(x)) v(y) dy / int |psi_k((y - x) / r(x))| dy,

whose support follows the resolution the data is given at *by design* (the
field is fixed once, e.g. from a reference mesh of the family, and stored with the
model), not the resolution of the mesh a sample happens to come on. Refining the
mesh under a fixed field converges to that operator; a radius set per mesh (``k``
nearest neighbours, a multiple of the local edge length) would instead change
the operator with every mesh and shrink it to a pointwise map under refinement.
Kernels with a radius field are normalized per point ("nodal"): each stencil is
an average over its own support, so the operator does not depend on how many
points of the mesh sit where.

The field is piecewise (multi)linear on a regular grid over a box and constant
beyond it, so it is cheap to evaluate at millions of points and serializes to
plain lists (``to_dict`` / ``from_dict``) for model configs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from scipy.spatial import cKDTree

from geo_neuralop.utils.cache import fingerprint
from geo_neuralop.utils.checks import check_positive_number

__all__ = ["RadiusField"]


class RadiusField:
    """A positive support radius ``r(x)`` given on a regular grid over a box.

    Parameters
    ----------
    domain : sequence of (lo, hi)
        The box, one pair per coordinate axis (physical units).
    values : array of shape [n_1, ..., n_d]
        Radii at the grid nodes (``n_a >= 2`` nodes per axis, both ends
        included), physical units; positive and finite.

    Notes
    -----
    Evaluation interpolates (multi)linearly between the nodes and clamps
    positions outside the box to it. Equality and hashing follow the box and the
    values, so layers can key their kernel caches on a field.

    Examples
    --------
    >>> import numpy as np
    >>> field = RadiusField([(0.0, 2.0), (0.0, 1.0)], [[0.1, 0.1], [0.3, 0.3]])
    >>> field(np.array([[1.0, 0.5], [3.0, 0.0]]))
    array([0.2, 0.3])
    """

    def __init__(self, domain: Sequence[Sequence[float]], values: Any) -> None:
        grid = np.array(values, dtype=np.float64)
        if grid.ndim < 1 or grid.ndim > 3 or any(n < 2 for n in grid.shape):
            raise ValueError(f"values must be a grid of 1 to 3 axes with at least 2 nodes each, "
                             f"got shape {grid.shape}")
        if not np.all(np.isfinite(grid)) or np.any(grid <= 0):
            raise ValueError(f"values must be positive and finite, got minimum {grid.min()!r}")
        box = [tuple(float(v) for v in pair) for pair in domain]
        if len(box) != grid.ndim or any(len(p) != 2 or not p[0] < p[1] for p in box):
            raise ValueError(f"domain must hold {grid.ndim} pairs (lo, hi) with lo < hi, got "
                             f"{domain!r}")
        self.domain: list[tuple[float, float]] = box  # type: ignore[assignment]
        self.values = grid
        self._key = fingerprint(np.array(box), grid)

    @property
    def n_dim(self) -> int:
        """Number of coordinate axes."""
        return self.values.ndim

    @property
    def min(self) -> float:
        """The smallest radius."""
        return float(self.values.min())

    @property
    def max(self) -> float:
        """The largest radius."""
        return float(self.values.max())

    def __call__(self, pos: np.ndarray | torch.Tensor) -> np.ndarray:
        """Radii at the positions ``pos [N, d]`` (physical units), shape [N], float64."""
        if isinstance(pos, torch.Tensor):
            pos = pos.detach().cpu().double().numpy()
        pos = np.asarray(pos, dtype=np.float64)
        if pos.ndim != 2 or pos.shape[1] != self.n_dim:
            raise ValueError(f"pos must have shape [N, {self.n_dim}], got {pos.shape}")
        index, frac = [], []
        for axis, (lo, hi) in enumerate(self.domain):
            n = self.values.shape[axis]
            t = np.clip((pos[:, axis] - lo) / (hi - lo), 0.0, 1.0) * (n - 1)
            i = np.minimum(np.floor(t).astype(np.int64), n - 2)
            index.append(i)
            frac.append(t - i)
        out = np.zeros(pos.shape[0])
        for corner in np.ndindex(*([2] * self.n_dim)):
            weight = np.ones(pos.shape[0])
            node = []
            for axis, bit in enumerate(corner):
                weight *= frac[axis] if bit else 1.0 - frac[axis]
                node.append(index[axis] + bit)
            out += weight * self.values[tuple(node)]
        return out

    @classmethod
    def from_cloud(cls, cloud: Any, cells: float = 2.5, shape: Sequence[int] | None = None,
                   neighbours: int = 6, margin: float = 0.05) -> RadiusField:
        """A field following the resolution of a reference point cloud or mesh.

        ``r(x) = cells * h(x)`` with ``h`` the local point spacing of ``cloud``
        (the mean distance to its ``neighbours`` nearest points), sampled at the
        nodes of a grid over the cloud's bounding box (each node takes the mean
        spacing of the reference points within half a grid cell of it, or the
        nearest point's). Build it once, from one mesh of the family the model
        will see, and keep it with the model: meshes seen later (finer, coarser,
        other seeds) then discretize the same operator.

        Parameters
        ----------
        cloud : PointCloud or array of shape [N, d]
        cells : float
            Radius in units of the local spacing (2.5 gives about 20 neighbours
            in 2D, enough to span two directions at any point).
        shape : sequence of int, optional
            Grid nodes per axis (default: 128 along the longest side, in
            proportion along the others, at least 4); fine enough to follow the
            grading.
        neighbours : int
            Points averaged for the local spacing.
        margin : float
            The grid's box is the bounding box enlarged by this fraction per side.
        """
        pos = cloud.pos if hasattr(cloud, "pos") else cloud
        if isinstance(pos, torch.Tensor):
            pos = pos.detach().cpu().double().numpy()
        pos = np.asarray(pos, dtype=np.float64)
        if pos.ndim != 2 or pos.shape[0] <= neighbours:
            raise ValueError(f"cloud must hold more than {neighbours} points [N, d], got shape "
                             f"{pos.shape}")
        cells = check_positive_number("cells", cells)
        lo, hi = pos.min(0), pos.max(0)
        pad = (hi - lo) * margin
        lo, hi = lo - pad, hi + pad
        if shape is None:
            longest = float((hi - lo).max())
            shape = [max(4, int(round(128 * (b - a) / longest))) for a, b in zip(lo, hi,
                                                                                strict=True)]
        shape = [int(n) for n in shape]
        if len(shape) != pos.shape[1] or any(n < 2 for n in shape):
            raise ValueError(f"shape must give at least 2 nodes for each of the {pos.shape[1]} "
                             f"axes, got {shape}")
        tree = cKDTree(pos)
        distance, _ = tree.query(pos, k=neighbours + 1)
        spacing = distance[:, 1:].mean(axis=1)  # [N]
        axes = [np.linspace(a, b, n) for a, b, n in zip(lo, hi, shape, strict=True)]
        nodes = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(shape))
        cell = max((b - a) / (n - 1) for a, b, n in zip(lo, hi, shape, strict=True))
        near = tree.query_ball_point(nodes, 0.5 * cell)
        _, nearest = tree.query(nodes)
        local = np.array([spacing[idx].mean() if idx else spacing[j]
                          for idx, j in zip(near, nearest, strict=True)])
        return cls([(float(a), float(b)) for a, b in zip(lo, hi, strict=True)],
                   (cells * local).reshape(shape))

    def to_dict(self) -> dict:
        """Plain values (lists), e.g. for a model config; :meth:`from_dict` rebuilds the field."""
        return {"domain": [list(p) for p in self.domain], "values": self.values.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RadiusField:
        """The field of :meth:`to_dict`'s output."""
        if not isinstance(data, Mapping) or set(data) != {"domain", "values"}:
            raise ValueError(f"a radius field is a mapping with keys 'domain' and 'values', got "
                             f"{data!r:.200}")
        return cls(data["domain"], data["values"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RadiusField) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return (f"RadiusField(domain={self.domain}, shape={self.values.shape}, "
                f"radius {self.min:.3g}..{self.max:.3g})")
