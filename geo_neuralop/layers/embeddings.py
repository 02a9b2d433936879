"""Positional embeddings: coordinate channels appended to channel-first fields.

- :class:`GridEmbedding`: the coordinates of a regular grid on a box (periodic
  convention ``x_j = lo + (hi - lo) j / n``, the end point excluded, as in
  neuraloperator's ``GridEmbeddingND``), for inputs ``[B, C, n_1, ..., n_d]``.
- :class:`SphereEmbedding`: the unit vector ``(x, y, z)`` of every point of a
  latitude-longitude grid (torch-harmonics ordering, see
  :func:`~geo_neuralop.geometry.sphere_grid`), for inputs ``[B, C, nlat, nlon]``.
  Smooth on the whole sphere, unlike raw angles.

Both compute the coordinates from the input's shape, so they work at any
resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from geo_neuralop.geometry.sphere import SPHERE_GRIDS, colatitude_nodes_and_weights

__all__ = ["GridEmbedding", "SphereEmbedding"]


class GridEmbedding(nn.Module):
    """Append ``n_dim`` coordinate channels of a regular grid.

    Parameters
    ----------
    n_dim : int
        Number of spatial axes.
    grid_boundaries : sequence of (lo, hi), optional
        Extent of each axis; default ``(0, 1)`` on every axis.

    Shapes
    ------
    ``[B, C, n_1, ..., n_d]`` -> ``[B, C + d, n_1, ..., n_d]``.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.layers.embeddings import GridEmbedding
    >>> out = GridEmbedding(2)(torch.zeros(1, 1, 2, 4))
    >>> out.shape, out[0, 2, 0].tolist()
    (torch.Size([1, 3, 2, 4]), [0.0, 0.25, 0.5, 0.75])
    """

    def __init__(self, n_dim: int, grid_boundaries: Sequence[Sequence[float]] | None = None):
        super().__init__()
        if isinstance(n_dim, bool) or not isinstance(n_dim, int) or n_dim < 1:
            raise ValueError(f"n_dim must be a positive int, got {n_dim!r}")
        if grid_boundaries is None:
            grid_boundaries = [(0.0, 1.0)] * n_dim
        bounds = [tuple(float(v) for v in b) for b in grid_boundaries]
        if len(bounds) != n_dim or any(len(b) != 2 for b in bounds):
            raise ValueError(
                f"grid_boundaries must hold {n_dim} (lo, hi) pairs, got {grid_boundaries!r}"
            )
        self.n_dim = n_dim
        self.grid_boundaries = bounds

    def coordinates(self, shape: Sequence[int], dtype: torch.dtype,
                    device: torch.device) -> torch.Tensor:
        """Coordinate channels ``[d, n_1, ..., n_d]`` for a grid of the given shape."""
        axes = [lo + (hi - lo) * torch.arange(n, dtype=dtype, device=device) / n
                for (lo, hi), n in zip(self.grid_boundaries, shape, strict=True)]
        return torch.stack(torch.meshgrid(*axes, indexing="ij"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.n_dim + 2:
            raise ValueError(
                f"x must have shape [B, C, *{self.n_dim} spatial axes], got {tuple(x.shape)}"
            )
        coords = self.coordinates(x.shape[2:], x.dtype, x.device)
        return torch.cat([x, coords.expand(x.shape[0], *coords.shape)], dim=1)

    @property
    def out_channels_added(self) -> int:
        """Number of channels appended (``n_dim``)."""
        return self.n_dim


class SphereEmbedding(nn.Module):
    """Append the 3 Cartesian coordinates of each latitude-longitude grid point.

    Parameters
    ----------
    grid : {"equiangular", "legendre-gauss"}
        Latitude rule of the input grid.

    Shapes
    ------
    ``[B, C, nlat, nlon]`` -> ``[B, C + 3, nlat, nlon]``.

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
        self._cache: dict[tuple, torch.Tensor] = {}

    def coordinates(self, nlat: int, nlon: int, dtype: torch.dtype,
                    device: torch.device) -> torch.Tensor:
        """Unit vectors ``[3, nlat, nlon]``."""
        key = (nlat, nlon, dtype, str(device))
        if key not in self._cache:
            colat, _ = colatitude_nodes_and_weights(nlat, self.grid)
            lon = 2.0 * np.pi * np.arange(nlon) / nlon
            sin_t = np.sin(colat)
            sin_t[(colat == 0.0) | (colat == np.pi)] = 0.0
            xyz = np.stack([
                np.outer(sin_t, np.cos(lon)),
                np.outer(sin_t, np.sin(lon)),
                np.outer(np.cos(colat), np.ones(nlon)),
            ])
            if len(self._cache) > 8:
                self._cache.clear()
            self._cache[key] = torch.as_tensor(xyz, dtype=dtype, device=device)
        return self._cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"x must have shape [B, C, nlat, nlon], got {tuple(x.shape)}")
        coords = self.coordinates(x.shape[2], x.shape[3], x.dtype, x.device)
        return torch.cat([x, coords.expand(x.shape[0], *coords.shape)], dim=1)

    @property
    def out_channels_added(self) -> int:
        """Number of channels appended (3)."""
        return 3
