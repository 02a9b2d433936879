"""Quadrature-weighted L^p and H^1 errors on point clouds, grids and sphere grids.

Every error is an integral approximated with the quadrature weights of the
discretization, so the value does not depend on how the domain was sampled:

    ||e||_p = ( sum_i w_i |e(x_i)|^p )^(1/p)

Two layouts are understood (``layout="auto"`` picks by the number of dimensions):

- ``"points"``: fields ``[N, C]`` (or ``[N]``) on one point cloud, or on a PyG
  batch of clouds with the batch vector ``batch [N]`` (graph index of each
  point); ``weights [N]`` are the clouds' quadrature weights. Errors are computed
  per graph (per-graph relative error), then reduced over graphs.
- ``"grid"``: fields ``[B, C, *spatial]`` on a regular grid (1 to 3 axes) or on a
  latitude-longitude sphere grid ``[B, C, nlat, nlon]``; ``weights`` broadcast to
  ``[*spatial]`` (or ``[B, *spatial]``). Without weights they come from the grid:
  the trapezoid / periodic rule of :func:`geo_neuralop.geometry.regular_grid` on
  ``domain`` (unit cube by default), or, when ``sphere`` names a sphere grid, the
  solid angles of :func:`geo_neuralop.geometry.sphere_grid`.

Norms are per channel; the *total* norm sums the integrals over channels before
the root (``||e||^p = sum_c ||e_c||^p``). Relative errors divide the error norm by
the target norm of the same sample (and channel), so each sample counts equally.

H^1 errors add the gradient: ``||e||_{H1}^2 = ||e||^2 + ||grad e||^2`` (or the
seminorm ``||grad e||^2`` alone). Gradients come from, in order of preference,

1. gradient fields given by the caller (``pred_grad``, ``target_grad``; shape
   ``[N, C, d]`` for points, ``[B, C, d, *spatial]`` for grids), e.g. analytic
   gradients or a model's own derivative outputs;
2. on a sphere grid (``sphere="equiangular"`` or ``"legendre-gauss"``), the
   spherical harmonic transform (torch-harmonics): ``||grad f||^2 =
   sum_lm l (l + 1) |f_lm|^2`` on the unit sphere;
3. on a regular grid, second-order finite differences with the physical spacing
   of ``domain`` (central in the interior, one-sided second order at the edges of
   non-periodic axes, wrapped on periodic axes).

All sums are carried out in at least float32, so the losses are safe under
mixed-precision autocast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from geo_neuralop.geometry.grids import axis_nodes_and_weights
from geo_neuralop.geometry.sphere import SPHERE_GRIDS, colatitude_nodes_and_weights

LAYOUTS = ("auto", "points", "grid")
REDUCTIONS = ("mean", "sum", "none")

Domain = Sequence[tuple[float, float]] | tuple[float, float] | None

# --------------------------------------------------------------------------------------
# quadrature weights of grids
# --------------------------------------------------------------------------------------


def _normalize_domain(domain: Domain, ndim: int) -> tuple[tuple[float, float], ...]:
    if domain is None:
        return ((0.0, 1.0),) * ndim
    if len(domain) == 2 and all(isinstance(v, (int, float)) for v in domain):
        domain = [tuple(domain)] * ndim  # type: ignore[list-item]
    out = tuple((float(lo), float(hi)) for lo, hi in domain)  # type: ignore[misc]
    if len(out) != ndim:
        raise ValueError(f"domain has {len(out)} axes but the grid has {ndim} spatial axes")
    for axis, (lo, hi) in enumerate(out):
        if not hi > lo:
            raise ValueError(f"domain[{axis}] = ({lo}, {hi}) must have hi > lo")
    return out


def _normalize_periodic(periodic: bool | Sequence[bool], ndim: int) -> tuple[bool, ...]:
    if isinstance(periodic, bool):
        return (periodic,) * ndim
    out = tuple(bool(p) for p in periodic)
    if len(out) != ndim:
        raise ValueError(f"periodic has {len(out)} entries but the grid has {ndim} spatial axes")
    return out


def grid_quadrature_weights(
    shape: Sequence[int],
    domain: Domain = None,
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
    dom = _normalize_domain(domain, ndim)
    per = _normalize_periodic(periodic, ndim)
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


def grid_spacings(
    shape: Sequence[int], domain: Domain = None, periodic: bool | Sequence[bool] = False
) -> tuple[float, ...]:
    """Physical node spacing of each axis: ``L / n`` if periodic, else ``L / (n - 1)``."""
    shape = tuple(int(n) for n in shape)
    dom = _normalize_domain(domain, len(shape))
    per = _normalize_periodic(periodic, len(shape))
    out = []
    for axis, (n, (lo, hi), p) in enumerate(zip(shape, dom, per, strict=True)):
        if n < (1 if p else 2):
            raise ValueError(f"grid axis {axis} has {n} points, too few for a spacing")
        out.append((hi - lo) / (n if p else n - 1))
    return tuple(out)


# --------------------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------------------


def grid_gradient(
    x: torch.Tensor, domain: Domain = None, periodic: bool | Sequence[bool] = False
) -> torch.Tensor:
    """Second-order finite-difference gradient of fields on a regular grid.

    Parameters
    ----------
    x : torch.Tensor, shape [B, C, *spatial]
        Fields on a grid with 1 to 3 spatial axes.
    domain, periodic
        As in :func:`grid_quadrature_weights`; they fix the physical spacing.

    Returns
    -------
    torch.Tensor, shape [B, C, d, *spatial]
        ``d = len(spatial)`` partial derivatives (units of x per unit length):
        central differences inside, second-order one-sided differences at the
        ends of non-periodic axes (at least 3 points needed), wrapped central
        differences on periodic axes.
    """
    spatial = tuple(x.shape[2:])
    ndim = len(spatial)
    if x.dim() < 3 or ndim > 3:
        raise ValueError(f"x must have shape [B, C, *spatial] with 1-3 spatial axes, "
                         f"got {tuple(x.shape)}")
    per = _normalize_periodic(periodic, ndim)
    h = grid_spacings(spatial, domain, per)
    parts = []
    for axis in range(ndim):
        dim = 2 + axis
        if per[axis]:
            parts.append((x.roll(-1, dim) - x.roll(1, dim)) / (2.0 * h[axis]))
        else:
            if spatial[axis] < 3:
                raise ValueError(
                    f"finite differences need at least 3 points on non-periodic axis {axis}, "
                    f"got {spatial[axis]}"
                )
            parts.append(torch.gradient(x, spacing=h[axis], dim=dim, edge_order=2)[0])
    return torch.stack(parts, dim=2)


_SHT_CACHE: dict[tuple, nn.Module] = {}


def _sht(nlat: int, nlon: int, grid: str, dtype: torch.dtype, device: torch.device) -> nn.Module:
    key = (nlat, nlon, grid, dtype, str(device))
    sht = _SHT_CACHE.get(key)
    if sht is None:
        import torch_harmonics as th

        # Legendre-Gauss quadrature is exact to degree 2 nlat - 1, so every degree below nlat
        # is resolved; Clenshaw-Curtis only to degree nlat - 1, so degrees above about nlat / 2
        # alias (and l (l + 1) amplifies them): keep l < (nlat + 1) // 2 there.
        lmax = nlat if grid == "legendre-gauss" else (nlat + 1) // 2
        mmax = min(lmax, nlon // 2 + 1)
        sht = th.RealSHT(nlat, nlon, lmax=lmax, mmax=mmax, grid=grid, norm="ortho").to(
            device=device, dtype=dtype)
        _SHT_CACHE[key] = sht
    return sht


def sphere_gradient_sq_norm(x: torch.Tensor, grid: str) -> torch.Tensor:
    """``integral |grad f|^2`` over the unit sphere of fields on a lat-lon grid.

    Parameters
    ----------
    x : torch.Tensor, shape [B, C, nlat, nlon]
        Fields on a :func:`geo_neuralop.geometry.sphere_grid` (north to south).
    grid : {"equiangular", "legendre-gauss"}

    Returns
    -------
    torch.Tensor, shape [B, C]
        ``sum_{l,m} l (l + 1) |f_lm|^2`` with orthonormal real-field spherical
        harmonic coefficients (m > 0 counted twice), i.e. the squared L2 norm of
        the surface gradient (per steradian units of x squared).

    Notes
    -----
    Legendre-Gauss grids resolve degrees ``l < nlat`` exactly. On equiangular
    grids degrees ``l < (nlat + 1) / 2`` are used, the band whose coefficients
    Clenshaw-Curtis quadrature computes without aliasing: exact for fields of
    lower degree, and converging as the grid is refined for smooth fields.
    """
    if grid not in SPHERE_GRIDS:
        raise ValueError(f"sphere grid must be one of {SPHERE_GRIDS}, got {grid!r}")
    if x.dim() != 4:
        raise ValueError(f"sphere fields must have shape [B, C, nlat, nlon], got {tuple(x.shape)}")
    nlat, nlon = x.shape[-2:]
    dtype = x.dtype if x.dtype == torch.float64 else torch.float32
    coeffs = _sht(int(nlat), int(nlon), grid, dtype, x.device)(x.to(dtype))
    lmax, mmax = coeffs.shape[-2:]
    ell = torch.arange(lmax, device=x.device, dtype=dtype)
    mult = torch.full((mmax,), 2.0, device=x.device, dtype=dtype)
    mult[0] = 1.0
    factor = (ell * (ell + 1.0))[:, None] * mult
    return (coeffs.abs() ** 2 * factor).sum(dim=(-2, -1))


# --------------------------------------------------------------------------------------
# integrals per sample and channel
# --------------------------------------------------------------------------------------


_WEIGHT_CACHE: dict[tuple, torch.Tensor] = {}
_WEIGHT_CACHE_SIZE = 16


def _default_grid_weights(
    spatial: tuple[int, ...],
    domain: Domain,
    periodic: bool | Sequence[bool],
    sphere: str | None,
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """Grid or sphere weights ``[*spatial]``, cached (losses are called every step)."""
    if sphere is not None:
        key: tuple = ("sphere", spatial, sphere, dtype, str(device))
    else:
        key = ("grid", spatial, _normalize_domain(domain, len(spatial)),
               _normalize_periodic(periodic, len(spatial)), dtype, str(device))
    w = _WEIGHT_CACHE.get(key)
    if w is None:
        if sphere is not None:
            w = sphere_quadrature_weights(*spatial, grid=sphere, dtype=dtype, device=device)
        else:
            w = grid_quadrature_weights(spatial, domain, periodic, dtype=dtype, device=device)
        if len(_WEIGHT_CACHE) >= _WEIGHT_CACHE_SIZE:
            _WEIGHT_CACHE.pop(next(iter(_WEIGHT_CACHE)))
        _WEIGHT_CACHE[key] = w
    return w


def resolve_layout(pred: torch.Tensor, layout: str = "auto") -> str:
    """``"points"`` for ``[N]``/``[N, C]`` fields, ``"grid"`` for ``[B, C, *spatial]``."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout != "auto":
        return layout
    return "points" if pred.dim() <= 2 else "grid"


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


class _Quadrature:
    """Integrates non-negative point values per sample and channel: ``[..] -> [B, C]``."""

    def __init__(
        self,
        ref: torch.Tensor,
        weights: torch.Tensor | None,
        layout: str,
        batch: torch.Tensor | None,
        num_graphs: int | None,
        domain: Domain,
        periodic: bool | Sequence[bool],
        sphere: str | None,
    ) -> None:
        self.layout = layout
        dtype = _compute_dtype(ref)
        device = ref.device
        if layout == "points":
            if ref.dim() not in (1, 2):
                raise ValueError(f"point fields must have shape [N] or [N, C], got "
                                 f"{tuple(ref.shape)}")
            n = ref.shape[0]
            if batch is None:
                batch_index = torch.zeros(n, dtype=torch.long, device=device)
                num_graphs = 1
            else:
                if batch.shape != (n,):
                    raise ValueError(f"batch must have shape [{n}], got {tuple(batch.shape)}")
                batch_index = batch.to(device=device, dtype=torch.long)
                if num_graphs is None:
                    num_graphs = int(batch_index.max()) + 1 if n > 0 else 0
            if weights is None:
                counts = torch.zeros(num_graphs, dtype=dtype, device=device)
                counts.index_add_(0, batch_index, torch.ones(n, dtype=dtype, device=device))
                w = 1.0 / counts[batch_index]
            else:
                if weights.shape != (n,):
                    raise ValueError(f"weights must have shape [{n}] (one per point), got "
                                     f"{tuple(weights.shape)}")
                w = weights.to(device=device, dtype=dtype)
            self.batch = batch_index
            self.num_graphs = int(num_graphs)
            self.w = w
        elif layout == "grid":
            if ref.dim() < 3 or ref.dim() > 5:
                raise ValueError(f"grid fields must have shape [B, C, *spatial] with 1-3 "
                                 f"spatial axes, got {tuple(ref.shape)}")
            spatial = tuple(ref.shape[2:])
            if weights is None:
                if sphere is not None and len(spatial) != 2:
                    raise ValueError(f"sphere grid fields need 2 spatial axes (nlat, nlon), "
                                     f"got shape {tuple(ref.shape)}")
                w = _default_grid_weights(spatial, domain, periodic, sphere, dtype, device)[None]
            else:
                w = weights.to(device=device, dtype=dtype)
                if tuple(w.shape) == spatial:
                    w = w[None]
                elif not (w.dim() == len(spatial) + 1 and tuple(w.shape[1:]) == spatial
                          and w.shape[0] in (1, ref.shape[0])):
                    raise ValueError(
                        f"grid weights must have shape {list(spatial)} or "
                        f"[{ref.shape[0]}, {', '.join(map(str, spatial))}], got "
                        f"{list(weights.shape)}"
                    )
            self.w = w[:, None]  # [B or 1, 1, *spatial]
        else:  # pragma: no cover - resolve_layout rejects others
            raise ValueError(f"unknown layout {layout!r}")

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        """Integrate ``values`` (layout of the fields) to ``[B, C]``."""
        if self.layout == "points":
            v = values if values.dim() == 2 else values[:, None]
            out = torch.zeros(self.num_graphs, v.shape[1], dtype=v.dtype, device=v.device)
            return out.index_add_(0, self.batch, self.w[:, None] * v)
        spatial_dims = tuple(range(2, values.dim()))
        return (self.w * values).sum(dim=spatial_dims)


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(f"pred and target must be tensors, got {type(pred).__name__} and "
                        f"{type(target).__name__}")
    if pred.shape != target.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} but target has shape "
                         f"{tuple(target.shape)}")


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return values.mean(dim=0)
    if reduction == "sum":
        return values.sum(dim=0)
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _combine(
    err: torch.Tensor,
    ref: torch.Tensor,
    p: float,
    relative: bool,
    per_channel: bool,
    reduction: str,
    eps: float,
) -> torch.Tensor:
    """Turn integrals ``[B, C]`` of |e|^p and |y|^p into (relative) norms, reduced."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not per_channel:
        err = err.sum(dim=1)
        ref = ref.sum(dim=1)
    value = err.clamp_min(0.0) ** (1.0 / p)
    if relative:
        value = value / (ref.clamp_min(0.0) ** (1.0 / p)).clamp_min(eps)
    return _reduce(value, reduction)


def _integrals_lp(
    pred: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None,
    p: float,
    layout: str,
    batch: torch.Tensor | None,
    num_graphs: int | None,
    domain: Domain,
    periodic: bool | Sequence[bool],
    sphere: str | None,
) -> tuple[torch.Tensor, torch.Tensor, _Quadrature]:
    _check_pair(pred, target)
    layout = resolve_layout(pred, layout)
    quad = _Quadrature(pred, weights, layout, batch, num_graphs, domain, periodic, sphere)
    dtype = _compute_dtype(pred)
    pred, target = pred.to(dtype), target.to(dtype)
    diff = pred - target
    if p == 2.0:
        return quad(diff * diff), quad(target * target), quad
    return quad(diff.abs() ** p), quad(target.abs() ** p), quad


def _gradient_integrals(
    pred: torch.Tensor,
    target: torch.Tensor,
    quad: _Quadrature,
    pred_grad: torch.Tensor | None,
    target_grad: torch.Tensor | None,
    domain: Domain,
    periodic: bool | Sequence[bool],
    sphere: str | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, C]`` integrals of |grad(pred - target)|^2 and |grad target|^2."""
    dtype = _compute_dtype(pred)
    if (pred_grad is None) != (target_grad is None):
        raise ValueError("pred_grad and target_grad must be given together (or neither)")
    if pred_grad is not None:
        _check_pair(pred_grad, target_grad)
        if quad.layout == "points":
            c = 1 if pred.dim() == 1 else pred.shape[1]
            if pred_grad.dim() != 3 or pred_grad.shape[:2] != (pred.shape[0], c):
                raise ValueError(f"point gradients must have shape [N, C, d] = "
                                 f"[{pred.shape[0]}, {c}, d], got {tuple(pred_grad.shape)}")
            reduce_dim = 2
        else:
            if (pred_grad.dim() != pred.dim() + 1 or pred_grad.shape[:2] != pred.shape[:2]
                    or pred_grad.shape[3:] != pred.shape[2:]):
                raise ValueError(f"grid gradients must have shape [B, C, d, *spatial] for "
                                 f"fields {tuple(pred.shape)}, got {tuple(pred_grad.shape)}")
            reduce_dim = 2
        pg, tg = pred_grad.to(dtype), target_grad.to(dtype)
        dg = pg - tg
        return quad((dg * dg).sum(reduce_dim)), quad((tg * tg).sum(reduce_dim))
    if quad.layout == "points":
        raise ValueError("H1 errors on point clouds need gradient fields: pass pred_grad and "
                         "target_grad of shape [N, C, d]")
    pred, target = pred.to(dtype), target.to(dtype)
    if sphere is not None:
        return (sphere_gradient_sq_norm(pred - target, sphere),
                sphere_gradient_sq_norm(target, sphere))
    de = grid_gradient(pred - target, domain, periodic)
    dy = grid_gradient(target, domain, periodic)
    return quad((de * de).sum(2)), quad((dy * dy).sum(2))


# --------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------


def lp_error(
    pred: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    p: float = 2.0,
    relative: bool = True,
    per_channel: bool = False,
    reduction: str = "mean",
    layout: str = "auto",
    batch: torch.Tensor | None = None,
    num_graphs: int | None = None,
    domain: Domain = None,
    periodic: bool | Sequence[bool] = False,
    sphere: str | None = None,
    eps: float = 1e-12,
) -> torch.Tensor:
    """Quadrature-weighted (relative) L^p error of ``pred`` against ``target``.

    Parameters
    ----------
    pred, target : torch.Tensor
        ``[N]`` / ``[N, C]`` on points or ``[B, C, *spatial]`` on a grid (see the
        module docstring).
    weights : torch.Tensor, optional
        Quadrature weights: ``[N]`` for points, ``[*spatial]`` or ``[B, *spatial]``
        for grids. Default: ``1 / N_graph`` per point, or the grid's rule.
    p : float
        Exponent, at least 1.
    relative : bool
        Divide by the target's norm (per sample, and per channel if
        ``per_channel``).
    per_channel : bool
        Return one value per channel (last axis ``C``) instead of the total.
    reduction : {"mean", "sum", "none"}
        Over samples (graphs of a PyG batch, or the grid batch axis ``B``).
    layout : {"auto", "points", "grid"}
    batch : torch.Tensor, shape [N], optional
        Graph index of each point of a PyG batch.
    num_graphs : int, optional
        Number of graphs (default ``batch.max() + 1``).
    domain, periodic : optional
        Grid extent and periodicity, for grid weights when ``weights`` is None.
    sphere : {"equiangular", "legendre-gauss"}, optional
        The grid is a latitude-longitude sphere grid of this kind.
    eps : float
        Floor of the target norm in relative errors.

    Returns
    -------
    torch.Tensor
        Shape ``[]`` (``[C]`` per channel) after "mean"/"sum"; ``[B]`` (``[B, C]``)
        with "none". Absolute errors are in the units of the fields times
        ``volume^(1/p)``; relative errors are unitless.

    Examples
    --------
    >>> import math, torch
    >>> x = torch.linspace(0, 2 * math.pi, 65)[:-1]
    >>> target = torch.sin(x)[None, None]            # [B=1, C=1, 64], periodic grid
    >>> pred = target + 0.1 * torch.cos(x)[None, None]
    >>> round(float(lp_error(pred, target, periodic=True)), 6)
    0.1
    """
    if not p >= 1.0:
        raise ValueError(f"p must be at least 1, got {p}")
    err, ref, _ = _integrals_lp(pred, target, weights, float(p), layout, batch, num_graphs,
                                domain, periodic, sphere)
    return _combine(err, ref, float(p), relative, per_channel, reduction, eps)


def h1_error(
    pred: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    relative: bool = True,
    seminorm: bool = False,
    per_channel: bool = False,
    reduction: str = "mean",
    layout: str = "auto",
    batch: torch.Tensor | None = None,
    num_graphs: int | None = None,
    pred_grad: torch.Tensor | None = None,
    target_grad: torch.Tensor | None = None,
    domain: Domain = None,
    periodic: bool | Sequence[bool] = False,
    sphere: str | None = None,
    eps: float = 1e-12,
) -> torch.Tensor:
    """Quadrature-weighted (relative) H^1 error: ``sqrt(||e||^2 + ||grad e||^2)``.

    Parameters are those of :func:`lp_error` (with ``p = 2``), plus

    seminorm : bool
        Use only ``||grad e||`` (and ``||grad target||`` for relative errors).
    pred_grad, target_grad : torch.Tensor, optional
        Gradient fields, ``[N, C, d]`` on points (required there) or
        ``[B, C, d, *spatial]`` on grids. On grids without them, gradients come
        from the sphere harmonic transform (``sphere`` given) or from finite
        differences with the spacing of ``domain``.

    Returns
    -------
    torch.Tensor
        As :func:`lp_error`.
    """
    err, ref, quad = _integrals_lp(pred, target, weights, 2.0, layout, batch, num_graphs,
                                   domain, periodic, sphere)
    gerr, gref = _gradient_integrals(pred, target, quad, pred_grad, target_grad, domain,
                                     periodic, sphere)
    if seminorm:
        err, ref = gerr, gref
    else:
        err, ref = err + gerr, ref + gref
    return _combine(err, ref, 2.0, relative, per_channel, reduction, eps)


def error_integrals(
    pred: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    gradients: bool = False,
    layout: str = "auto",
    batch: torch.Tensor | None = None,
    num_graphs: int | None = None,
    pred_grad: torch.Tensor | None = None,
    target_grad: torch.Tensor | None = None,
    domain: Domain = None,
    periodic: bool | Sequence[bool] = False,
    sphere: str | None = None,
) -> dict[str, torch.Tensor]:
    """Squared-norm integrals per sample and channel, the building blocks of all errors.

    Returns
    -------
    dict of torch.Tensor, each shape [B, C]
        ``"err"`` = integral of ``|pred - target|^2``, ``"ref"`` = integral of
        ``|target|^2``; with ``gradients=True`` also ``"grad_err"`` and
        ``"grad_ref"``, the same for the gradients.
    """
    err, ref, quad = _integrals_lp(pred, target, weights, 2.0, layout, batch, num_graphs,
                                   domain, periodic, sphere)
    out = {"err": err, "ref": ref}
    if gradients:
        out["grad_err"], out["grad_ref"] = _gradient_integrals(
            pred, target, quad, pred_grad, target_grad, domain, periodic, sphere
        )
    return out


# --------------------------------------------------------------------------------------
# loss modules
# --------------------------------------------------------------------------------------


def _check_common(reduction: str, layout: str, sphere: str | None) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if sphere is not None and sphere not in SPHERE_GRIDS:
        raise ValueError(f"sphere must be None or one of {SPHERE_GRIDS}, got {sphere!r}")


def _domain_config(domain: Domain) -> Any:
    if domain is None:
        return None
    if len(domain) == 2 and all(isinstance(v, (int, float)) for v in domain):
        return [float(domain[0]), float(domain[1])]  # type: ignore[arg-type]
    return [[float(lo), float(hi)] for lo, hi in domain]  # type: ignore[misc]


class LpLoss(nn.Module):
    """Relative (default) or absolute quadrature-weighted L^p error as a training loss.

    Parameters
    ----------
    p : float
        Exponent (default 2).
    relative : bool
        Relative error per sample (default) or absolute error.
    reduction : {"mean", "sum", "none"}
        Over samples: graphs of a PyG batch, or the batch axis of grid fields.
    layout : {"auto", "points", "grid"}
    domain, periodic, sphere
        Describe grid fields when no weights are passed (see :func:`lp_error`).
    eps : float
        Floor of the target norm.

    Shapes
    ------
    forward(pred, target, weights=None, batch=None, num_graphs=None): fields as in
    :func:`lp_error`; returns ``[]`` (or ``[B]`` with ``reduction="none"``).

    Examples
    --------
    >>> import torch
    >>> loss = LpLoss()
    >>> y = torch.ones(5, 2)                        # one cloud, 5 points, 2 channels
    >>> float(loss(2 * y, y, weights=torch.full((5,), 0.2)))
    1.0
    """

    def __init__(
        self,
        p: float = 2.0,
        relative: bool = True,
        reduction: str = "mean",
        layout: str = "auto",
        domain: Domain = None,
        periodic: bool | Sequence[bool] = False,
        sphere: str | None = None,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        if not p >= 1.0:
            raise ValueError(f"p must be at least 1, got {p}")
        _check_common(reduction, layout, sphere)
        self.p, self.relative, self.reduction, self.layout = float(p), relative, reduction, layout
        self.domain, self.periodic, self.sphere, self.eps = domain, periodic, sphere, eps
        self.config = {
            "p": float(p), "relative": bool(relative), "reduction": reduction, "layout": layout,
            "domain": _domain_config(domain),
            "periodic": periodic if isinstance(periodic, bool) else [bool(v) for v in periodic],
            "sphere": sphere, "eps": float(eps),
        }

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        weights: torch.Tensor | None = None,
        batch: torch.Tensor | None = None,
        num_graphs: int | None = None,
    ) -> torch.Tensor:
        return lp_error(
            pred, target, weights, p=self.p, relative=self.relative, reduction=self.reduction,
            layout=self.layout, batch=batch, num_graphs=num_graphs, domain=self.domain,
            periodic=self.periodic, sphere=self.sphere, eps=self.eps,
        )

    def extra_repr(self) -> str:
        return f"p={self.p}, relative={self.relative}, reduction={self.reduction!r}"


class H1Loss(nn.Module):
    """Relative (default) or absolute quadrature-weighted H^1 error as a training loss.

    Parameters
    ----------
    relative, reduction, layout, domain, periodic, sphere, eps
        As in :class:`LpLoss`. ``domain`` and ``periodic`` also set the physical
        spacing of finite differences on grids (default: unit cube, so pass the
        true domain for physically scaled gradients).
    seminorm : bool
        Use only the gradient part.

    Shapes
    ------
    forward(pred, target, weights=None, batch=None, num_graphs=None, pred_grad=None,
    target_grad=None): as :func:`h1_error`.
    """

    def __init__(
        self,
        relative: bool = True,
        seminorm: bool = False,
        reduction: str = "mean",
        layout: str = "auto",
        domain: Domain = None,
        periodic: bool | Sequence[bool] = False,
        sphere: str | None = None,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        _check_common(reduction, layout, sphere)
        self.relative, self.seminorm, self.reduction, self.layout = (
            relative, seminorm, reduction, layout)
        self.domain, self.periodic, self.sphere, self.eps = domain, periodic, sphere, eps
        self.config = {
            "relative": bool(relative), "seminorm": bool(seminorm), "reduction": reduction,
            "layout": layout, "domain": _domain_config(domain),
            "periodic": periodic if isinstance(periodic, bool) else [bool(v) for v in periodic],
            "sphere": sphere, "eps": float(eps),
        }

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        weights: torch.Tensor | None = None,
        batch: torch.Tensor | None = None,
        num_graphs: int | None = None,
        pred_grad: torch.Tensor | None = None,
        target_grad: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return h1_error(
            pred, target, weights, relative=self.relative, seminorm=self.seminorm,
            reduction=self.reduction, layout=self.layout, batch=batch, num_graphs=num_graphs,
            pred_grad=pred_grad, target_grad=target_grad, domain=self.domain,
            periodic=self.periodic, sphere=self.sphere, eps=self.eps,
        )

    def extra_repr(self) -> str:
        return f"relative={self.relative}, seminorm={self.seminorm}, reduction={self.reduction!r}"
