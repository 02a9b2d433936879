"""Construction of sparse DISCO kernels between two point clouds.

``disco_kernel(src, dst, ...)`` evaluates every basis function ``psi_k`` at every
pair ``(x_i in dst, x_j in src)`` closer than ``radius`` in the local polar frame
of ``x_i`` (:mod:`~geo_neuralop.kernels.frames`), folds in the source quadrature
weight ``w_j`` and a normalization, and returns a
:class:`~geo_neuralop.kernels.sparse.DiscoKernel`. With ``differential=True`` the
stencil is made linearly consistent, zero-sum and divided by the radius, so it
converges to a directional derivative. Geometry only: build once per geometry.

Construction works on chunks of destination points (:func:`disco_edges`): the
neighbours of one chunk are listed, then its values are computed and written
straight into the final arrays (32-bit source and destination indices, values in
the kernel's dtype, basis-major), so peak memory is the kernel itself plus a few
chunks. Chunks run on ``torch.get_num_threads()`` threads (torch's own operations
single-threaded meanwhile).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from geo_neuralop.geometry.fingerprint import geometry_fingerprint
from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.kernels.basis import FilterBasis, get_basis
from geo_neuralop.kernels.frames import (
    local_polar,
    periodic_box,
    sphere_frame_angles,
    surface_frame,
)
from geo_neuralop.kernels.moments import basis_first_moments
from geo_neuralop.kernels.neighbors import (
    RadiusSearch,
    estimate_pairs,
    periodic_offsets,
    spatial_order,
)
from geo_neuralop.kernels.sparse import DiscoKernel
from geo_neuralop.utils.checks import is_number

__all__ = ["DEFAULT_MAX_EDGES", "NORMALIZATIONS", "StencilPoints", "disco_edges", "disco_kernel",
           "normalization_divisor"]

NORMALIZATIONS = ("none", "mean", "nodal")

#: Regularization of the "mean" normalization, in units where the source weights sum to one
#: (torch-harmonics' value, so that kernels agree with it where basis norms are small).
MEAN_NORMALIZATION_EPS = 1e-9

#: Edges evaluated at once while building a kernel (bounds the memory of each chunk).
EDGE_CHUNK = 1 << 16

#: Largest kernel built without asking (``max_edges``): 5e7 edges of 9 basis functions take
#: about 2.2 GB in float32 (a million points with 50 neighbours each); a radius covering most
#: of a cloud (LocalSFNO's disco_radius=3.0 on 64 x 128 points: 6.6e7 edges) is nearly
#: always a mistake.
DEFAULT_MAX_EDGES = 50_000_000


def normalization_divisor(norms: torch.Tensor, total_weight: float, normalization: str,
                          point_dim: int | tuple[int, ...] = 0) -> torch.Tensor:
    """What each basis function's values are divided by, from their per-point norms.

    Parameters
    ----------
    norms : torch.Tensor
        ``N_ik = sum_j |psi_k(x_i, x_j)| w_j`` per destination point ``i`` and basis
        function ``k`` (points along ``point_dim``).
    total_weight : float
        ``sum_j w_j`` of the source cloud.
    normalization : {"none", "mean", "nodal"}
        "mean": ``mean_i N_ik + 1e-9 sum_j w_j`` (torch-harmonics' mode, invariant to
        scaling the weights); "nodal": ``N_ik``; "none": 1.

    Returns
    -------
    torch.Tensor
        Broadcastable against ``norms`` (the point axes kept with size 1 for "mean").
    """
    if normalization == "none":
        return torch.ones_like(norms).mean(dim=point_dim, keepdim=True)
    if normalization == "mean":
        return norms.mean(dim=point_dim, keepdim=True) + total_weight * MEAN_NORMALIZATION_EPS
    if normalization == "nodal":
        return norms
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")


def disco_kernel(
    src: PointCloud,
    dst: PointCloud | None = None,
    kernel_shape: int | tuple[int, ...] | None = 3,
    basis: str | FilterBasis = "piecewise_linear",
    radius: float | np.ndarray | torch.Tensor | Callable[[np.ndarray], np.ndarray] = 0.1,
    normalization: str = "mean",
    differential: bool = False,
    box: Sequence[tuple[float, float] | None] | None = None,
    dtype: torch.dtype | None = None,
    allow_empty: bool = False,
    max_edges: int = DEFAULT_MAX_EDGES,
    radius_name: str = "radius",
    max_edges_name: str = "max_edges",
) -> DiscoKernel:
    """Build the sparse DISCO kernel from ``src`` to ``dst``.

    Parameters
    ----------
    src : PointCloud
        Input points with quadrature weights ``w_j``.
    dst : PointCloud, optional
        Output points (default: ``src``). May be a different cloud on the same
        manifold: mesh -> latent grid, grid -> mesh, coarse <-> fine.
    kernel_shape : int or tuple
        Shape of the basis (see the basis classes).
    basis : {"piecewise_linear", "morlet", "zernike"} or FilterBasis
    radius : float, array of shape [N_dst], or callable
        Support radius: length units, or the geodesic angle in radians on the
        sphere. An array gives every destination point its own radius, and a
        callable (e.g. a :class:`~geo_neuralop.kernels.RadiusField`) is evaluated
        at the destination positions ``[N_dst, d] -> [N_dst]``; radii per point
        need ``normalization="nodal"`` (each point's stencil is then an average
        over its own support, see :class:`~geo_neuralop.kernels.RadiusField`).
    normalization : {"none", "mean", "nodal"}
        "none": ``psi_k w_j``. "mean": each basis function divided by the mean
        over destination points of ``sum_j |psi_k| w_j / sum_j w_j``, plus
        ``1e-9`` (torch-harmonics' "mean" mode; invariant to scaling the
        weights). "nodal": divided by that
        sum at each destination point (torch-harmonics' "individual").
    differential : bool
        Build a differential kernel (needs ``dst`` = ``src``): the stencil of
        each basis function is corrected to reproduce linear functions (its
        discrete first moment is set to the continuous one), made to sum to
        zero at every point and divided by ``radius``, so as the radius shrinks
        it converges to the directional derivative ``m_k . grad v`` (see
        :func:`~geo_neuralop.kernels.moments.basis_first_moments`).
    box : sequence of (lo, hi) or None, optional
        Periodic box per axis (``None``: non-periodic axis). Default: taken
        from ``src`` when it is a periodic :func:`regular_grid`.
    dtype : torch.dtype, optional
        dtype of ``edge_values`` (default ``torch.get_default_dtype()``). The
        geometry and the basis are always evaluated in float64.
    allow_empty : bool
        Let destination points without any source point within the radius
        have an empty row (output zero) instead of raising. Meant for
        encoders onto a latent grid that covers holes of the mesh (the
        cylinder); "mean" normalization then averages over the other points.
    max_edges : int
        Refuse (before allocating anything) a radius whose neighbourhoods hold
        more than about this many ``(dst, src)`` pairs; raise it for huge clouds.
    radius_name, max_edges_name : str
        How messages call the radius and the edge limit: layers and models pass
        the names of their own arguments (e.g. ``"disco_radius"``).

    Returns
    -------
    DiscoKernel
        32-bit indices where they fit; memory ``E (8 + K * itemsize)`` bytes.

    Raises
    ------
    ValueError
        Unknown normalization, non-positive radius, clouds on different
        manifolds or of different dimension, a destination point with no
        source point within the radius (naming its index), or an estimated
        edge count above ``max_edges`` (naming the radius and the memory).

    Notes
    -----
    Clouds with three coordinates that are surfaces get the frame of their tangent
    plane (:func:`~geo_neuralop.kernels.frames.surface_frame`): points lying in one
    plane (the xz-plane, a tilted plane) are expressed in two in-plane coordinates,
    so the kernel is that of the same mesh stored in the xy-plane; a curved
    triangulated surface (``dst.faces``) measures each angle in the tangent frame of
    its destination point (the radius is the straight-line distance). Other 3D
    clouds are volumes: the angle is the azimuth in the xy-plane.

    Examples
    --------
    >>> from geo_neuralop.geometry import sphere_grid
    >>> from geo_neuralop.kernels import disco_kernel
    >>> grid = sphere_grid(16, 32, "legendre-gauss")
    >>> kernel = disco_kernel(grid, kernel_shape=(5, 4), radius=0.3)
    >>> kernel.edge_values.shape[1]
    9
    """
    dst = src if dst is None else dst
    for name, cloud in (("src", src), ("dst", dst)):
        if not isinstance(cloud, PointCloud):
            raise TypeError(f"{name} must be a PointCloud, got {type(cloud).__name__}")
    if src.manifold != dst.manifold:
        raise ValueError(
            f"src and dst are on different manifolds: {src.manifold!r} and {dst.manifold!r}"
        )
    if src.pos.shape[1] != dst.pos.shape[1]:
        raise ValueError(
            f"src has {src.pos.shape[1]} coordinates per point but dst has {dst.pos.shape[1]}"
        )
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if differential and dst is not src and not (
        dst.num_nodes == src.num_nodes and torch.equal(dst.pos, src.pos)
    ):
        raise ValueError("a differential kernel needs dst to be the same cloud as src")
    if allow_empty and differential:
        raise ValueError("allow_empty cannot be combined with differential=True")
    basis = get_basis(basis, kernel_shape if not isinstance(basis, FilterBasis) else None)
    if box is None and src.manifold == "euclidean":
        box = periodic_box(src)
    dtype = dtype or torch.get_default_dtype()
    points = StencilPoints.of(src, dst, box, self_index=differential)
    radius = check_radius(radius, points.dst_pos, normalization, radius_name)
    estimate = estimate_pairs(points.src_pos, points.dst_pos, radius, src.manifold, box)
    if estimate > max_edges:
        gigabytes = estimate * (4 * basis.kernel_size + 8) / 1e9
        shown = f"{radius:g}" if is_number(radius) else f"up to {float(np.max(radius)):g}"
        raise ValueError(
            f"{radius_name}={shown} gives about {estimate:.3g} kernel edges (pairs of the "
            f"{points.dst_pos.shape[0]} dst and {points.src_pos.shape[0]} src points within "
            f"the radius), about {gigabytes:.3g} GB of memory while building; this is above "
            f"{max_edges_name}={max_edges:g}. Use a smaller {radius_name}, or raise "
            f"{max_edges_name} to build it anyway")
    edge_index, values = disco_edges(points, basis, radius, normalization, differential, dtype,
                                     allow_empty, estimate,
                                     names=(radius_name, _cloud_description(dst)))
    kernel = DiscoKernel(edge_index=edge_index, edge_values=values.T)
    kernel.num_src_nodes = points.src_pos.shape[0]
    kernel.num_dst_nodes = points.dst_pos.shape[0]
    kernel.num_nodes = points.dst_pos.shape[0]
    kernel.radius = float(radius) if is_number(radius) else float(np.max(radius))
    kernel.normalization = normalization
    kernel.differential = differential
    kernel.manifold = src.manifold
    kernel.basis = repr(basis)
    # which clouds the kernel belongs to: layers refuse it for any other geometry
    kernel.src_fingerprint = geometry_fingerprint(src)
    kernel.dst_fingerprint = kernel.src_fingerprint if dst is src else geometry_fingerprint(dst)
    return kernel


def _cloud_description(cloud: PointCloud) -> str:
    shape = getattr(cloud, "grid_shape", None)
    if shape is not None:
        return f"{' x '.join(str(int(n)) for n in shape)} grid"
    return f"{cloud.num_nodes}-point cloud"


def check_radius(radius: object, dst_pos: np.ndarray, normalization: str,
                 name: str = "radius") -> float | np.ndarray:
    """The support radius as a float, or as a float64 array ``[N_dst]`` (one per point).

    Accepts a number, an array or tensor of one radius per destination point, or a
    callable evaluated at the destination positions ``[N_dst, d]``.

    Raises
    ------
    TypeError
        ``radius`` is none of these.
    ValueError
        A non-positive or non-finite radius (naming the point), a wrong length, or
        radii per point without ``normalization="nodal"``.
    """
    if is_number(radius):
        value = float(radius)  # type: ignore[arg-type]
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be positive and finite, got {value}")
        return value
    if callable(radius) and not isinstance(radius, (np.ndarray, torch.Tensor)):
        radius = radius(dst_pos)
    if isinstance(radius, torch.Tensor):
        radius = radius.detach().cpu().double().numpy()
    if not isinstance(radius, np.ndarray):
        raise TypeError(f"{name} must be a number, an array of one radius per dst point or a "
                        f"callable of the positions, got {type(radius).__name__}")
    radii = np.ascontiguousarray(radius, dtype=np.float64)
    if radii.shape != (dst_pos.shape[0],):
        raise ValueError(f"{name} must hold one value per dst point ({dst_pos.shape[0]}), got "
                         f"shape {radii.shape}")
    bad = ~np.isfinite(radii) | (radii <= 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name} must be positive and finite at every dst point, got "
                         f"{radii[i]} at dst point index {i}")
    if normalization != "nodal":
        raise ValueError(f"a radius per point needs normalization='nodal' (each point's stencil "
                         f"an average over its own support), got {normalization!r}")
    return radii


@dataclass(frozen=True)
class StencilPoints:
    """What the construction of a kernel reads from its two clouds (float64 arrays).

    Attributes
    ----------
    src_pos : np.ndarray, shape [N_src, d]
    src_weights : np.ndarray, shape [N_src]
        Quadrature weights of the source points.
    dst_pos : np.ndarray, shape [N_dst, d]
    manifold : {"euclidean", "sphere"}
    box : periodic box per axis, or None
    dst_frame : (colatitude, longitude) arrays of shape [N_dst], or None
        Frames of the destination points on the sphere (default from ``dst_pos``).
    total_weight : float
        ``sum_j w_j`` of the whole source cloud (the "mean" normalization's
        regularization); may exceed ``src_weights.sum()`` when ``src`` holds only
        the source points that can lie within the radius of ``dst``.
    self_index : np.ndarray of int64, shape [N_dst], or None
        The source index of every destination point (differential kernels: where
        the zero-sum correction goes).
    tangent_dim : int
        Dimension of the local frame: 2 on the sphere and on surfaces in 3D, the
        coordinate dimension otherwise.
    dst_points : np.ndarray, shape [N_dst, d0]
        The destination positions as the cloud stores them (for messages; a plane in
        3D is projected to two in-plane coordinates in ``dst_pos``).

    Notes
    -----
    3D Euclidean clouds that are surfaces (:func:`~geo_neuralop.kernels.frames.
    surface_frame`): a plane is expressed in two in-plane coordinates; a curved
    triangulated surface keeps its coordinates and gets per-point tangent axes
    ``(e1, e2)`` ``[N_dst, 3]`` as ``dst_frame``.
    """

    src_pos: np.ndarray
    src_weights: np.ndarray
    dst_pos: np.ndarray
    manifold: str
    box: Sequence[tuple[float, float] | None] | None
    dst_frame: tuple[np.ndarray, np.ndarray] | None
    total_weight: float
    self_index: np.ndarray | None
    tangent_dim: int
    dst_points: np.ndarray | None = None

    @classmethod
    def of(cls, src: PointCloud, dst: PointCloud, box: Sequence | None,
           self_index: bool = False) -> StencilPoints:
        """The arrays of two clouds (``self_index``: dst is src, point by point)."""
        weights = src.weights.detach().cpu().double().numpy()
        src_pos = src.pos.detach().cpu().double().numpy()
        dst_points = dst.pos.detach().cpu().double().numpy()
        dst_pos = dst_points
        frame = sphere_frame_angles(dst) if src.manifold == "sphere" else None
        tangent_dim = 2 if src.manifold == "sphere" else int(src.pos.shape[1])
        surface = surface_frame([src] if dst is src else [src, dst]) if box is None else None
        if surface is not None:
            tangent_dim = 2
            if surface.kind == "plane":  # 2D coordinates in the plane
                src_pos, dst_pos = src_pos @ surface.axes.T, dst_pos @ surface.axes.T
            else:  # a curved surface: angles in each destination's tangent frame
                frame = (surface.e1, surface.e2)
        return cls(
            src_pos=src_pos,
            src_weights=weights,
            dst_pos=dst_pos,
            manifold=src.manifold,
            box=box,
            dst_frame=frame,
            total_weight=float(weights.sum()),
            self_index=np.arange(dst.num_nodes) if self_index else None,
            tangent_dim=tangent_dim,
            dst_points=dst_points,
        )


def disco_edges(points: StencilPoints, basis: FilterBasis, radius: float | np.ndarray,
                normalization: str = "mean", differential: bool = False,
                dtype: torch.dtype = torch.float32, allow_empty: bool = False,
                estimate: float | None = None,
                workers: int | None = None,
                names: tuple[str, str] = ("radius", "cloud")) -> tuple[torch.Tensor, torch.Tensor]:
    """The edges and values of a DISCO kernel, built chunk by chunk of destination points.

    Parameters
    ----------
    points : StencilPoints
    basis : FilterBasis
    radius : float or np.ndarray of shape [N_dst]
        (see :func:`check_radius`).
    normalization, differential, allow_empty
        As in :func:`disco_kernel`.
    dtype : torch.dtype
        Of the values.
    estimate : float, optional
        Expected number of edges (sizes the chunks; default estimated here).
    workers : int, optional
        Threads working on chunks (default ``torch.get_num_threads()``).
    names : (str, str)
        How messages call the radius argument and the destination cloud (e.g.
        ``("disco_radius", "64 x 128 grid")``).

    Returns
    -------
    edge_index : torch.Tensor, shape [2, E]
        Rows ``(src, dst)``, sorted by destination then source; int32 where the
        point counts allow it, else int64.
    values : torch.Tensor, shape [K, E]
        Basis-major values (``values.T`` is the ``[E, K]`` kernel).
    """
    n_src, n_dst = points.src_pos.shape[0], points.dst_pos.shape[0]
    if estimate is None:
        estimate = estimate_pairs(points.src_pos, points.dst_pos, radius, points.manifold,
                                  points.box)
    workers = torch.get_num_threads() if workers is None else workers
    radii = None if is_number(radius) else radius
    counts, src_index_chunks = _neighbours(points, radius, radii, estimate, workers)
    empty = counts == 0
    if empty.any() and (not allow_empty or empty.all()):
        i = int(np.argmax(empty))
        shown = f"{radius:g}" if radii is None else f"{radii[i]:g}"
        raise ValueError(
            f"{names[0]}={shown} is too small: dst point index {i} "
            f"({_shown_position(points, i)}) has no src point within the radius "
            f"({int(empty.sum())} such points)"
        )
    ptr = np.zeros(n_dst + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    n_edges = int(ptr[-1])
    index_dtype = torch.int32 if max(n_src, n_dst) < 2**31 - 1 else torch.int64
    edge_index = torch.empty(2, n_edges, dtype=index_dtype)
    src_index, dst_index = edge_index[0].numpy(), edge_index[1].numpy()
    for members, member_counts, j in src_index_chunks:  # into CSR order
        first = np.repeat(ptr[members] - np.concatenate([[0], np.cumsum(member_counts)[:-1]]),
                          member_counts)
        src_index[first + np.arange(len(j))] = j
    del src_index_chunks
    dst_index[:] = np.repeat(np.arange(n_dst, dtype=dst_index.dtype), counts)

    # values: contiguous ranges of destination points of about EDGE_CHUNK edges each
    cuts = np.searchsorted(ptr, np.arange(0, n_edges, EDGE_CHUNK), side="right") - 1
    bounds = np.unique(np.concatenate([cuts, [n_dst]]))
    chunks = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    k = basis.kernel_size
    values = torch.empty(k, n_edges, dtype=dtype)
    # "mean" needs the norms of every point before any value is final; "nodal" and "none" not
    deferred = normalization == "mean"
    job = _ChunkJob(points, basis, radius, radii, normalization, differential, ptr, src_index,
                    values)
    try:
        norm_sums = _map(lambda c: job.run(c, finish=not deferred), chunks, workers)
        if deferred:
            total = (np.sum([t for t in norm_sums if t is not None], axis=0) if chunks
                     else np.zeros(k))
            mean = torch.from_numpy(np.asarray(total, dtype=np.float64)
                                    / max(int((~empty).sum()), 1))
            divisor = mean + points.total_weight * MEAN_NORMALIZATION_EPS  # normalization_divisor
            job.divisor = divisor.numpy()
            if differential:  # the consistency correction needs the normalized float64 values
                _map(lambda c: job.run(c, finish=True), chunks, workers)
            else:
                values.div_(divisor.to(dtype)[:, None])
    except _NotSpanning as bad:
        i = bad.index
        shown = f"{radius:g}" if radii is None else f"{radii[i]:g}"
        nearest = _nearest_other(points.src_pos, points.dst_pos[i], points.manifold, points.box)
        raise ValueError(
            f"{names[0]}={shown} is too small for a differential kernel on this {names[1]}: "
            f"the neighbours of dst point index {i} ({_shown_position(points, i)}) within the "
            f"radius do not span its {points.tangent_dim} directions (its nearest other point "
            f"is {nearest:.3g} away); use a larger {names[0]} (a few times that distance) or a "
            f"finer {names[1].split()[-1]}") from None
    return edge_index, values


def _shown_position(points: StencilPoints, i: int) -> list[float]:
    """Destination point ``i`` as its cloud stores it (for messages)."""
    pos = points.dst_points if points.dst_points is not None else points.dst_pos
    return [float(v) for v in pos[i]]


class _NotSpanning(ValueError):
    """The neighbours of a destination point do not span its tangent directions."""

    def __init__(self, index: int) -> None:
        super().__init__(f"dst point index {index}")
        self.index = index


def _nearest_other(src_pos, point, manifold, box) -> float:
    """Distance (geodesic angle on the sphere) from ``point`` to the nearest distinct source
    point, for messages."""
    if manifold == "sphere":
        d = np.arccos(np.clip(src_pos @ point, -1.0, 1.0))
    else:
        d = np.linalg.norm(periodic_offsets(src_pos - point, box), axis=1)
    d = d[d > 1e-12]
    return float(d.min()) if d.size else float("inf")


def _map(function: Callable, items: list, workers: int) -> list:
    """``[function(item) for item in items]``, on up to ``workers`` threads, in order.

    While the threads run, torch's own operations are single-threaded (the chunks are
    the parallelism; nested thread teams only contend for the cores)."""
    if workers <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(min(workers, len(items))) as pool:
            return list(pool.map(function, items))
    finally:
        torch.set_num_threads(previous)


def _neighbours(points: StencilPoints, radius: float | np.ndarray, radii: np.ndarray | None,
                estimate: float, workers: int) -> tuple[np.ndarray, list]:
    """Neighbour counts per destination point ``[N_dst]`` and, per chunk, ``(destination
    indices, their counts, source indices int32)``. Chunks are spatially coherent sets of
    destination points (consecutive leaves of a k-d tree), which the tree search needs to be
    fast on clouds stored in no particular order."""
    n_dst = points.dst_pos.shape[0]
    search = RadiusSearch(points.src_pos, points.manifold, points.box)
    size = int(min(max(EDGE_CHUNK // max(estimate / max(n_dst, 1), 1.0), 1), max(n_dst, 1)))
    order = spatial_order(points.dst_pos) if n_dst > size else np.arange(n_dst)
    index_dtype = np.int32 if points.src_pos.shape[0] < 2**31 - 1 else np.int64

    def search_chunk(start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        members = order[start:start + size]
        i, j = search.pairs(points.dst_pos[members],
                            radius if radii is None else radii[members])
        return members, np.bincount(i, minlength=len(members)), j.astype(index_dtype)

    found = _map(search_chunk, list(range(0, n_dst, size)), workers)
    counts = np.zeros(n_dst, dtype=np.int64)
    for members, member_counts, _ in found:
        counts[members] = member_counts
    return counts, found


class _ChunkJob:
    """Values of the edges of a chunk of destination points ``[a, b)``, written into place."""

    def __init__(self, points: StencilPoints, basis: FilterBasis, radius, radii, normalization,
                 differential, ptr, src_index, values) -> None:
        self.points, self.basis, self.radius, self.radii = points, basis, radius, radii
        self.normalization, self.differential = normalization, differential
        self.ptr, self.src_index, self.values = ptr, src_index, values
        self.divisor: np.ndarray | None = None

    def run(self, chunk: tuple[int, int], finish: bool) -> np.ndarray | None:
        """Compute and store the chunk's values (``finish``: normalized, and corrected for
        differential kernels); returns the sum over its points of the basis norms
        ``sum_j |psi_k| w_j``, shape [K]."""
        a, b = chunk
        e0, e1 = int(self.ptr[a]), int(self.ptr[b])
        if e1 == e0:
            return None
        p = self.points
        counts = np.diff(self.ptr[a:b + 1])
        local = np.repeat(np.arange(b - a), counts)
        i, j = local + a, self.src_index[e0:e1].astype(np.int64)
        frame = None if p.dst_frame is None else (p.dst_frame[0][i], p.dst_frame[1][i])
        r, phi = local_polar(p.src_pos[j], p.dst_pos[i], p.manifold, p.box, frame)
        radius = self.radius if self.radii is None else self.radii[i]
        rho = np.minimum(r / radius, 1.0)
        # a point and its own copies (the poles of an equiangular grid) are at distance 0:
        # round-off of the frame rotation must not give them an angle
        centre = rho < 1e-12
        rho, phi = np.where(centre, 0.0, rho), np.where(centre, 0.0, phi)
        psi = self.basis(torch.from_numpy(rho), torch.from_numpy(phi))
        psi.mul_(torch.from_numpy(p.src_weights[j])[:, None])
        values = psi.numpy()  # [E_chunk, K], float64
        starts = self.ptr[a:b] - e0
        nonempty = counts > 0
        norms = np.zeros((b - a, values.shape[1]))
        norms[nonempty] = np.add.reduceat(np.abs(values), starts[nonempty], axis=0)
        if finish:
            if self.normalization == "nodal":
                per_edge = norms[local]
                values = np.divide(values, per_edge, out=np.zeros_like(values),
                                   where=per_edge > 0)
            elif self.normalization == "mean":
                values /= self.divisor
            if self.differential:
                values = _differential(values, p, self.basis, i, j, rho, phi, radius, starts)
        self.values[:, e0:e1] = torch.from_numpy(values).T
        return norms.sum(axis=0)


def _differential(values: np.ndarray, points: StencilPoints, basis: FilterBasis, i: np.ndarray,
                  j: np.ndarray, rho: np.ndarray, phi: np.ndarray, radius: float | np.ndarray,
                  starts: np.ndarray) -> np.ndarray:
    """Linear consistency, zero sum and the ``1 / radius`` scale of one chunk's stencils
    (every destination point of the chunk has all its edges in it, sorted)."""
    tangent = _edge_tangents(points, i, j, rho, phi, radius)
    values = _linear_consistency(values, tangent, rho, points.src_weights[j], i - i[0], starts,
                                 basis, points.tangent_dim, i[0])
    # Zero-sum: subtract (sum_j values_ij) v_i, i.e. add -row_sum on the diagonal.
    row_sums = np.add.reduceat(values, starts, axis=0)
    diagonal = np.flatnonzero(j == points.self_index[i])
    has_diag = np.zeros(len(starts), dtype=bool)
    has_diag[i[diagonal] - i[0]] = True
    missing = np.flatnonzero(~has_diag)
    if missing.size:  # cannot happen for src = dst (distance 0 is within any radius)
        raise ValueError(f"dst point index {int(missing[0]) + int(i[0])} is missing from src")
    values[diagonal] -= row_sums[i[diagonal] - i[0]]
    if np.ndim(radius):
        values /= radius[:, None]
    else:
        values /= radius
    return values


def _edge_tangents(points: StencilPoints, i: np.ndarray, j: np.ndarray, rho: np.ndarray,
                   phi: np.ndarray, radius: float | np.ndarray) -> np.ndarray:
    """Offsets of the edges in the local frame of their destination, in radius units."""
    dim = points.tangent_dim
    if dim == 3:
        offsets = periodic_offsets(points.src_pos[j] - points.dst_pos[i], points.box)
        return offsets / (radius[:, None] if np.ndim(radius) else radius)
    if dim == 2:
        return np.stack([rho * np.cos(phi), rho * np.sin(phi)], 1)
    return np.where(phi > 1.0, -rho, rho)[:, None]


def _linear_consistency(values, tangent, rho, src_weights, dst_local, starts, basis, dim,
                        first):
    """Correct each point's stencil so that its first moments are the continuous ones.

    With ``a_ijk`` the normalized kernel values and ``t_ij`` the local offsets in
    radius units, the discrete first moment ``D_ik = sum_j a_ijk t_ij`` differs
    from the continuous ``m_k`` by a quadrature error that does not vanish when
    the radius shrinks with the mesh width (it is O(1) on irregular meshes).
    Adding ``b_ij (c_ik . t_ij)``, with ``b_ij = w_j (1 - rho_ij)`` and ``c_ik``
    solving ``G_i c_ik = m_k - D_ik`` (``G_i = sum_j b_ij t_ij t_ij^T``), makes
    the stencil exact for linear functions, so the layer converges at first
    order in the radius to ``m_k . grad v``. This is the consistency correction
    of corrected SPH / reproducing-kernel methods.
    """
    basis_moments = basis_first_moments(basis, dim).numpy()  # [K, dim]
    discrete = np.add.reduceat(values[:, :, None] * tangent[:, None, :], starts, axis=0)
    b = src_weights * (1.0 - rho)
    gram = np.add.reduceat(b[:, None, None] * tangent[:, :, None] * tangent[:, None, :],
                           starts, axis=0)  # [N, dim, dim]
    scale = np.trace(gram, axis1=1, axis2=2)
    eig = np.linalg.eigvalsh(gram)
    bad = eig[:, 0] <= 1e-10 * np.maximum(scale, 1e-300)
    if bad.any():
        raise _NotSpanning(int(np.argmax(bad)) + int(first))
    rhs = np.transpose(basis_moments[None, :, :] - discrete, (0, 2, 1))  # [N, dim, K]
    coef = np.linalg.solve(gram, rhs)  # [N, dim, K]
    return values + b[:, None] * np.einsum("ed,edk->ek", tangent, coef[dst_local])
