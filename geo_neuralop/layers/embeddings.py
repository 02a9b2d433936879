"""Positional embeddings: coordinate channels appended to channel-first fields.

- :class:`GridEmbedding`: the coordinates of a regular grid on a box (periodic
  convention ``x_j = lo + (hi - lo) j / n``, the end point excluded, as in
  neuraloperator's ``GridEmbeddingND``), for inputs ``[B, C, n_1, ..., n_d]``.
- :class:`SphereEmbedding`: the unit vector ``(x, y, z)`` of every point of a
  latitude-longitude grid (torch-harmonics ordering, see
  :func:`~geo_neuralop.geometry.sphere_grid`), for inputs ``[B, C, nlat, nlon]``.
  Smooth on the whole sphere, unlike raw angles.
- :class:`ZonalEmbedding`: a learned field of latitude per channel, added to the
  features: ``sum_l a_cl Y_l^0(theta)``, the zonal spherical harmonics up to a degree
  (torch-harmonics' SFNO offers a learned value per latitude row, which is tied to
  one grid; a zonal series is the same idea as a function on the sphere).

All compute their values from the input's shape, so they work at any resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from geo_neuralop.geometry.grid_spec import SphereGridSpec
from geo_neuralop.geometry.legendre import associated_legendre_table
from geo_neuralop.geometry.quadrature import SPHERE_GRIDS, colatitude_nodes_and_weights
from geo_neuralop.utils.cache import BoundedCache
from geo_neuralop.utils.checks import check_domain, check_positive_int, per_axis

__all__ = ["GridEmbedding", "SphereEmbedding", "ZonalEmbedding"]


class GridEmbedding(nn.Module):
    """Append coordinate channels of a regular grid.

    Parameters
    ----------
    n_dim : int
        Number of spatial axes.
    domain : sequence of (lo, hi), optional
        Physical extent of each axis; default ``(0, 1)`` on every axis.
    periodic : bool or sequence of bool, optional
        None (default): one raw coordinate per axis on the periodic convention
        ``lo + L j / n`` (neuraloperator's ``GridEmbeddingND``). Given: an embedding
        that is smooth on the domain, ``(cos, sin)`` of the angle ``2 pi j / n`` on
        periodic axes (no jump at the wrap) and the node coordinate
        ``lo + L j / (n - 1)`` on the others (both ends are nodes).

    Notes
    -----
    Shapes: ``[B, C, n_1, ..., n_d]`` -> ``[B, C + E, n_1, ..., n_d]``
    (``E`` = :attr:`out_channels_added`).

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.layers.embeddings import GridEmbedding
    >>> out = GridEmbedding(2)(torch.zeros(1, 1, 2, 4))
    >>> out.shape, out[0, 2, 0].tolist()
    (torch.Size([1, 3, 2, 4]), [0.0, 0.25, 0.5, 0.75])
    >>> GridEmbedding(2, periodic=[True, False]).out_channels_added
    3
    """

    def __init__(self, n_dim: int, domain: Sequence[Sequence[float]] | None = None,
                 periodic: bool | Sequence[bool] | None = None):
        super().__init__()
        self.n_dim = check_positive_int("n_dim", n_dim)
        self.domain = check_domain(domain, self.n_dim)
        self.periodic = None if periodic is None else tuple(
            bool(p) for p in per_axis(periodic, self.n_dim, "periodic"))

    def coordinates(self, shape: Sequence[int], dtype: torch.dtype,
                    device: torch.device) -> torch.Tensor:
        """Coordinate channels ``[E, n_1, ..., n_d]`` for a grid of the given shape."""
        if self.periodic is None:
            axes = [lo + (hi - lo) * torch.arange(n, dtype=dtype, device=device) / n
                    for (lo, hi), n in zip(self.domain, shape, strict=True)]
            return torch.stack(torch.meshgrid(*axes, indexing="ij"))
        axes = []
        for (lo, hi), n, periodic in zip(self.domain, shape, self.periodic, strict=True):
            i = torch.arange(n, dtype=dtype, device=device)
            axes.append(i / n if periodic else lo + (hi - lo) * i / max(n - 1, 1))
        channels = []
        for g, periodic in zip(torch.meshgrid(*axes, indexing="ij"), self.periodic,
                               strict=True):
            channels += [torch.cos(2 * math.pi * g), torch.sin(2 * math.pi * g)] if periodic \
                else [g]
        return torch.stack(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.n_dim + 2:
            raise ValueError(
                f"x must have shape [B, C, *{self.n_dim} spatial axes], got {tuple(x.shape)}"
            )
        coords = self.coordinates(x.shape[2:], x.dtype, x.device)
        return torch.cat([x, coords.expand(x.shape[0], *coords.shape)], dim=1)

    @property
    def out_channels_added(self) -> int:
        """Number of channels appended."""
        if self.periodic is None:
            return self.n_dim
        return sum(2 if p else 1 for p in self.periodic)


class SphereEmbedding(nn.Module):
    """Append the 3 Cartesian coordinates of each latitude-longitude grid point.

    Parameters
    ----------
    grid : {"equiangular", "legendre-gauss"}
        Latitude rule of the input grid.

    Notes
    -----
    Shapes: ``[B, C, nlat, nlon]`` -> ``[B, C + 3, nlat, nlon]``.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.layers.embeddings import SphereEmbedding
    >>> out = SphereEmbedding("equiangular")(torch.zeros(1, 2, 5, 8))
    >>> out.shape, out[0, 4, 0, 0].item()  # z = 1 at the north pole
    (torch.Size([1, 5, 5, 8]), 1.0)
    """

    def __init__(self, grid: str = "equiangular") -> None:
        super().__init__()
        if grid not in SPHERE_GRIDS:
            raise ValueError(f"grid must be one of {SPHERE_GRIDS}, got {grid!r}")
        self.grid = grid
        self.coordinate_cache: BoundedCache[torch.Tensor] = BoundedCache(8)

    def coordinates(self, nlat: int, nlon: int, dtype: torch.dtype,
                    device: torch.device) -> torch.Tensor:
        """Unit vectors ``[3, nlat, nlon]`` (cached per grid, dtype and device)."""
        def build() -> torch.Tensor:
            xyz = SphereGridSpec(nlat, nlon, self.grid).unit_vectors()  # [nlat, nlon, 3]
            return torch.as_tensor(np.moveaxis(xyz, -1, 0), dtype=dtype, device=device)

        return self.coordinate_cache.get_or_build((nlat, nlon, dtype, str(device)), build)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"x must have shape [B, C, nlat, nlon], got {tuple(x.shape)}")
        coords = self.coordinates(x.shape[2], x.shape[3], x.dtype, x.device)
        return torch.cat([x, coords.expand(x.shape[0], *coords.shape)], dim=1)

    @property
    def out_channels_added(self) -> int:
        """Number of channels appended (3)."""
        return 3


class ZonalEmbedding(nn.Module):
    """A learned function of latitude per channel, added to the features.

    ``y[b, c, i, j] = x[b, c, i, j] + sum_{l < degrees} a[c, l] Y_l^0(theta_i)`` with the
    orthonormal zonal harmonics ``Y_l^0`` (no longitude dependence). The coefficients
    start at zero, so a model starts as without it. It lets a model whose other layers
    commute with rotations tell latitudes apart, e.g. to learn the Coriolis parameter
    ``2 Omega cos(theta)`` of rotating flows; being a series of functions on the sphere,
    it is evaluated on any grid (zero-shot resolution changes keep their meaning).

    Parameters
    ----------
    channels : int
        Channels of the features it is added to.
    degrees : int
        Zonal harmonics ``l = 0 .. degrees - 1``.
    grid : {"equiangular", "legendre-gauss"}
        Latitude rule of the features' grid.

    Notes
    -----
    Shapes: ``[B, channels, nlat, nlon]`` -> the same.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.layers.embeddings import ZonalEmbedding
    >>> embed = ZonalEmbedding(4, degrees=8)
    >>> bool((embed(torch.ones(1, 4, 9, 16)) == 1).all())  # zero at initialization
    True
    """

    def __init__(self, channels: int, degrees: int, grid: str = "equiangular") -> None:
        super().__init__()
        check_positive_int("channels", channels)
        check_positive_int("degrees", degrees)
        if grid not in SPHERE_GRIDS:
            raise ValueError(f"grid must be one of {SPHERE_GRIDS}, got {grid!r}")
        self.grid, self.degrees = grid, degrees
        self.weight = nn.Parameter(torch.zeros(channels, degrees))
        self.harmonic_cache: BoundedCache[torch.Tensor] = BoundedCache(8)

    def harmonics(self, nlat: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``Y_l^0`` at the grid's latitudes, ``[degrees, nlat]`` (cached)."""
        def build() -> torch.Tensor:
            theta, _ = colatitude_nodes_and_weights(nlat, self.grid)
            return associated_legendre_table(1, self.degrees, theta, dtype=dtype,
                                             device=device)[0]

        return self.harmonic_cache.get_or_build((nlat, dtype, str(device)), build)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.weight.shape[0]:
            raise ValueError(f"x must have shape [B, {self.weight.shape[0]}, nlat, nlon], got "
                             f"{tuple(x.shape)}")
        field = self.weight.to(x.dtype) @ self.harmonics(x.shape[2], x.dtype, x.device)
        return x + field[None, :, :, None]

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, degrees={self.degrees}, grid={self.grid!r}"
