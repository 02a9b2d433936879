"""Regular tensor-product grids in 1D, 2D and 3D with trapezoid or periodic weights."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from geo_neuralop.geometry.point_cloud import PointCloud


def _as_per_axis(value, ndim: int, name: str) -> tuple:
    if isinstance(value, (bool, int, float)) or value is None:
        return (value,) * ndim
    value = tuple(value)
    if len(value) != ndim:
        raise ValueError(f"{name} has {len(value)} entries but shape has {ndim} axes")
    return value


def axis_nodes_and_weights(
    n: int, lo: float, hi: float, periodic: bool, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """One-dimensional nodes and weights of the composite trapezoid rule.

    Parameters
    ----------
    n : int
        Number of nodes (at least 2 when not periodic, at least 1 when periodic).
    lo, hi : float
        Interval ends (physical units).
    periodic : bool
        If True the interval is a circle of length ``hi - lo``: nodes
        ``lo + i h`` with ``h = (hi - lo) / n`` (the end point ``hi`` is the same
        point as ``lo`` and is left out) and uniform weights ``h``, exact for
        trigonometric polynomials of degree below ``n``. Otherwise ``n`` nodes
        including both ends, ``h = (hi - lo) / (n - 1)``, and trapezoid weights.

    Returns
    -------
    nodes, weights : torch.Tensor, shape [n]
    """
    if periodic:
        if n < 1:
            raise ValueError(f"a periodic axis needs at least 1 node, got n={n}")
        h = (hi - lo) / n
        nodes = lo + h * torch.arange(n, dtype=dtype)
        weights = torch.full((n,), h, dtype=dtype)
    else:
        if n < 2:
            raise ValueError(f"a non-periodic axis needs at least 2 nodes, got n={n}")
        h = (hi - lo) / (n - 1)
        nodes = torch.linspace(lo, hi, n, dtype=dtype)
        weights = torch.full((n,), h, dtype=dtype)
        weights[0] *= 0.5
        weights[-1] *= 0.5
    return nodes, weights


def regular_grid(
    shape: int | Sequence[int],
    domain: Sequence[tuple[float, float]] | tuple[float, float] | None = None,
    periodic: bool | Sequence[bool] = False,
    dtype: torch.dtype | None = None,
) -> PointCloud:
    """A regular grid as a point cloud with tensor-product quadrature weights.

    Parameters
    ----------
    shape : int or sequence of int
        Points per axis, 1 to 3 axes.
    domain : sequence of (lo, hi), optional
        Extent of each axis in physical units; one pair is used for every
        axis. Default: the unit interval on each axis.
    periodic : bool or sequence of bool
        Per axis: uniform weights and no duplicated end point (periodic), or
        the trapezoid rule with both end points (non-periodic).
    dtype : torch.dtype, optional
        Floating dtype of ``pos`` and ``weights``; default
        ``torch.get_default_dtype()``.

    Returns
    -------
    PointCloud
        ``pos [prod(shape), d]`` in C order (the last axis varies fastest, so
        ``field.reshape(*shape, C)`` recovers the grid), ``weights [N]`` summing
        to the domain's volume, and the metadata ``grid_shape``, ``domain``,
        ``periodic`` (tuples) used by grid-aware layers.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.geometry import regular_grid
    >>> g = regular_grid((33, 17), domain=[(0.0, 2.0), (0.0, 1.0)])
    >>> round(float(g.integrate(g.pos[:, 0] ** 2)), 4)  # int_0^2 x^2 dx = 8/3
    2.668
    """
    if isinstance(shape, int):
        shape = (shape,)
    shape = tuple(shape)
    ndim = len(shape)
    if ndim not in (1, 2, 3):
        raise ValueError(f"shape must have 1, 2 or 3 axes, got {shape}")
    for axis, n in enumerate(shape):
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"shape[{axis}] must be an int, got {n!r}")
    if domain is None:
        domain = [(0.0, 1.0)] * ndim
    elif len(domain) == 2 and all(isinstance(v, (int, float)) for v in domain):
        domain = [tuple(domain)] * ndim
    domain = tuple((float(lo), float(hi)) for lo, hi in domain)
    if len(domain) != ndim:
        raise ValueError(f"domain has {len(domain)} axes but shape has {ndim}")
    for axis, (lo, hi) in enumerate(domain):
        if not hi > lo:
            raise ValueError(f"domain[{axis}] = ({lo}, {hi}) must have hi > lo")
    periodic = tuple(bool(p) for p in _as_per_axis(periodic, ndim, "periodic"))
    dtype = dtype or torch.get_default_dtype()

    nodes, weights = [], []
    for n, (lo, hi), per in zip(shape, domain, periodic, strict=True):
        x, w = axis_nodes_and_weights(n, lo, hi, per)
        nodes.append(x)
        weights.append(w)
    mesh = torch.meshgrid(*nodes, indexing="ij")
    pos = torch.stack([m.reshape(-1) for m in mesh], dim=-1)
    w = weights[0]
    for wk in weights[1:]:
        w = torch.outer(w, wk).reshape(-1)
    return PointCloud(
        pos.to(dtype),
        w.reshape(-1).to(dtype),
        manifold="euclidean",
        grid_shape=shape,
        domain=domain,
        periodic=periodic,
    )


def grid_spacing(cloud: PointCloud) -> tuple[float, ...]:
    """Physical node spacing ``h`` of each axis of a cloud made by :func:`regular_grid`."""
    shape = getattr(cloud, "grid_shape", None)
    if shape is None:
        raise ValueError("cloud has no grid_shape: it was not made by regular_grid")
    return tuple(
        (hi - lo) / (n if per else n - 1)
        for n, (lo, hi), per in zip(shape, cloud.domain, cloud.periodic, strict=True)
    )
