"""Construction of sparse DISCO kernels between two point clouds.

``disco_kernel(src, dst, ...)`` evaluates every basis function ``psi_k`` at every
pair ``(x_i in dst, x_j in src)`` closer than ``radius`` in the local polar frame
of ``x_i`` (:mod:`~geo_neuralop.kernels.frames`), folds in the source quadrature
weight ``w_j`` and a normalization, and returns a
:class:`~geo_neuralop.kernels.sparse.DiscoKernel`. With ``differential=True`` the
stencil is made linearly consistent, zero-sum and divided by the radius, so it
converges to a directional derivative. Geometry only: build once per geometry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
from geo_neuralop.kernels.neighbors import estimate_pairs, periodic_offsets, radius_pairs
from geo_neuralop.kernels.sparse import DiscoKernel
from geo_neuralop.utils.checks import is_number

__all__ = ["DEFAULT_MAX_EDGES", "NORMALIZATIONS", "disco_kernel", "normalization_divisor"]

NORMALIZATIONS = ("none", "mean", "nodal")

#: Regularization of the "mean" normalization, in units where the source weights sum to one
#: (torch-harmonics' value, so that kernels agree with it where basis norms are small).
MEAN_NORMALIZATION_EPS = 1e-9

#: Edges evaluated at once while building a kernel (bounds peak memory).
EDGE_CHUNK = 1 << 20

#: Largest kernel built without asking (``max_edges``): 5e7 edges take about 5 GB while a
#: kernel of 9 basis functions is built (a million points with 50 neighbours each); a radius
#: covering most of a cloud (LocalSFNO's disco_radius=3.0 on 64 x 128 points: 6.6e7 edges)
#: is nearly always a mistake.
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
    radius: float = 0.1,
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
    radius : float
        Support radius: length units, or the geodesic angle in radians on the
        sphere.
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
        geometry is always evaluated in float64.
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

    Notes
    -----
    Clouds with three coordinates that are surfaces get the frame of their tangent
    plane (:func:`~geo_neuralop.kernels.frames.surface_frame`): points lying in one
    plane (the xz-plane, a tilted plane) are expressed in two in-plane coordinates,
    so the kernel is that of the same mesh stored in the xy-plane; a curved
    triangulated surface (``dst.faces``) measures each angle in the tangent frame of
    its destination point (the radius is the straight-line distance). Other 3D
    clouds are volumes: the angle is the azimuth in the xy-plane.

    Returns
    -------
    DiscoKernel

    Raises
    ------
    ValueError
        Unknown normalization, non-positive radius, clouds on different
        manifolds or of different dimension, a destination point with no
        source point within the radius (naming its index), or an estimated
        edge count above ``max_edges`` (naming the radius and the memory).

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
    if not is_number(radius):
        raise TypeError(f"radius must be a number, got {radius!r}")
    radius = float(radius)
    if not math.isfinite(radius) or radius <= 0:
        raise ValueError(f"radius must be positive and finite, got {radius}")
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
    src_pos = src.pos.detach().cpu().double().numpy()
    dst_pos = dst.pos.detach().cpu().double().numpy()
    weights = src.weights.detach().cpu().double().numpy()
    surface = surface_frame([src] if dst is src else [src, dst]) if box is None else None
    if surface is not None and surface.kind == "plane":  # 2D coordinates in the plane
        src_pos, dst_pos = src_pos @ surface.axes.T, dst_pos @ surface.axes.T
    estimate = estimate_pairs(src_pos, dst_pos, radius, src.manifold, box)
    if estimate > max_edges:
        gigabytes = estimate * (8 * basis.kernel_size + 24) / 1e9
        raise ValueError(
            f"{radius_name}={radius:g} gives about {estimate:.3g} kernel edges (pairs of the "
            f"{dst_pos.shape[0]} dst and {src_pos.shape[0]} src points within the radius), "
            f"about {gigabytes:.3g} GB of memory while building; this is above "
            f"{max_edges_name}={max_edges:g}. Use a smaller {radius_name}, or raise "
            f"{max_edges_name} to build it anyway")
    names = (radius_name, _cloud_description(dst))
    return _build(src, dst, src_pos, dst_pos, weights, basis, radius, normalization,
                  differential, box, dtype, allow_empty, surface, names)


def _cloud_description(cloud: PointCloud) -> str:
    shape = getattr(cloud, "grid_shape", None)
    if shape is not None:
        return f"{' x '.join(str(int(n)) for n in shape)} grid"
    return f"{cloud.num_nodes}-point cloud"


def _build(src, dst, src_pos, dst_pos, weights, basis, radius, normalization, differential,
           box, dtype, allow_empty=False, surface=None,
           names=("radius", "cloud")) -> DiscoKernel:
    n_src, n_dst = src_pos.shape[0], dst_pos.shape[0]
    dst_index, src_index = radius_pairs(src_pos, dst_pos, radius, src.manifold, box)
    counts = np.bincount(dst_index, minlength=n_dst)
    empty = counts == 0
    if empty.any() and (not allow_empty or empty.all()):
        i = int(np.argmax(counts == 0))
        raise ValueError(
            f"{names[0]}={radius:g} is too small: dst point index {i} ({dst.pos[i].tolist()}) "
            f"has no src point within the radius ({int((counts == 0).sum())} such points)"
        )
    frame = sphere_frame_angles(dst) if src.manifold == "sphere" else None
    if surface is not None and surface.kind == "surface":
        frame = (surface.e1, surface.e2)

    k = basis.kernel_size
    n_edges = dst_index.shape[0]
    values = np.empty((n_edges, k), dtype=np.float64)
    values_t, weights_t = torch.from_numpy(values), torch.from_numpy(weights)  # shared memory
    # Differential kernels also need each edge's offset in the local frame, in radius units.
    tangent_dim = (2 if src.manifold == "sphere" or surface is not None else
                   src_pos.shape[1]) if differential else 0
    tangent = np.empty((n_edges, tangent_dim)) if differential else None
    rho_all = np.empty(n_edges) if differential else None
    for start in range(0, n_edges, EDGE_CHUNK):
        stop = min(start + EDGE_CHUNK, n_edges)
        i, j = dst_index[start:stop], src_index[start:stop]
        chunk_frame = None if frame is None else (frame[0][i], frame[1][i])
        r, phi = local_polar(src_pos[j], dst_pos[i], src.manifold, box, chunk_frame)
        rho = np.minimum(r / radius, 1.0)
        # a point and its own copies (the poles of an equiangular grid) are at distance 0:
        # round-off of the frame rotation must not give them an angle
        centre = rho < 1e-12
        rho, phi = np.where(centre, 0.0, rho), np.where(centre, 0.0, phi)
        psi = basis(torch.from_numpy(rho), torch.from_numpy(phi))
        torch.mul(psi, weights_t[j][:, None], out=values_t[start:stop])  # multi-threaded
        if differential:
            rho_all[start:stop] = rho
            if tangent_dim == 3:
                tangent[start:stop] = periodic_offsets(src_pos[j] - dst_pos[i], box) / radius
            elif tangent_dim == 2:
                tangent[start:stop] = np.stack([rho * np.cos(phi), rho * np.sin(phi)], 1)
            else:
                tangent[start:stop, 0] = np.where(phi > 1.0, -rho, rho)

    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])  # edges are sorted by dst
    if normalization != "none":
        if empty.any():  # reduceat cannot express empty segments
            norms = torch.zeros(n_dst, k, dtype=torch.float64).index_add_(
                0, torch.from_numpy(dst_index), values_t.abs()).numpy()
        else:
            norms = np.add.reduceat(np.abs(values), starts, axis=0)  # [n_dst, K]
        divisor = normalization_divisor(torch.from_numpy(norms[~empty]), float(weights.sum()),
                                        normalization)
        if normalization == "mean":
            values_t.div_(divisor)
        else:
            per_edge = norms[dst_index]
            values = np.divide(values, per_edge, out=np.zeros_like(values), where=per_edge > 0)

    if differential:
        try:
            values = _linear_consistency(values, tangent, rho_all, weights[src_index],
                                         dst_index, starts, basis, tangent_dim)
        except _NotSpanning as bad:
            i = bad.index
            nearest = _nearest_other(src_pos, dst_pos[i], src.manifold, box)
            raise ValueError(
                f"{names[0]}={radius:g} is too small for a differential kernel on this "
                f"{names[1]}: the neighbours of dst point index {i} ({dst.pos[i].tolist()}) "
                f"within the radius do not span its {tangent_dim} directions (its nearest "
                f"other point is {nearest:.3g} away); use a larger {names[0]} (a few times "
                f"that distance) or a finer {names[1].split()[-1]}") from None
        # Zero-sum: subtract (sum_j values_ij) v_i, i.e. add -row_sum on the diagonal.
        row_sums = np.add.reduceat(values, starts, axis=0)
        diagonal = np.flatnonzero(dst_index == src_index)
        has_diag = np.zeros(n_dst, dtype=bool)
        has_diag[dst_index[diagonal]] = True
        values[diagonal] -= row_sums[dst_index[diagonal]]
        missing = np.flatnonzero(~has_diag)
        if missing.size:  # cannot happen for src = dst (distance 0 is within any radius)
            raise ValueError(f"dst point index {int(missing[0])} is missing from src")
        values /= radius

    kernel = DiscoKernel(
        edge_index=torch.from_numpy(np.stack([src_index, dst_index])),
        edge_values=torch.from_numpy(values).to(dtype),
    )
    kernel.num_src_nodes = n_src
    kernel.num_dst_nodes = n_dst
    kernel.num_nodes = n_dst
    kernel.radius = radius
    kernel.normalization = normalization
    kernel.differential = differential
    kernel.manifold = src.manifold
    kernel.basis = repr(basis)
    # which clouds the kernel belongs to: layers refuse it for any other geometry
    kernel.src_fingerprint = geometry_fingerprint(src)
    kernel.dst_fingerprint = kernel.src_fingerprint if dst is src else geometry_fingerprint(dst)
    return kernel


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


def _linear_consistency(values, tangent, rho, src_weights, dst_index, starts, basis, dim):
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
    moments = basis_first_moments(basis, dim).numpy()  # [K, dim]
    discrete = np.add.reduceat(values[:, :, None] * tangent[:, None, :], starts, axis=0)
    b = src_weights * (1.0 - rho)
    gram = np.add.reduceat(b[:, None, None] * tangent[:, :, None] * tangent[:, None, :],
                           starts, axis=0)  # [N, dim, dim]
    scale = np.trace(gram, axis1=1, axis2=2)
    eig = np.linalg.eigvalsh(gram)
    bad = eig[:, 0] <= 1e-10 * np.maximum(scale, 1e-300)
    if bad.any():
        raise _NotSpanning(int(np.argmax(bad)))
    rhs = np.transpose(moments[None, :, :] - discrete, (0, 2, 1))  # [N, dim, K]
    coef = np.linalg.solve(gram, rhs)  # [N, dim, K]
    return values + b[:, None] * np.einsum("ed,edk->ek", tangent, coef[dst_index])
