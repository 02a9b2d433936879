"""Neighbour search with scipy's cKDTree: radius pairs (Euclidean, periodic boxes, sphere) and
the message-passing graphs of point clouds (mesh edges, radius and k-nearest graphs).

No dense N x M distance matrix is formed: the tree returns only the pairs within
the radius, so time and memory grow with the number of pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.spatial import cKDTree

from geo_neuralop.utils.checks import check_positive_int, is_number

__all__ = ["build_graph", "estimate_pairs", "geodesic_distance", "knn_edges", "mesh_edges",
           "periodic_offsets", "radius_edges", "radius_pairs"]


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


# --- message-passing graphs of point clouds ----------------------------------------------
def _sorted_unique(src: torch.Tensor, dst: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Unique directed edges without self loops, ordered by dst then src, shape [2, E]."""
    keep = src != dst
    key = torch.unique(dst[keep] * num_nodes + src[keep])  # sorted
    return torch.stack([key % num_nodes, key // num_nodes])


def mesh_edges(faces: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Both directions of every edge of a mesh.

    Parameters
    ----------
    faces : torch.Tensor, shape [F, k], long
        Cells given by vertex indices (triangles ``k = 3``, tetrahedra ``k = 4``);
        every pair of vertices of a cell is joined (for quads this adds the
        diagonals).
    num_nodes : int

    Returns
    -------
    torch.Tensor, shape [2, E], long
        ``(src, dst)`` rows, no duplicates, no self loops, sorted by dst then src.
    """
    if faces.dim() != 2 or faces.shape[1] < 2:
        raise ValueError(f"faces must have shape [F, k] with k >= 2, got {tuple(faces.shape)}")
    faces = faces.long()
    k = faces.shape[1]
    a, b = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
    off = a != b
    src = faces[:, a[off]].reshape(-1)
    dst = faces[:, b[off]].reshape(-1)
    return _sorted_unique(src, dst, num_nodes)


def _graph_ranges(num_nodes: int, batch: torch.Tensor | None) -> list[tuple[int, int]]:
    if batch is None:
        return [(0, num_nodes)]
    batch_np = batch.detach().cpu().numpy()
    if batch_np.size and np.any(np.diff(batch_np) < 0):
        raise ValueError("batch must be sorted (nodes of each graph contiguous), as PyG makes it")
    counts = np.bincount(batch_np) if batch_np.size else np.zeros(0, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)])
    return [(int(starts[g]), int(starts[g + 1])) for g in range(len(counts))]


def radius_edges(
    pos: torch.Tensor, radius: float, batch: torch.Tensor | None = None
) -> torch.Tensor:
    """All ordered pairs of distinct points of the same graph closer than ``radius``.

    Parameters
    ----------
    pos : torch.Tensor, shape [N, d]
    radius : float
        Euclidean distance, units of ``pos``.
    batch : torch.Tensor, shape [N], optional
        Graph index of every node (sorted), as in a PyG ``Batch``.

    Returns
    -------
    torch.Tensor, shape [2, E], long, on ``pos.device``
    """
    if not (is_number(radius) and np.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a positive finite number, got {radius!r}")
    pos_np = pos.detach().cpu().double().numpy()
    src, dst = [], []
    for lo, hi in _graph_ranges(pos.shape[0], batch):
        i, j = radius_pairs(pos_np[lo:hi], pos_np[lo:hi], float(radius))
        src.append(j + lo)
        dst.append(i + lo)
    s = torch.from_numpy(np.concatenate(src)) if src else torch.zeros(0, dtype=torch.long)
    d = torch.from_numpy(np.concatenate(dst)) if dst else torch.zeros(0, dtype=torch.long)
    return _sorted_unique(s, d, pos.shape[0]).to(pos.device)


def knn_edges(pos: torch.Tensor, k: int, batch: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric k-nearest-neighbour graph within each graph of a batch.

    Each node is joined to its ``k`` nearest other nodes of the same graph (all
    of them if the graph is smaller), in both directions, so a node may have
    more than ``k`` neighbours.

    Parameters
    ----------
    pos : torch.Tensor, shape [N, d]
    k : int
    batch : torch.Tensor, shape [N], optional

    Returns
    -------
    torch.Tensor, shape [2, E], long, on ``pos.device``
    """
    k = check_positive_int("k", k)
    pos_np = pos.detach().cpu().double().numpy()
    src, dst = [], []
    for lo, hi in _graph_ranges(pos.shape[0], batch):
        n = hi - lo
        if n < 2:
            continue
        kq = min(k + 1, n)
        _, nbr = cKDTree(pos_np[lo:hi]).query(pos_np[lo:hi], k=kq)
        nbr = nbr.reshape(n, kq)
        own = np.arange(n)[:, None]
        valid = (nbr != own) & (nbr < n)
        valid &= np.cumsum(valid, axis=1) <= k  # the k nearest others (self may tie)
        rows, cols = np.nonzero(valid)
        i, j = rows + lo, nbr[rows, cols].astype(np.int64) + lo
        src += [j, i]
        dst += [i, j]
    s = torch.from_numpy(np.concatenate(src)) if src else torch.zeros(0, dtype=torch.long)
    d = torch.from_numpy(np.concatenate(dst)) if dst else torch.zeros(0, dtype=torch.long)
    return _sorted_unique(s, d, pos.shape[0]).to(pos.device)


def build_graph(data: Any, radius: float | None = None, k: int | None = None) -> torch.Tensor:
    """The message-passing graph of a point cloud or batch, shape [2, E] (src, dst).

    Uses, in order: ``data.edge_index`` if present; the mesh edges of
    ``data.faces``; a radius graph (``radius``); a k-nearest-neighbour graph
    (``k``). Graphs of a PyG ``Batch`` are never joined to each other.

    Raises
    ------
    ValueError
        If ``data`` has none of edge_index or faces and neither ``radius`` nor
        ``k`` is given.
    """
    edge_index = getattr(data, "edge_index", None)
    if edge_index is not None:
        return edge_index
    num_nodes = data.pos.shape[0]
    faces = getattr(data, "faces", None)
    if faces is not None and faces.numel() > 0:
        return mesh_edges(faces, num_nodes).to(data.pos.device)
    batch = getattr(data, "batch", None)
    if radius is not None:
        return radius_edges(data.pos, radius, batch)
    if k is not None:
        return knn_edges(data.pos, k, batch)
    raise ValueError(
        "the input has neither edge_index nor faces; give the model a radius or k to build "
        "a neighbour graph"
    )


def estimate_pairs(
    src: np.ndarray,
    dst: np.ndarray,
    radius: float,
    manifold: str = "euclidean",
    box: Sequence[tuple[float, float] | None] | None = None,
    sample: int = 2048,
) -> float:
    """Estimated number of ``(dst, src)`` pairs within ``radius``, without listing them.

    Counts the neighbours of up to ``sample`` evenly spaced destination points
    (exactly, for smaller clouds) and scales by the number of destinations, so a
    radius that would give billions of kernel edges is caught before memory is
    allocated. On the sphere the chordal distance is used; periodic boxes are
    ignored (they can only add pairs near the box's faces).
    """
    n_dst = dst.shape[0]
    if n_dst == 0 or src.shape[0] == 0:
        return 0.0
    reach = radius
    if manifold == "sphere":
        reach = 2.0 * np.sin(min(radius, np.pi) / 2.0) * (1.0 + 1e-9) + 1e-12
    picked = dst if n_dst <= sample else dst[np.linspace(0, n_dst - 1, sample).astype(np.int64)]
    counts = cKDTree(src).query_ball_point(picked, reach, return_length=True)
    return float(np.mean(counts)) * n_dst
