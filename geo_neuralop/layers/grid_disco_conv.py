"""``GridDiscoConv``: a DISCO convolution on regular grids, applied through the FFT."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from geo_neuralop.geometry.grid_spec import GridSpec
from geo_neuralop.kernels.basis import FilterBasis, get_basis
from geo_neuralop.kernels.disco import NORMALIZATIONS
from geo_neuralop.kernels.grid_disco import GridDiscoKernel
from geo_neuralop.utils.cache import BoundedCache
from geo_neuralop.utils.checks import (
    check_domain,
    check_positive_int,
    check_positive_number,
    per_axis,
)

__all__ = ["GridDiscoConv"]


class GridDiscoConv(nn.Module):
    """Discrete-continuous convolution on a regular grid of a physical box.

    The same operator as :class:`~geo_neuralop.layers.DiscoConv` on a
    :func:`~geo_neuralop.geometry.regular_grid` (radius in physical units,
    quadrature weights of the grid the input actually has), computed with FFTs
    in ``O(N log N)`` whatever the radius. The layer builds a
    :class:`~geo_neuralop.kernels.GridDiscoKernel` for every grid it meets and
    keeps ``cache_size`` of them, so the same weights apply at every resolution.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_shape : int or tuple
        Basis shape (see :class:`~geo_neuralop.kernels.PiecewiseLinearBasis`).
    radius : float
        Support radius in the units of ``domain``.
    n_dim : int
        Number of spatial axes.
    domain : sequence of (lo, hi), optional
        Physical extent of each axis (default the unit box).
    periodic : bool or sequence of bool
    basis : {"piecewise_linear", "morlet", "zernike"} or FilterBasis
    groups : int
    bias : bool
    normalization : {"none", "mean", "nodal"}
    cache_size : int
        Grids whose kernels are kept.

    Notes
    -----
    Shapes: forward(x, grid=None): ``[B, C_in, *shape] -> [B, C_out, *shape]``.

    Examples
    --------
    >>> import torch
    >>> conv = GridDiscoConv(2, 4, kernel_shape=(2, 4), radius=0.1, n_dim=2)
    >>> conv(torch.randn(3, 2, 32, 32)).shape
    torch.Size([3, 4, 32, 32])
    >>> conv(torch.randn(1, 2, 64, 48)).shape  # the same operator on another grid
    torch.Size([1, 4, 64, 48])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_shape: int | tuple[int, ...] = (2, 4),
        radius: float = 1 / 16,
        n_dim: int = 2,
        domain: Sequence[Sequence[float]] | None = None,
        periodic: bool | Sequence[bool] = True,
        basis: str | FilterBasis = "piecewise_linear",
        groups: int = 1,
        bias: bool = True,
        normalization: str = "mean",
        cache_size: int = 8,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.groups = check_positive_int("groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) "
                             f"must be divisible by groups ({groups})")
        if n_dim not in (1, 2, 3):
            raise ValueError(f"n_dim must be 1, 2 or 3, got {n_dim!r}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got "
                             f"{normalization!r}")
        self.radius = check_positive_number("radius", radius)
        self.n_dim = n_dim
        self.domain = check_domain(domain, n_dim)
        self.periodic = tuple(bool(p) for p in per_axis(periodic, n_dim, "periodic"))
        self.normalization = normalization
        self.basis = get_basis(basis, kernel_shape if not isinstance(basis, FilterBasis) else None)
        k = self.basis.kernel_size
        scale = math.sqrt(1.0 / ((in_channels // groups) * k))
        self.weight = nn.Parameter(scale * torch.randn(out_channels, in_channels // groups, k))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.kernels: BoundedCache[GridDiscoKernel] = BoundedCache(cache_size)

    @property
    def kernel_size(self) -> int:
        """``K``, the number of basis functions."""
        return self.basis.kernel_size

    def grid(self, shape: Sequence[int]) -> GridSpec:
        """The layer's grid at the resolution ``shape``."""
        return GridSpec(tuple(shape), self.domain, self.periodic)

    def kernel(self, grid: GridSpec, dtype: torch.dtype,
               device: torch.device | str) -> GridDiscoKernel:
        """The layer's kernel on ``grid`` (built once per grid, dtype and device)."""
        key = (grid, dtype, str(device))
        return self.kernels.get_or_build(key, lambda: GridDiscoKernel(
            self.basis, self.radius, grid, self.normalization, dtype=dtype, device=device))

    def _grid_of(self, x: torch.Tensor, grid: GridSpec | None) -> GridSpec:
        if not isinstance(x, torch.Tensor) or x.dim() != self.n_dim + 2 or \
                x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape [B, {self.in_channels}, *{self.n_dim} spatial "
                             f"axes], got {tuple(getattr(x, 'shape', ()))}")
        spatial = tuple(x.shape[2:])
        grid = self.grid(spatial) if grid is None else grid
        if tuple(grid.shape) != spatial:
            raise ValueError(f"grid has shape {grid.shape} but x has {spatial}")
        return grid

    def forward(self, x: torch.Tensor, grid: GridSpec | None = None) -> torch.Tensor:
        """Apply the convolution.

        Parameters
        ----------
        x : torch.Tensor, shape [B, C_in, *shape]
        grid : GridSpec, optional
            The grid of ``x`` (default: the layer's domain at ``x``'s resolution);
            give it when ``x`` covers more than the layer's domain (domain padding).

        Returns
        -------
        torch.Tensor, shape [B, C_out, *shape]
        """
        grid = self._grid_of(x, grid)
        kernel = self.kernel(grid, x.dtype, x.device)
        return kernel.apply(x, self.weight.to(x.dtype), self.groups,
                            None if self.bias is None else self.bias.to(x.dtype))

    def fourier_term(self, x: torch.Tensor, grid: GridSpec | None = None
                     ) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The layer as a Fourier multiplier on ``x``'s grid, to share a spectral layer's FFTs.

        Returns ``term(x_hat) -> y_hat`` mapping ``rfftn(x, norm="forward")`` to the
        output's spectrum (the bias added in physical space is left out, so the
        layer must have none), or None when the layer is no Fourier multiplier
        there (bounded axes, "nodal" normalization, a bias).
        """
        grid = self._grid_of(x, grid)
        if self.bias is not None or not all(grid.periodic) or self.normalization == "nodal":
            return None
        kernel = self.kernel(grid, x.dtype, x.device)
        weight = self.weight

        def term(x_hat: torch.Tensor) -> torch.Tensor:
            return kernel.spectrum(x_hat, weight.to(x_hat.real.dtype), self.groups)

        return term

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, basis={self.basis}, "
                f"radius={self.radius:g}, domain={self.domain}, periodic={self.periodic}, "
                f"groups={self.groups}, bias={self.bias is not None}")
