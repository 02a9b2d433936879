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

__all__ = ["RadiusSearch", "build_graph", "estimate_pairs", "geodesic_distance", "knn_edges",
           "mesh_edges", "periodic_offsets", "radius_edges", "radius_pairs", "spatial_order"]


def _chord(radius: np.ndarray | float) -> np.ndarray | float:
    """Chordal distance of a geodesic angle on the unit sphere, rounded up a little so that
    the tree search never misses a pair the exact geodesic test keeps."""
    return 2.0 * np.sin(np.minimum(radius, np.pi) / 2.0) * (1.0 + 1e-9) + 1e-12


#: Per-point radii are searched in groups whose radii differ by at most this factor (the
#: search uses each group's largest radius, then keeps the pairs within each point's own).
RADIUS_GROUP_RATIO = 1.25


class RadiusSearch:
    """All ``(dst, src)`` pairs within a radius, for query points given chunk by chunk.

    The source points are indexed once (a cKDTree, wrapped into the periodic box
    where there is one); every call to :meth:`pairs` lists the pairs of one set of
    destination points, so kernels of millions of points are built in pieces of
    bounded memory.

    Parameters
    ----------
    src : np.ndarray, shape [N_src, d]
    manifold : {"euclidean", "sphere"}
        On the sphere the tree uses the chordal distance ``2 sin(radius / 2)``, then
        pairs are kept by their exact geodesic distance (radians).
    box : sequence of (lo, hi) or None, optional
        Per axis, the period of a periodic box (``None`` for a non-periodic axis).
    """

    def __init__(self, src: np.ndarray, manifold: str = "euclidean",
                 box: Sequence[tuple[float, float] | None] | None = None) -> None:
        if manifold not in ("euclidean", "sphere"):
            raise ValueError(f"manifold must be 'euclidean' or 'sphere', got {manifold!r}")
        src = np.ascontiguousarray(src, dtype=np.float64)
        self.src, self.manifold, self.n_src = src, manifold, src.shape[0]
        self.periodic = box is not None and any(b is not None for b in box)
        if manifold == "sphere" and box is not None:
            raise ValueError("a periodic box does not apply to sphere points")
        self.min_period = np.inf
        if self.periodic:
            self._lo = np.array([b[0] if b is not None else 0.0 for b in box])
            self._size = np.array([b[1] - b[0] if b is not None else 0.0 for b in box])
            self.is_periodic = self._size > 0
            self.min_period = float(self._size[self.is_periodic].min())
        self._tree: cKDTree | None = None if self.periodic else cKDTree(src)
        self._reach = 0.0  # the largest search distance the periodic tree was built for

    def _periodic_tree(self, reach: float) -> cKDTree:
        """A tree of the wrapped sources; non-periodic axes get a period long enough that no
        pair within ``reach`` wraps around (queries are clipped to the sources' extent
        plus ``2 reach`` there, which keeps every pair and adds none)."""
        if self._tree is None or reach > self._reach:
            self._reach = max(reach, 2.0 * self._reach)
            margin = 2.0 * self._reach
            lo = self.src.min(0) if self.n_src else np.zeros(self.src.shape[1])
            hi = self.src.max(0) if self.n_src else np.zeros(self.src.shape[1])
            self._clip = (lo - margin, hi + margin)
            self._shift = np.where(self.is_periodic, self._lo, lo - margin)
            self._boxsize = np.where(self.is_periodic, self._size, 2.0 * (hi - lo + 2 * margin)
                                     + 1.0)
            self._tree = cKDTree(self._wrap(self.src), boxsize=self._boxsize)
        return self._tree

    def _wrap(self, points: np.ndarray) -> np.ndarray:
        clipped = np.where(self.is_periodic, points, np.clip(points, *self._clip))
        wrapped = np.where(self.is_periodic, np.mod(clipped - self._shift, self._boxsize),
                           clipped - self._shift)
        return np.where(wrapped >= self._boxsize, 0.0, wrapped)  # mod can round up

    def _search(self, dst: np.ndarray, reach: float) -> tuple[np.ndarray, np.ndarray,
                                                              np.ndarray]:
        """Pairs with distance <= reach in the search metric: (i, j, distance)."""
        if len(dst) == 0 or self.n_src == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0)
        if self.periodic:
            if reach >= 0.5 * self.min_period:
                raise ValueError(f"radius {reach} must be below half the smallest period "
                                 f"{self.min_period}")
            tree = self._periodic_tree(reach)
            query = cKDTree(self._wrap(dst), boxsize=self._boxsize)
        else:
            tree, query = self._tree, cKDTree(dst)
        pairs = query.sparse_distance_matrix(tree, reach, output_type="ndarray")
        return pairs["i"].astype(np.int64), pairs["j"].astype(np.int64), pairs["v"]

    def pairs(self, dst: np.ndarray, radius: float | np.ndarray) -> tuple[np.ndarray,
                                                                            np.ndarray]:
        """The pairs of the points ``dst`` within ``radius``, sorted by dst then src.

        Parameters
        ----------
        dst : np.ndarray, shape [N_dst, d]
        radius : float or np.ndarray of shape [N_dst]
            One radius, or one per destination point (length units, or radians on
            the sphere).

        Returns
        -------
        dst_index, src_index : np.ndarray of int64, shape [E]
            ``dst_index`` indexes ``dst`` (this call's points).
        """
        dst = np.ascontiguousarray(dst, dtype=np.float64)
        radii = np.asarray(radius, dtype=np.float64)
        if radii.ndim == 0:
            i, j = self._pairs_one_radius(dst, float(radii))
        else:
            if radii.shape != (dst.shape[0],):
                raise ValueError(f"radius must be a number or have one value per dst point "
                                 f"({dst.shape[0]}), got shape {radii.shape}")
            i, j = self._pairs_per_point(dst, radii)
        order = np.argsort(i * np.int64(max(self.n_src, 1)) + j, kind="stable")
        return i[order], j[order]

    def _pairs_one_radius(self, dst: np.ndarray, radius: float) -> tuple[np.ndarray,
                                                                         np.ndarray]:
        if not np.isfinite(radius) or radius <= 0:
            raise ValueError(f"radius must be positive and finite, got {radius}")
        if self.manifold == "sphere":
            i, j, _ = self._search(dst, float(_chord(radius)))
            keep = geodesic_distance(dst[i], self.src[j]) <= radius
            return i[keep], j[keep]
        i, j, _ = self._search(dst, radius)
        return i, j

    def _pairs_per_point(self, dst: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray,
                                                                            np.ndarray]:
        if not np.all(np.isfinite(radii)) or np.any(radii <= 0):
            bad = int(np.argmax(~np.isfinite(radii) | (radii <= 0)))
            raise ValueError(f"radius must be positive and finite at every point, got "
                             f"{radii[bad]} at dst point index {bad}")
        if len(radii) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        group = np.floor(np.log(radii / radii.min()) / np.log(RADIUS_GROUP_RATIO)).astype(
            np.int64)
        parts_i, parts_j = [], []
        for g in np.unique(group):
            members = np.flatnonzero(group == g)
            sub, own = dst[members], radii[members]
            if self.manifold == "sphere":
                i, j, _ = self._search(sub, float(_chord(own.max())))
                keep = geodesic_distance(sub[i], self.src[j]) <= own[i]
            else:
                i, j, distance = self._search(sub, float(own.max()))
                keep = distance <= own[i]
            parts_i.append(members[i[keep]])
            parts_j.append(j[keep])
        return np.concatenate(parts_i), np.concatenate(parts_j)


def radius_pairs(
    src: np.ndarray,
    dst: np.ndarray,
    radius: float | np.ndarray,
    manifold: str = "euclidean",
    box: Sequence[tuple[float, float] | None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """All (dst, src) pairs within ``radius``, sorted by dst then src.

    Parameters
    ----------
    src : np.ndarray, shape [N_src, d]
    dst : np.ndarray, shape [N_dst, d]
    radius : float or np.ndarray of shape [N_dst]
        Euclidean distance, or geodesic angle in radians on the unit sphere; one
        value, or one per destination point.
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

    See Also
    --------
    RadiusSearch : the same search, one chunk of destination points at a time.
    """
    radii = np.asarray(radius, dtype=np.float64)
    if radii.ndim == 0 and (not np.isfinite(radii) or radii <= 0):
        raise ValueError(f"radius must be positive and finite, got {radius}")
    return RadiusSearch(src, manifold, box).pairs(dst, radii)


def spatial_order(points: np.ndarray) -> np.ndarray:
    """A permutation of ``points [N, d]`` in which nearby points mostly come together: the
    leaf order of a k-d tree. Chunks of it make compact query sets for the tree searches."""
    return cKDTree(points).indices.astype(np.int64)


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
    radius: float | np.ndarray,
    manifold: str = "euclidean",
    box: Sequence[tuple[float, float] | None] | None = None,
    sample: int = 2048,
) -> float:
    """Estimated number of ``(dst, src)`` pairs within ``radius``, without listing them.

    Counts the neighbours of up to ``sample`` evenly spaced destination points
    (exactly, for smaller clouds) and scales by the number of destinations, so a
    radius that would give billions of kernel edges is caught before memory is
    allocated. On the sphere the chordal distance is used; periodic boxes are
    ignored (they can only add pairs near the box's faces). ``radius`` may hold one
    value per destination point.
    """
    n_dst = dst.shape[0]
    if n_dst == 0 or src.shape[0] == 0:
        return 0.0
    reach = np.asarray(radius, dtype=np.float64)
    if manifold == "sphere":
        reach = _chord(reach)
    picked = np.arange(n_dst) if n_dst <= sample else np.linspace(0, n_dst - 1, sample).astype(
        np.int64)
    if reach.ndim:
        reach = reach[picked]
    counts = cKDTree(src).query_ball_point(dst[picked], reach, return_length=True)
    return float(np.mean(counts)) * n_dst
