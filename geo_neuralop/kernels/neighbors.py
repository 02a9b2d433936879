"""Radius neighbour search with scipy's cKDTree: Euclidean, periodic boxes and the sphere.

No dense N x M distance matrix is formed: the tree returns only the pairs within
the radius, so time and memory grow with the number of pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree


def radius_pairs(
    src: np.ndarray,
    dst: np.ndarray,
    radius: float,
    manifold: str = "euclidean",
    box: Sequence[tuple[float, float] | None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """All (dst, src) pairs within ``radius``, sorted by dst then src.

    Parameters
    ----------
    src : np.ndarray, shape [N_src, d]
    dst : np.ndarray, shape [N_dst, d]
    radius : float
        Euclidean distance, or geodesic angle in radians on the unit sphere.
    manifold : {"euclidean", "sphere"}
        On the sphere the search uses the chordal distance ``2 sin(radius / 2)``
        (equivalent to the geodesic radius), then pairs are kept by their exact
        geodesic distance.
    box : sequence of (lo, hi) or None, optional
        Per axis, the period of a periodic box (``None`` for a non-periodic
        axis). Points are wrapped into the box.

    Returns
    -------
    dst_index, src_index : np.ndarray of int64, shape [E]
    """
    if not np.isfinite(radius) or radius <= 0:
        raise ValueError(f"radius must be positive and finite, got {radius}")
    if manifold == "sphere":
        if box is not None:
            raise ValueError("a periodic box does not apply to sphere points")
        chord = 2.0 * np.sin(min(radius, np.pi) / 2.0) * (1.0 + 1e-9) + 1e-12
        pairs = cKDTree(dst).sparse_distance_matrix(cKDTree(src), chord, output_type="ndarray")
        i, j = pairs["i"].astype(np.int64), pairs["j"].astype(np.int64)
        keep = geodesic_distance(dst[i], src[j]) <= radius
        i, j = i[keep], j[keep]
    elif box is not None and any(b is not None for b in box):
        lo = np.array([b[0] if b is not None else 0.0 for b in box])
        size = np.array([b[1] - b[0] if b is not None else 0.0 for b in box])
        periodic = size > 0
        if radius >= 0.5 * size[periodic].min():
            raise ValueError(
                f"radius {radius} must be below half the smallest period {size[periodic].min()}"
            )
        # cKDTree's boxsize: the period per axis; a huge period makes an axis non-periodic.
        span = np.ptp(np.concatenate([src, dst]), axis=0) + 1.0
        boxsize = np.where(periodic, size, 4.0 * span + 4.0 * radius)
        shift = np.where(periodic, lo, np.minimum(src.min(0), dst.min(0)) - radius)
        wrap_src = np.where(periodic, np.mod(src - shift, boxsize), src - shift)
        wrap_dst = np.where(periodic, np.mod(dst - shift, boxsize), dst - shift)
        wrap_src = np.where(wrap_src >= boxsize, 0.0, wrap_src)  # mod can round up to boxsize
        wrap_dst = np.where(wrap_dst >= boxsize, 0.0, wrap_dst)
        pairs = cKDTree(wrap_dst, boxsize=boxsize).sparse_distance_matrix(
            cKDTree(wrap_src, boxsize=boxsize), radius, output_type="ndarray"
        )
        i, j = pairs["i"].astype(np.int64), pairs["j"].astype(np.int64)
    else:
        pairs = cKDTree(dst).sparse_distance_matrix(cKDTree(src), radius, output_type="ndarray")
        i, j = pairs["i"].astype(np.int64), pairs["j"].astype(np.int64)
    order = np.argsort(i * np.int64(src.shape[0]) + j, kind="stable")
    return i[order], j[order]


def geodesic_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Great-circle angle between unit vectors, accurate at small and large angles.

    Parameters
    ----------
    a, b : np.ndarray, shape [E, 3]

    Returns
    -------
    np.ndarray, shape [E]
        Radians in [0, pi].
    """
    return np.arctan2(np.linalg.norm(np.cross(a, b), axis=1), np.einsum("ij,ij->i", a, b))


def periodic_offsets(
    offsets: np.ndarray, box: Sequence[tuple[float, float] | None] | None
) -> np.ndarray:
    """Minimum-image offsets ``x_src - x_dst`` on the periodic axes of ``box``."""
    if box is None:
        return offsets
    out = offsets.copy()
    for axis, b in enumerate(box):
        if b is not None:
            period = b[1] - b[0]
            out[:, axis] -= period * np.round(out[:, axis] / period)
    return out
