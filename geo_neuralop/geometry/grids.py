"""Regular tensor-product grids in 1D, 2D and 3D with trapezoid or periodic weights."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from geo_neuralop.geometry.grid_spec import GridSpec
from geo_neuralop.geometry.point_cloud import PointCloud


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
    spec = GridSpec(shape, domain, periodic)
    dtype = dtype or torch.get_default_dtype()
    mesh = torch.meshgrid(*spec.axis_nodes(), indexing="ij")
    pos = torch.stack([m.reshape(-1) for m in mesh], dim=-1)
    return PointCloud(
        pos.to(dtype),
        spec.weights(dtype=torch.float64).reshape(-1).to(dtype),
        manifold="euclidean",
        grid_shape=spec.shape,
        domain=spec.domain,
        periodic=spec.periodic,
    )


def grid_spacing(cloud: PointCloud) -> tuple[float, ...]:
    """Physical node spacing ``h`` of each axis of a cloud made by :func:`regular_grid`."""
    spec = cloud.grid_spec
    if not isinstance(spec, GridSpec):
        raise ValueError("cloud has no regular grid description: it was not made by "
                         "regular_grid")
    return spec.spacing
