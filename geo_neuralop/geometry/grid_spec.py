"""Descriptions of structured grids: :class:`GridSpec` (a regular box) and :class:`SphereGridSpec`.

A grid description is the one place that knows a grid's shape, physical extent
and periodic axes, and from them its node spacing, nodes, quadrature weights
and discrete derivatives. Grids (:func:`~geo_neuralop.geometry.regular_grid`,
:func:`~geo_neuralop.geometry.sphere_grid`), layers (grid DISCO, differential
stencils) and losses all ask it instead of repeating the formulas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from geo_neuralop.geometry.quadrature import (
    SPHERE_GRIDS,
    axis_nodes_and_weights,
    colatitude_nodes_and_weights,
    grid_quadrature_weights,
    sphere_quadrature_weights,
)
from geo_neuralop.utils.checks import check_domain, is_int, per_axis

__all__ = ["GridSpec", "SphereGridSpec"]


@dataclass(frozen=True)
class GridSpec:
    """A regular tensor-product grid on a box: ``shape``, ``domain`` and ``periodic`` axes.

    Non-periodic axes hold ``n`` nodes including both ends (spacing
    ``L / (n - 1)``, trapezoid weights); periodic axes hold ``n`` nodes without
    the repeated end point (spacing ``L / n``, uniform weights).

    Parameters
    ----------
    shape : int or sequence of int
        Nodes per axis (1 to 3 axes).
    domain : sequence of (lo, hi), optional
        Physical extent per axis (one pair is used for every axis); default the
        unit box.
    periodic : bool or sequence of bool

    Examples
    --------
    >>> spec = GridSpec((33, 16), domain=[(0.0, 2.0), (0.0, 1.0)], periodic=[False, True])
    >>> spec.spacing
    (0.0625, 0.0625)
    >>> float(spec.weights().sum())  # the box's area
    2.0
    >>> spec.with_shape((65, 32)).spacing  # the same box at twice the resolution
    (0.03125, 0.03125)
    """

    shape: tuple[int, ...]
    domain: tuple[tuple[float, float], ...] | None = None
    periodic: tuple[bool, ...] | bool = False

    def __post_init__(self) -> None:
        shape = (self.shape,) if is_int(self.shape) else tuple(self.shape)
        n_dim = len(shape)
        if n_dim not in (1, 2, 3):
            raise ValueError(f"shape must have 1, 2 or 3 axes, got {self.shape!r}")
        for axis, n in enumerate(shape):
            if not is_int(n):
                raise TypeError(f"shape[{axis}] must be an int, got {n!r}")
        shape = tuple(int(n) for n in shape)
        periodic = tuple(bool(p) for p in per_axis(self.periodic, n_dim, "periodic"))
        for axis, (n, p) in enumerate(zip(shape, periodic, strict=True)):
            if n < (1 if p else 2):
                kind = "a periodic" if p else "a non-periodic"
                raise ValueError(f"{kind} axis needs at least {1 if p else 2} nodes, got "
                                 f"n={n} on axis {axis}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "domain", check_domain(self.domain, n_dim))
        object.__setattr__(self, "periodic", periodic)

    @property
    def n_dim(self) -> int:
        """Number of axes."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of nodes."""
        return math.prod(self.shape)

    @property
    def lengths(self) -> tuple[float, ...]:
        """Physical length of each axis."""
        return tuple(hi - lo for lo, hi in self.domain)  # type: ignore[union-attr]

    @property
    def spacing(self) -> tuple[float, ...]:
        """Node spacing of each axis: ``L / n`` if periodic, else ``L / (n - 1)``."""
        return tuple(length / (n if p else n - 1) for length, n, p in
                     zip(self.lengths, self.shape, self.periodic, strict=True))  # type: ignore

    def with_shape(self, shape: Sequence[int]) -> GridSpec:
        """The same box and periodic axes at another resolution."""
        return GridSpec(tuple(shape), self.domain, self.periodic)

    def padded(self, pads: Sequence[int]) -> GridSpec:
        """The grid extended by ``pads[d]`` nodes at the end of each axis, same spacing.

        Domain padding appends zeros after the last node; the padded grid covers a
        proportionally larger box, so physical radii and spacings stay the same.
        """
        shape, domain = [], []
        for (lo, _), n, p, h, pad in zip(self.domain, self.shape, self.periodic,  # type: ignore
                                         self.spacing, pads, strict=True):
            m = n + int(pad)
            shape.append(m)
            domain.append((lo, lo + h * (m if p else m - 1)))
        return GridSpec(tuple(shape), tuple(domain), self.periodic)

    def axis_nodes(self, dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
        """Node coordinates of every axis, ``[n_d]`` each."""
        return [axis_nodes_and_weights(n, lo, hi, p, dtype=dtype)[0] for n, (lo, hi), p in
                zip(self.shape, self.domain, self.periodic, strict=True)]  # type: ignore

    def weights(self, dtype: torch.dtype | None = None,
                device: torch.device | str | None = None) -> torch.Tensor:
        """Quadrature weights ``[*shape]`` summing to the box's volume."""
        return grid_quadrature_weights(self.shape, self.domain, self.periodic, dtype=dtype,
                                       device=device)

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        """Second-order finite-difference gradient of fields on this grid.

        Parameters
        ----------
        x : torch.Tensor, shape [B, C, *shape]

        Returns
        -------
        torch.Tensor, shape [B, C, n_dim, *shape]
            Partial derivatives per unit length: central differences inside,
            second-order one-sided differences at the ends of non-periodic axes
            (at least 3 nodes needed), wrapped central differences on periodic axes.
        """
        if x.dim() != self.n_dim + 2 or tuple(x.shape[2:]) != self.shape:
            raise ValueError(f"x must have shape [B, C, {', '.join(map(str, self.shape))}], got "
                             f"{tuple(x.shape)}")
        parts = []
        for axis, (n, p, h) in enumerate(zip(self.shape, self.periodic, self.spacing,  # type: ignore
                                             strict=True)):
            dim = 2 + axis
            if p:
                parts.append((x.roll(-1, dim) - x.roll(1, dim)) / (2.0 * h))
            else:
                if n < 3:
                    raise ValueError(f"finite differences need at least 3 points on "
                                     f"non-periodic axis {axis}, got {n}")
                parts.append(torch.gradient(x, spacing=h, dim=dim, edge_order=2)[0])
        return torch.stack(parts, dim=2)


@dataclass(frozen=True)
class SphereGridSpec:
    """A latitude-longitude grid of the unit sphere in torch-harmonics' ordering.

    Parameters
    ----------
    nlat, nlon : int
        Latitude rings (north to south) and points per ring (longitudes ``2 pi j / nlon``).
    grid : {"equiangular", "legendre-gauss"}
        "equiangular": colatitudes ``pi k / (nlat - 1)`` with both poles,
        Clenshaw-Curtis weights; "legendre-gauss": Gauss nodes in ``cos(colatitude)``.

    Examples
    --------
    >>> import math, torch
    >>> spec = SphereGridSpec(16, 32, "legendre-gauss")
    >>> abs(float(spec.weights(torch.float64).sum()) - 4 * math.pi) < 1e-12
    True
    """

    nlat: int
    nlon: int
    grid: str = "equiangular"

    def __post_init__(self) -> None:
        for name in ("nlat", "nlon"):
            value = getattr(self, name)
            if not is_int(value) or int(value) < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.grid not in SPHERE_GRIDS:
            raise ValueError(f"grid must be one of {SPHERE_GRIDS}, got {self.grid!r}")
        if self.grid == "equiangular" and self.nlat < 2:
            raise ValueError(f"an equiangular grid includes both poles, so nlat must be at "
                             f"least 2, got nlat={self.nlat}")

    @property
    def shape(self) -> tuple[int, int]:
        """``(nlat, nlon)``."""
        return self.nlat, self.nlon

    @property
    def size(self) -> int:
        """Number of grid points."""
        return self.nlat * self.nlon

    def with_shape(self, shape: Sequence[int]) -> SphereGridSpec:
        """The same latitude rule at another resolution."""
        nlat, nlon = shape
        return SphereGridSpec(int(nlat), int(nlon), self.grid)

    def colatitudes(self) -> np.ndarray:
        """Colatitudes of the rings, radians from the north pole, increasing, ``[nlat]``."""
        return colatitude_nodes_and_weights(self.nlat, self.grid)[0]

    def longitudes(self) -> np.ndarray:
        """Longitudes ``2 pi j / nlon``, ``[nlon]``."""
        return 2.0 * np.pi * np.arange(self.nlon) / self.nlon

    def unit_vectors(self) -> np.ndarray:
        """Points as unit vectors ``[nlat, nlon, 3]`` (poles exact)."""
        colat = self.colatitudes()
        sin_t = np.sin(colat)
        sin_t[(colat == 0.0) | (colat == np.pi)] = 0.0
        lon = self.longitudes()
        return np.stack([np.outer(sin_t, np.cos(lon)), np.outer(sin_t, np.sin(lon)),
                         np.outer(np.cos(colat), np.ones(self.nlon))], axis=-1)

    def weights(self, dtype: torch.dtype | None = None,
                device: torch.device | str | None = None) -> torch.Tensor:
        """Solid angles ``[nlat, nlon]`` summing to ``4 pi``."""
        return sphere_quadrature_weights(self.nlat, self.nlon, self.grid, dtype=dtype,
                                         device=device)

    def resolved_degrees(self) -> int:
        """Degrees ``l`` the grid's quadrature resolves without aliasing (exclusive bound).

        Legendre-Gauss grids resolve ``l < nlat``; Clenshaw-Curtis integrates exactly
        only to degree ``nlat - 1``, so products of harmonics are exact for
        ``l < (nlat + 1) // 2``.
        """
        return self.nlat if self.grid == "legendre-gauss" else (self.nlat + 1) // 2
