"""Precomputed sparse DISCO kernel matrices between two point clouds.

``disco_kernel(src, dst, ...)`` evaluates every basis function ``psi_k`` at every
pair ``(x_i in dst, x_j in src)`` closer than ``radius``, in the local polar frame
of ``x_i``, folds in the source quadrature weight ``w_j`` and a normalization, and
returns an edge list (dst <- src) with an ``E x K`` value matrix. A DISCO layer
then computes

    y_k(x_i) = sum_j psi_k(x_i, x_j) w_j v(x_j)     (one sparse product for all k)

and contracts ``y`` with its learned weights. Everything here depends on geometry
only: it is computed once per (src, dst) pair, cached, and travels with the data
as a PyG graph; batches of different geometries are block-diagonal.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.kernels.basis import FilterBasis, get_basis
from geo_neuralop.kernels.neighbors import periodic_offsets, radius_pairs

NORMALIZATIONS = ("none", "mean", "nodal")

#: Regularization of the "mean" normalization, in units where the source weights sum to one
#: (torch-harmonics' value, so that kernels agree with it where basis norms are small).
MEAN_NORMALIZATION_EPS = 1e-9

#: Edges evaluated at once while building a kernel (bounds peak memory).
EDGE_CHUNK = 1 << 20

_CACHE: OrderedDict[tuple, DiscoKernel] = OrderedDict()
_CACHE_SIZE = 16


class DiscoKernel(Data):
    """A sparse DISCO kernel: edges dst <- src with ``K`` basis values each.

    Attributes
    ----------
    edge_index : torch.Tensor, shape [2, E], long
        Row 0: source point index; row 1: destination point index (PyG's
        source-to-target convention). Sorted by destination, then source.
    edge_values : torch.Tensor, shape [E, K]
        ``psi_k(x_dst, x_src) * w_src``, normalized (and, for differential
        kernels, with the zero-sum correction on the diagonal and the
        ``1 / radius`` scale included).
    num_src_nodes, num_dst_nodes : int
        Point counts (tensors of per-sample counts after batching).
    kernel_size : int
    radius : float
    normalization : str
    differential : bool

    Batching with ``torch_geometric.data.Batch.from_data_list`` offsets the
    source and destination indices separately, which gives the block-diagonal
    kernel of a batch of different geometries.
    """

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "edge_index":
            return torch.tensor([[int(self.num_src_nodes)], [int(self.num_dst_nodes)]])
        return super().__inc__(key, value, *args, **kwargs)

    # --- sizes that work for a single kernel and for a batch --------------------------
    @property
    def total_src(self) -> int:
        """Number of source points (summed over a batch)."""
        n = self.num_src_nodes
        return int(n.sum()) if isinstance(n, torch.Tensor) else int(n)

    @property
    def total_dst(self) -> int:
        """Number of destination points (summed over a batch)."""
        n = self.num_dst_nodes
        return int(n.sum()) if isinstance(n, torch.Tensor) else int(n)

    @property
    def num_basis(self) -> int:
        """K, the number of basis functions (columns of ``edge_values``)."""
        return int(self.edge_values.shape[1])

    def sparse_matrices(
        self, dtype: torch.dtype, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The kernel as CSR matrices, built once per dtype and device and cached.

        Returns
        -------
        matrix : torch.Tensor, sparse CSR, shape [N_dst * K, N_src]
            Row ``i * K + k`` holds ``psi_k(x_i, .) w``.
        matrix_t : torch.Tensor, sparse CSR, shape [N_src, N_dst * K]
            Its transpose (used by the backward pass).
        """
        cache = self.__dict__.setdefault("_sparse_cache", {})
        key = (dtype, str(device), self.edge_values.data_ptr(), self.edge_index.data_ptr())
        if key not in cache:
            cache.clear()
            cache[key] = _csr_pair(
                self.edge_index, self.edge_values, self.total_src, self.total_dst, dtype, device
            )
        return cache[key]


def _csr(rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, shape: tuple[int, int]):
    order = torch.argsort(rows * shape[1] + cols, stable=True)
    rows, cols, vals = rows[order], cols[order], vals[order]
    crow = torch.zeros(shape[0] + 1, dtype=torch.int64, device=rows.device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=shape[0]), 0)
    # 32-bit indices where they fit: the sparse BLAS works on them directly, while 64-bit
    # indices are converted on every product (a copy of the whole index array each call)
    if max(shape) < 2**31 - 1 and len(vals) < 2**31 - 1:
        crow, cols = crow.to(torch.int32), cols.to(torch.int32)
    with warnings.catch_warnings():  # "CSR support is in beta": the ops used here are stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, vals, size=shape, check_invariants=False)


def _csr_pair(edge_index, edge_values, n_src, n_dst, dtype, device):
    k = edge_values.shape[1]
    src, dst = edge_index[0].to(device), edge_index[1].to(device)
    vals = edge_values.to(device=device, dtype=dtype)
    rows = (dst[:, None] * k + torch.arange(k, device=device)).reshape(-1)
    cols = src[:, None].expand(-1, k).reshape(-1)
    vals = vals.reshape(-1)
    nonzero = vals != 0
    rows, cols, vals = rows[nonzero], cols[nonzero], vals[nonzero]
    matrix = _csr(rows, cols, vals, (n_dst * k, n_src))
    matrix_t = _csr(cols, rows, vals, (n_src, n_dst * k))
    return matrix, matrix_t


# --- local coordinates --------------------------------------------------------------------
def sphere_frame_angles(cloud: PointCloud) -> tuple[np.ndarray, np.ndarray]:
    """Colatitude and longitude (radians) of each sphere point, defining its local frame.

    For clouds made by :func:`~geo_neuralop.geometry.sphere_grid` the grid's nominal
    longitudes are used, so the repeated pole points of an equiangular grid keep
    their own frame orientation (as in torch-harmonics, where the kernel of every
    longitude is a rotated copy of the kernel at longitude 0).
    """
    pos = cloud.pos.detach().cpu().double().numpy()
    colat = np.arctan2(np.linalg.norm(pos[:, :2], axis=1), pos[:, 2])
    lon = np.arctan2(pos[:, 1], pos[:, 0])
    shape = getattr(cloud, "grid_shape", None)
    if getattr(cloud, "grid", None) is not None and shape is not None and len(shape) == 2:
        nlat, nlon = shape
        lon = np.tile(2.0 * np.pi * np.arange(nlon) / nlon, nlat)
    return colat, lon


def local_polar(
    src_pos: np.ndarray,
    dst_pos: np.ndarray,
    manifold: str,
    box: Sequence[tuple[float, float] | None] | None = None,
    dst_frame: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Polar coordinates ``(r, phi)`` of each source point in its destination's frame.

    Parameters
    ----------
    src_pos, dst_pos : np.ndarray, shape [E, d]
        Paired positions (one row per edge).
    manifold : {"euclidean", "sphere"}
        Euclidean: offset ``x_src - x_dst`` (minimum image in periodic boxes),
        ``r = |offset|`` and ``phi = atan2(offset_y, offset_x)`` (in 1D ``phi``
        is 0 or pi; in 3D it is the azimuth). Sphere: the destination is
        rotated to the north pole (torch-harmonics' YZY convention), ``r`` is
        the geodesic angle and ``phi`` the longitude of the rotated source.
    box : periodic box per axis, optional
    dst_frame : (colatitude, longitude) per edge, optional
        Frame angles of the destinations on the sphere; default from ``dst_pos``.

    Returns
    -------
    r, phi : np.ndarray, shape [E]
        ``r`` in length units (radians on the sphere), ``phi`` in [0, 2 pi).
    """
    if manifold == "sphere":
        if dst_frame is None:
            colat = np.arctan2(np.linalg.norm(dst_pos[:, :2], axis=1), dst_pos[:, 2])
            lon = np.arctan2(dst_pos[:, 1], dst_pos[:, 0])
        else:
            colat, lon = dst_frame
        ct, st, cp, sp = np.cos(colat), np.sin(colat), np.cos(lon), np.sin(lon)
        vx, vy, vz = src_pos[:, 0], src_pos[:, 1], src_pos[:, 2]
        u = cp * vx + sp * vy
        x = ct * u - st * vz
        y = -sp * vx + cp * vy
        z = st * u + ct * vz
        r = np.arctan2(np.hypot(x, y), z)
        phi = np.arctan2(y, x)
    else:
        offset = periodic_offsets(src_pos - dst_pos, box)
        r = np.linalg.norm(offset, axis=1)
        if offset.shape[1] == 1:
            phi = np.where(offset[:, 0] < 0, np.pi, 0.0)
        else:
            phi = np.arctan2(offset[:, 1], offset[:, 0])
    phi = np.where(phi < 0.0, phi + 2.0 * np.pi, phi)
    phi = np.where(phi >= 2.0 * np.pi, 0.0, phi)
    return r, phi


# --- construction -------------------------------------------------------------------------
def _periodic_box(cloud: PointCloud) -> list[tuple[float, float] | None] | None:
    periodic = getattr(cloud, "periodic", None)
    domain = getattr(cloud, "domain", None)
    if periodic is None or domain is None or not any(periodic):
        return None
    return [tuple(d) if p else None for d, p in zip(domain, periodic, strict=True)]


def _fingerprint(*arrays: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


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
    cache: bool = True,
    allow_empty: bool = False,
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
    cache : bool
        Reuse a kernel already built for the same geometry and arguments.
    allow_empty : bool
        Let destination points without any source point within the radius
        have an empty row (output zero) instead of raising. Meant for
        encoders onto a latent grid that covers holes of the mesh (the
        cylinder); "mean" normalization then averages over the other points.

    Returns
    -------
    DiscoKernel

    Raises
    ------
    ValueError
        Unknown normalization, non-positive radius, clouds on different
        manifolds or of different dimension, or a destination point with no
        source point within the radius (naming its index).

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
    if isinstance(radius, bool) or not isinstance(radius, (int, float)):
        raise TypeError(f"radius must be a number, got {radius!r}")
    radius = float(radius)
    if not math.isfinite(radius) or radius <= 0:
        raise ValueError(f"radius must be positive and finite, got {radius}")
    if differential and dst is not src and not (
        dst.num_nodes == src.num_nodes and torch.equal(dst.pos, src.pos)
    ):
        raise ValueError("a differential kernel needs dst to be the same cloud as src")
    basis = get_basis(basis, kernel_shape if not isinstance(basis, FilterBasis) else None)
    if box is None and src.manifold == "euclidean":
        box = _periodic_box(src)
    dtype = dtype or torch.get_default_dtype()

    src_pos = src.pos.detach().cpu().double().numpy()
    dst_pos = dst.pos.detach().cpu().double().numpy()
    weights = src.weights.detach().cpu().double().numpy()
    key = None
    if cache:
        frame = sphere_frame_angles(dst) if dst.manifold == "sphere" else ()
        key = (
            _fingerprint(src_pos, weights, dst_pos, *frame),
            repr(basis), radius, normalization, differential,
            None if box is None else tuple(box), dtype, src.manifold, allow_empty,
        )
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]

    if allow_empty and differential:
        raise ValueError("allow_empty cannot be combined with differential=True")
    kernel = _build(src, dst, src_pos, dst_pos, weights, basis, radius, normalization,
                    differential, box, dtype, allow_empty)
    if key is not None:
        _CACHE[key] = kernel
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return kernel


def _build(src, dst, src_pos, dst_pos, weights, basis, radius, normalization, differential,
           box, dtype, allow_empty=False) -> DiscoKernel:
    n_src, n_dst = src_pos.shape[0], dst_pos.shape[0]
    dst_index, src_index = radius_pairs(src_pos, dst_pos, radius, src.manifold, box)
    counts = np.bincount(dst_index, minlength=n_dst)
    empty = counts == 0
    if empty.any() and (not allow_empty or empty.all()):
        i = int(np.argmax(counts == 0))
        raise ValueError(
            f"radius {radius:g} is too small: dst point index {i} ({dst_pos[i]}) has no src "
            f"point within the radius ({int((counts == 0).sum())} such points)"
        )
    frame = sphere_frame_angles(dst) if src.manifold == "sphere" else None

    k = basis.kernel_size
    n_edges = dst_index.shape[0]
    values = np.empty((n_edges, k), dtype=np.float64)
    values_t, weights_t = torch.from_numpy(values), torch.from_numpy(weights)  # shared memory
    # Differential kernels also need each edge's offset in the local frame, in radius units.
    tangent_dim = _tangent_dim(src) if differential else 0
    tangent = np.empty((n_edges, tangent_dim)) if differential else None
    rho_all = np.empty(n_edges) if differential else None
    for start in range(0, n_edges, EDGE_CHUNK):
        stop = min(start + EDGE_CHUNK, n_edges)
        i, j = dst_index[start:stop], src_index[start:stop]
        chunk_frame = None if frame is None else (frame[0][i], frame[1][i])
        r, phi = local_polar(src_pos[j], dst_pos[i], src.manifold, box, chunk_frame)
        rho = np.minimum(r / radius, 1.0)
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
        if normalization == "mean":
            # As torch-harmonics: norms in units where the weights sum to one, plus 1e-9.
            total = weights.sum()
            scale = norms[~empty].mean(axis=0) / total + MEAN_NORMALIZATION_EPS
            values_t.div_(torch.from_numpy(total * scale)[None, :])
        else:
            per_edge = norms[dst_index]
            values = np.divide(values, per_edge, out=np.zeros_like(values), where=per_edge > 0)

    if differential:
        values = _linear_consistency(values, tangent, rho_all, weights[src_index], dst_index,
                                     starts, basis, tangent_dim, dst_pos)
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
    kernel.kernel_size = k
    kernel.radius = radius
    kernel.normalization = normalization
    kernel.differential = differential
    kernel.manifold = src.manifold
    kernel.basis = repr(basis)
    return kernel


def _tangent_dim(cloud: PointCloud) -> int:
    return 2 if cloud.manifold == "sphere" else int(cloud.pos.shape[1])


def _linear_consistency(values, tangent, rho, src_weights, dst_index, starts, basis, dim,
                        dst_pos):
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
    from geo_neuralop.kernels.moments import basis_first_moments

    moments = basis_first_moments(basis, dim).numpy()  # [K, dim]
    discrete = np.add.reduceat(values[:, :, None] * tangent[:, None, :], starts, axis=0)
    b = src_weights * (1.0 - rho)
    gram = np.add.reduceat(b[:, None, None] * tangent[:, :, None] * tangent[:, None, :],
                           starts, axis=0)  # [N, dim, dim]
    scale = np.trace(gram, axis1=1, axis2=2)
    eig = np.linalg.eigvalsh(gram)
    bad = eig[:, 0] <= 1e-10 * np.maximum(scale, 1e-300)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"the radius is too small for a differential kernel: the neighbours of dst point "
            f"index {i} ({dst_pos[i]}) do not span its {dim} directions"
        )
    rhs = np.transpose(moments[None, :, :] - discrete, (0, 2, 1))  # [N, dim, K]
    coef = np.linalg.solve(gram, rhs)  # [N, dim, K]
    return values + b[:, None] * np.einsum("ed,edk->ek", tangent, coef[dst_index])


def clear_kernel_cache() -> None:
    """Forget every cached kernel."""
    _CACHE.clear()
