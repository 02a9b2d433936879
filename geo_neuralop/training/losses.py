"""Quadrature-weighted L^p, H^1 and spectral Sobolev (H^s, e.g. H^-1) errors of fields on point
clouds, grids and sphere grids.

Every error is an integral over the domain, ``||e||_p = (sum_i w_i |e(x_i)|^p)^(1/p)``,
computed by a :class:`~geo_neuralop.geometry.Quadrature` (built from a point cloud
or PyG batch, a :class:`~geo_neuralop.geometry.GridSpec` or a
:class:`~geo_neuralop.geometry.SphereGridSpec`), so its value does not depend on
how the domain was sampled. Norms are per channel; the total norm sums the
channel integrals before the root. Relative errors divide by the target norm of
the same sample. H^1 adds ``||grad e||^2``, from gradient fields the caller gives
or from the quadrature's discretization (finite differences on grids, spherical
harmonics on the sphere). Sums run in at least float32 (safe under autocast).

Sobolev norms of any order ``s`` (:func:`sobolev_error`, :class:`SobolevLoss`; the
negative orders of the Spectral-Refiner, Cao et al. ICLR 2025) are spectral sums,
``||f||_{H^s}^2 = sum_k (1 + lambda_k)^s |f_k|^2`` over an orthonormal eigenbasis of the
Laplacian with eigenvalues ``lambda_k``: on regular grids the Fourier modes of periodic
axes (``lambda = |2 pi k / L|^2``) and the cosines of non-periodic ones (the Neumann
eigenfunctions, ``lambda = (pi k / L)^2``, through the even extension of the samples);
on sphere grids the spherical harmonics (``lambda = l (l + 1)``). At ``s = 0`` they equal
the quadrature's L^2 norm (trapezoid and rectangle rules exactly, the sphere's up to
the degrees the grid resolves). ``s < 0`` weighs low frequencies more: the H^-1 error
of a fine-scale error is small, of a large-scale one about its L^2 size.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from geo_neuralop.geometry.grid_spec import GridSpec, SphereGridSpec
from geo_neuralop.geometry.integration import Quadrature, as_quadrature, compute_dtype
from geo_neuralop.utils.cache import BoundedCache

__all__ = ["REDUCTIONS", "H1Loss", "LpLoss", "SobolevLoss", "error_integrals", "h1_error",
           "lp_error", "sobolev_error", "sobolev_integrals"]

REDUCTIONS = ("mean", "sum", "none")


def _check_pair(pred: torch.Tensor, target: torch.Tensor, quad: Quadrature) -> None:
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(f"pred and target must be tensors, got {type(pred).__name__} and "
                        f"{type(target).__name__}")
    if pred.shape != target.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} but target has shape "
                         f"{tuple(target.shape)}")
    quad.check_fields(pred, "pred")


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return values.mean(dim=0)
    if reduction == "sum":
        return values.sum(dim=0)
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _combine(err: torch.Tensor, ref: torch.Tensor, p: float, relative: bool,
             per_channel: bool, reduction: str, eps: float) -> torch.Tensor:
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


def _lp_integrals(pred: torch.Tensor, target: torch.Tensor, quad: Quadrature,
                  p: float) -> tuple[torch.Tensor, torch.Tensor]:
    _check_pair(pred, target, quad)
    dtype = compute_dtype(pred)
    pred, target = pred.to(dtype), target.to(dtype)
    diff = pred - target
    if p == 2.0:
        return quad.integrate(diff * diff), quad.integrate(target * target)
    return quad.integrate(diff.abs() ** p), quad.integrate(target.abs() ** p)


def _gradient_integrals(pred: torch.Tensor, target: torch.Tensor, quad: Quadrature,
                        pred_grad: torch.Tensor | None, target_grad: torch.Tensor | None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, C]`` integrals of |grad(pred - target)|^2 and |grad target|^2."""
    dtype = compute_dtype(pred)
    if (pred_grad is None) != (target_grad is None):
        raise ValueError("pred_grad and target_grad must be given together (or neither)")
    if pred_grad is None:
        return quad.gradient_integrals(pred.to(dtype) - target.to(dtype), target.to(dtype))
    if pred_grad.shape != target_grad.shape:  # type: ignore[union-attr]
        raise ValueError(f"pred_grad has shape {tuple(pred_grad.shape)} but target_grad has "
                         f"{tuple(target_grad.shape)}")  # type: ignore[union-attr]
    if quad.layout == "points":
        c = 1 if pred.dim() == 1 else pred.shape[1]
        if pred_grad.dim() != 3 or pred_grad.shape[:2] != (pred.shape[0], c):
            raise ValueError(f"point gradients must have shape [N, C, d] = "
                             f"[{pred.shape[0]}, {c}, d], got {tuple(pred_grad.shape)}")
    elif (pred_grad.dim() != pred.dim() + 1 or pred_grad.shape[:2] != pred.shape[:2]
          or pred_grad.shape[3:] != pred.shape[2:]):
        raise ValueError(f"grid gradients must have shape [B, C, d, *spatial] for fields "
                         f"{tuple(pred.shape)}, got {tuple(pred_grad.shape)}")
    pg, tg = pred_grad.to(dtype), target_grad.to(dtype)  # type: ignore[union-attr]
    dg = pg - tg
    return quad.integrate((dg * dg).sum(2)), quad.integrate((tg * tg).sum(2))


def lp_error(
    pred: torch.Tensor,
    target: torch.Tensor,
    quadrature: Any,
    *,
    p: float = 2.0,
    relative: bool = True,
    per_channel: bool = False,
    reduction: str = "mean",
    eps: float = 1e-12,
) -> torch.Tensor:
    """Quadrature-weighted (relative) L^p error of ``pred`` against ``target``.

    Parameters
    ----------
    pred, target : torch.Tensor
        ``[N]`` / ``[N, C]`` on points, ``[B, C, *shape]`` on a grid.
    quadrature : Quadrature, PointCloud, PyG batch, GridSpec or SphereGridSpec
        How to integrate (see :func:`~geo_neuralop.geometry.as_quadrature`).
    p : float
        Exponent, at least 1.
    relative : bool
        Divide by the target's norm (per sample, and per channel if ``per_channel``).
    per_channel : bool
        One value per channel instead of the total.
    reduction : {"mean", "sum", "none"}
        Over samples (graphs of a PyG batch, or the grid batch axis).
    eps : float
        Floor of the target norm in relative errors.

    Returns
    -------
    torch.Tensor
        ``[]`` (``[C]`` per channel) after "mean"/"sum"; ``[B]`` (``[B, C]``) with
        "none". Absolute errors are in field units times ``volume^(1/p)``.

    Examples
    --------
    >>> import math, torch
    >>> from geo_neuralop.geometry import GridSpec
    >>> x = torch.linspace(0, 2 * math.pi, 65)[:-1]
    >>> target = torch.sin(x)[None, None]            # [B=1, C=1, 64], periodic grid
    >>> pred = target + 0.1 * torch.cos(x)[None, None]
    >>> round(float(lp_error(pred, target, GridSpec((64,), periodic=True))), 6)
    0.1
    """
    if not p >= 1.0:
        raise ValueError(f"p must be at least 1, got {p}")
    quad = as_quadrature(quadrature)
    err, ref = _lp_integrals(pred, target, quad, float(p))
    return _combine(err, ref, float(p), relative, per_channel, reduction, eps)


def h1_error(
    pred: torch.Tensor,
    target: torch.Tensor,
    quadrature: Any,
    *,
    relative: bool = True,
    seminorm: bool = False,
    per_channel: bool = False,
    reduction: str = "mean",
    pred_grad: torch.Tensor | None = None,
    target_grad: torch.Tensor | None = None,
    eps: float = 1e-12,
) -> torch.Tensor:
    """Quadrature-weighted (relative) H^1 error: ``sqrt(||e||^2 + ||grad e||^2)``.

    Parameters are those of :func:`lp_error` (with ``p = 2``), plus

    seminorm : bool
        Use only ``||grad e||`` (and ``||grad target||`` for relative errors).
    pred_grad, target_grad : torch.Tensor, optional
        Gradient fields, ``[N, C, d]`` on points (required there) or
        ``[B, C, d, *shape]`` on grids; by default the quadrature differentiates
        (finite differences on a grid, spherical harmonics on the sphere).
    """
    quad = as_quadrature(quadrature)
    err, ref = _lp_integrals(pred, target, quad, 2.0)
    gerr, gref = _gradient_integrals(pred, target, quad, pred_grad, target_grad)
    if seminorm:
        err, ref = gerr, gref
    else:
        err, ref = err + gerr, ref + gref
    return _combine(err, ref, 2.0, relative, per_channel, reduction, eps)


def error_integrals(
    pred: torch.Tensor,
    target: torch.Tensor,
    quadrature: Any,
    *,
    gradients: bool = False,
    pred_grad: torch.Tensor | None = None,
    target_grad: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Squared-norm integrals per sample and channel, the building blocks of all errors.

    Returns
    -------
    dict of torch.Tensor, each shape [B, C]
        ``"err"`` = integral of ``|pred - target|^2``, ``"ref"`` = integral of
        ``|target|^2``; with ``gradients=True`` also ``"grad_err"`` and
        ``"grad_ref"``, the same for the gradients.
    """
    quad = as_quadrature(quadrature)
    err, ref = _lp_integrals(pred, target, quad, 2.0)
    out = {"err": err, "ref": ref}
    if gradients:
        out["grad_err"], out["grad_ref"] = _gradient_integrals(pred, target, quad, pred_grad,
                                                               target_grad)
    return out


class _QuadratureLoss(nn.Module):
    """A loss holding an optional default quadrature (e.g. the data's grid)."""

    def __init__(self, reduction: str, quadrature: Any, eps: float) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction, self.eps = reduction, float(eps)
        self.quadrature = None if quadrature is None else as_quadrature(quadrature)

    def _quadrature(self, quadrature: Any) -> Quadrature:
        if quadrature is not None:
            return as_quadrature(quadrature)
        if self.quadrature is None:
            raise ValueError(f"{type(self).__name__} needs a quadrature: pass one to the loss "
                             f"(e.g. {type(self).__name__}(quadrature=GridSpec(shape, domain, "
                             f"periodic))) or to the call (a PointCloud or PyG batch)")
        return self.quadrature


class LpLoss(_QuadratureLoss):
    """Relative (default) or absolute quadrature-weighted L^p error as a training loss.

    Parameters
    ----------
    p : float
        Exponent (default 2).
    relative : bool
        Relative error per sample (default) or absolute error.
    reduction : {"mean", "sum", "none"}
        Over samples: graphs of a PyG batch, or the batch axis of grid fields.
    quadrature : optional
        Default quadrature (anything :func:`~geo_neuralop.geometry.as_quadrature`
        takes), used when the call passes none: the grid of grid-shaped data.
    eps : float
        Floor of the target norm.

    Notes
    -----
    Shapes: forward(pred, target, quadrature=None): fields as in :func:`lp_error`; returns
    ``[]`` (or ``[B]`` with ``reduction="none"``).

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.geometry import PointQuadrature
    >>> loss = LpLoss()
    >>> y = torch.ones(5, 2)                        # one cloud, 5 points, 2 channels
    >>> float(loss(2 * y, y, PointQuadrature(torch.full((5,), 0.2))))
    1.0
    """

    def __init__(self, p: float = 2.0, relative: bool = True, reduction: str = "mean",
                 quadrature: Any = None, eps: float = 1e-12) -> None:
        super().__init__(reduction, quadrature, eps)
        if not p >= 1.0:
            raise ValueError(f"p must be at least 1, got {p}")
        self.p, self.relative = float(p), bool(relative)

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                quadrature: Any = None) -> torch.Tensor:
        return lp_error(pred, target, self._quadrature(quadrature), p=self.p,
                        relative=self.relative, reduction=self.reduction, eps=self.eps)

    def extra_repr(self) -> str:
        return f"p={self.p}, relative={self.relative}, reduction={self.reduction!r}"


class H1Loss(_QuadratureLoss):
    """Relative (default) or absolute quadrature-weighted H^1 error as a training loss.

    Parameters
    ----------
    relative, reduction, quadrature, eps
        As in :class:`LpLoss`; the quadrature also differentiates (finite
        differences with the grid's physical spacing, or spherical harmonics).
    seminorm : bool
        Use only the gradient part.

    Notes
    -----
    Shapes: forward(pred, target, quadrature=None, pred_grad=None, target_grad=None): as
    :func:`h1_error`.
    """

    def __init__(self, relative: bool = True, seminorm: bool = False, reduction: str = "mean",
                 quadrature: Any = None, eps: float = 1e-12) -> None:
        super().__init__(reduction, quadrature, eps)
        self.relative, self.seminorm = bool(relative), bool(seminorm)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, quadrature: Any = None,
                pred_grad: torch.Tensor | None = None,
                target_grad: torch.Tensor | None = None) -> torch.Tensor:
        return h1_error(pred, target, self._quadrature(quadrature), relative=self.relative,
                        seminorm=self.seminorm, reduction=self.reduction, pred_grad=pred_grad,
                        target_grad=target_grad, eps=self.eps)

    def extra_repr(self) -> str:
        return f"relative={self.relative}, seminorm={self.seminorm}, reduction={self.reduction!r}"


# --------------------------------------------------------------------------------------
# spectral Sobolev norms H^s (negative s: the Spectral-Refiner losses)
# --------------------------------------------------------------------------------------


def _grid_sobolev_sq(x: torch.Tensor, spec: GridSpec, s: float) -> torch.Tensor:
    """``||x||_{H^s}^2`` per sample and channel of fields ``[B, C, *shape]`` on a GridSpec."""
    d = spec.n_dim
    lengths = []
    for axis, periodic in enumerate(spec.periodic):
        dim = 2 + axis
        n = x.shape[dim]
        if periodic:
            lengths.append(spec.lengths[axis])
            continue
        if n < 2:
            raise ValueError(f"a non-periodic axis needs at least 2 nodes for the cosine "
                             f"basis, got {n} on axis {axis}")
        # even extension without repeating the end points: period 2 L, 2 (n - 1) samples
        inner = x.narrow(dim, 1, n - 2).flip(dim) if n > 2 else x.narrow(dim, 0, 0)
        x = torch.cat([x, inner], dim)
        lengths.append(2.0 * spec.lengths[axis])
    dims = tuple(range(2, 2 + d))
    coeffs = torch.fft.fftn(x, dim=dims, norm="forward")  # f = sum_k c_k exp(2 pi i k.x / L)
    shape = x.shape[2:]
    lam = torch.zeros(shape, dtype=x.dtype, device=x.device)
    for axis, (n, length) in enumerate(zip(shape, lengths, strict=True)):
        k = torch.fft.fftfreq(n, d=1.0 / n, dtype=x.dtype, device=x.device)
        view = [1] * d
        view[axis] = n
        lam = lam + ((2.0 * math.pi / length) * k).square().view(view)
    weight = (1.0 + lam) ** s * math.prod(lengths)  # |Omega_ext| sum_k ... (Parseval)
    mirrored = sum(1 for p in spec.periodic if not p)
    return (coeffs.abs().square() * weight).sum(dim=dims) / 2.0 ** mirrored


def _sphere_sobolev_sq(x: torch.Tensor, spec: SphereGridSpec, s: float,
                       transforms: BoundedCache | None) -> torch.Tensor:
    """``sum_lm (1 + l (l + 1))^s |x_lm|^2`` with orthonormal harmonics, ``[B, C]``."""
    from torch_harmonics import RealSHT

    def build() -> torch.nn.Module:
        lmax = spec.resolved_degrees()
        return RealSHT(spec.nlat, spec.nlon, lmax=lmax, mmax=min(lmax, spec.nlon // 2 + 1),
                       grid=spec.grid, norm="ortho").to(device=x.device, dtype=x.dtype)

    key = (spec, x.dtype, str(x.device))
    sht = build() if transforms is None else transforms.get_or_build(key, build)
    coeffs = sht(x)  # [B, C, L, M]
    n_l, n_m = coeffs.shape[-2:]
    ell = torch.arange(n_l, device=x.device, dtype=x.dtype)
    mult = torch.full((n_m,), 2.0, device=x.device, dtype=x.dtype)
    mult[0] = 1.0  # m > 0 stands for +m and -m of a real field
    weight = (1.0 + ell * (ell + 1.0))[:, None] ** s * mult
    return (coeffs.abs().square() * weight).sum(dim=(-2, -1))


def sobolev_integrals(pred: torch.Tensor, target: torch.Tensor, quadrature: Any, s: float,
                      transforms: BoundedCache | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, C]`` squared H^s norms of ``pred - target`` and of ``target``.

    Parameters
    ----------
    pred, target : torch.Tensor, shape [B, C, *shape]
    quadrature : GridSpec, SphereGridSpec or their quadratures
        Sobolev norms need a spectral basis: point clouds are refused.
    s : float
        Sobolev order (negative for the Spectral-Refiner losses).
    transforms : BoundedCache, optional
        Where sphere transforms are kept between calls.
    """
    quad = as_quadrature(quadrature)
    spec = getattr(quad, "spec", None)
    if quad.layout != "grid" or spec is None:
        raise ValueError(f"quadrature: Sobolev norms H^s need a regular or sphere grid (a "
                         f"spectral basis), got {type(quad).__name__}; use lp_error on point "
                         f"clouds")
    _check_pair(pred, target, quad)
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s):
        raise ValueError(f"s must be a finite number, got {s!r}")
    dtype = compute_dtype(pred)
    e, y = pred.to(dtype) - target.to(dtype), target.to(dtype)
    if isinstance(spec, SphereGridSpec):
        return (_sphere_sobolev_sq(e, spec, float(s), transforms),
                _sphere_sobolev_sq(y, spec, float(s), transforms))
    return _grid_sobolev_sq(e, spec, float(s)), _grid_sobolev_sq(y, spec, float(s))


def sobolev_error(
    pred: torch.Tensor,
    target: torch.Tensor,
    quadrature: Any,
    *,
    s: float = -1.0,
    relative: bool = True,
    per_channel: bool = False,
    reduction: str = "mean",
    eps: float = 1e-12,
    transforms: BoundedCache | None = None,
) -> torch.Tensor:
    """(Relative) spectral Sobolev H^s error; ``s = -1`` is the H^-1 error of Spectral-Refiner.

    Parameters
    ----------
    pred, target : torch.Tensor, shape [B, C, *shape]
        Fields on a regular grid or a latitude-longitude sphere grid.
    quadrature : GridSpec, SphereGridSpec, GridQuadrature or SphereQuadrature
        The grid (see the module docstring for the eigenbases).
    s : float
        Sobolev order.
    relative, per_channel, reduction, eps
        As in :func:`lp_error`.
    transforms : BoundedCache, optional
        Cache of sphere transforms (a :class:`SobolevLoss` keeps one).

    Returns
    -------
    torch.Tensor
        ``[]`` (or ``[C]``, ``[B]``, ``[B, C]``, as :func:`lp_error`).

    Examples
    --------
    >>> import math, torch
    >>> from geo_neuralop.geometry import GridSpec
    >>> x = torch.arange(64) / 64
    >>> target = torch.sin(2 * math.pi * x)[None, None]     # one period on [0, 1)
    >>> error = 0.1 * torch.sin(2 * math.pi * 8 * x)[None, None]
    >>> grid = GridSpec((64,), periodic=True)
    >>> round(float(lp_error(target + error, target, grid)), 4)  # L2: 0.1
    0.1
    >>> h = float(sobolev_error(target + error, target, grid, s=-1.0))
    >>> abs(h - 0.1 * math.sqrt((1 + (2 * math.pi) ** 2) / (1 + (16 * math.pi) ** 2))) < 1e-6
    True
    """
    err, ref = sobolev_integrals(pred, target, quadrature, s, transforms)
    return _combine(err, ref, 2.0, relative, per_channel, reduction, eps)


class SobolevLoss(_QuadratureLoss):
    """(Relative) spectral Sobolev H^s error as a training loss (default H^-1).

    The Spectral-Refiner recipe (Cao et al., ICLR 2025) fine-tunes the last spectral
    block of a trained model with this loss at ``s < 0`` (see the ``trainable`` and
    ``init_from`` trainer settings).

    Parameters
    ----------
    s : float
        Sobolev order.
    relative, reduction, quadrature, eps
        As in :class:`LpLoss`; the quadrature must be a regular or sphere grid.
    """

    def __init__(self, s: float = -1.0, relative: bool = True, reduction: str = "mean",
                 quadrature: Any = None, eps: float = 1e-12) -> None:
        super().__init__(reduction, quadrature, eps)
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s):
            raise ValueError(f"s must be a finite number, got {s!r}")
        self.s, self.relative = float(s), bool(relative)
        self.transforms: BoundedCache = BoundedCache(4)

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                quadrature: Any = None) -> torch.Tensor:
        return sobolev_error(pred, target, self._quadrature(quadrature), s=self.s,
                             relative=self.relative, reduction=self.reduction, eps=self.eps,
                             transforms=self.transforms)

    def extra_repr(self) -> str:
        return f"s={self.s}, relative={self.relative}, reduction={self.reduction!r}"
