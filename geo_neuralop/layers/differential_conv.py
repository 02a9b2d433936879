"""Differential convolutions: stencils that converge to derivatives under refinement.

- :class:`GridDifferentialConv` on regular grids: per axis, a learned zero-sum
  stencil divided by the physical grid width of that axis.
- :class:`PointDifferentialConv` on point clouds and the sphere: a DISCO kernel
  made zero-sum at every output point and divided by the kernel radius.

A zero-sum stencil annihilates constants, so ``sum_a W_a v(x + a h) / h ->
(sum_a a W_a) dv/dx`` as ``h -> 0``: the layer's limit is a learned first-order
differential operator, whatever the resolution it is evaluated at. Both take
``init_length``: their outputs are derivatives, so initial weights are scaled
by a length to start as small as a plain difference over that length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from geo_neuralop.geometry.grid_spec import GridSpec
from geo_neuralop.kernels.basis import FilterBasis
from geo_neuralop.kernels.disco import DEFAULT_MAX_EDGES
from geo_neuralop.layers.disco_conv import DiscoConv
from geo_neuralop.utils.checks import (
    check_domain,
    check_positive_int,
    check_positive_number,
    per_axis,
)

__all__ = ["GridDifferentialConv", "PointDifferentialConv"]

#: Padding of the stencil on non-periodic axes, and torch's name for it.
PADDINGS = {"zero": "constant", "reflect": "reflect", "replicate": "replicate"}


class GridDifferentialConv(nn.Module):
    """Learned first-order differential operator on a regular grid.

    ``out = sum_d (W_d *_d x) / h_d`` where ``W_d [C_out, C_in, s]`` is a
    zero-sum stencil of ``s`` points along axis ``d`` and ``h_d`` the physical
    grid width of axis ``d`` for the input's resolution.

    Parameters
    ----------
    in_channels, out_channels : int
    n_dim : {1, 2, 3}
        Number of spatial axes.
    stencil_size : int
        Odd number of points per axis (default 3).
    domain : sequence of (lo, hi), optional
        Physical extent of each axis (default the unit box).
    periodic : bool or sequence of bool
        Periodic axes wrap around (spacing ``L / n``); the others hold both end
        points (spacing ``L / (n - 1)``) and are padded by ``padding``.
    padding : {"replicate", "zero", "reflect"} or sequence
        Padding of the non-periodic axes.
    init_length : float, optional
        Scale of the initial weights (a length, e.g. a few grid cells); default 1.

    Notes
    -----
    Shapes: forward(x, grid=None): ``[B, C_in, n_1, ..., n_d] -> [B, C_out, n_1, ..., n_d]``.

    Examples
    --------
    >>> import torch, math
    >>> conv = GridDifferentialConv(1, 1, n_dim=1, domain=[(0.0, 2 * math.pi)])
    >>> with torch.no_grad():
    ...     _ = conv.weight.copy_(torch.tensor([[[[-0.5, 0.0, 0.5]]]]))  # central difference
    >>> x = torch.linspace(0, 2 * math.pi, 257)[:-1]
    >>> y = conv(torch.sin(x)[None, None])
    >>> bool((y[0, 0] - torch.cos(x)).abs().max() < 1e-3)
    True
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_dim: int = 2,
        stencil_size: int = 3,
        domain: Sequence[Sequence[float]] | None = None,
        periodic: bool | Sequence[bool] = True,
        padding: str | Sequence[str] = "replicate",
        init_length: float | None = None,
    ) -> None:
        super().__init__()
        in_channels = check_positive_int("in_channels", in_channels)
        out_channels = check_positive_int("out_channels", out_channels)
        if n_dim not in (1, 2, 3):
            raise ValueError(f"n_dim must be 1, 2 or 3, got {n_dim!r}")
        stencil_size = check_positive_int("stencil_size", stencil_size)
        if stencil_size < 3 or stencil_size % 2 == 0:
            raise ValueError(f"stencil_size must be odd and at least 3, got {stencil_size}")
        pads = per_axis(padding, n_dim, "padding")
        for p in pads:
            if p not in PADDINGS:
                raise ValueError(f"padding must be one of {sorted(PADDINGS)}, got {p!r}")
        self.in_channels, self.out_channels, self.n_dim = in_channels, out_channels, n_dim
        self.stencil_size = stencil_size
        self.domain = check_domain(domain, n_dim)
        self.periodic = tuple(bool(p) for p in per_axis(periodic, n_dim, "periodic"))
        self.padding = tuple(pads)
        scale = 1.0 / math.sqrt(in_channels * stencil_size * n_dim)
        self.weight = nn.Parameter(scale * torch.randn(n_dim, out_channels, in_channels,
                                                       stencil_size))
        if init_length is not None:
            with torch.no_grad():
                self.weight.mul_(check_positive_number("init_length", init_length))

    def grid(self, shape: Sequence[int]) -> GridSpec:
        """The layer's grid at the resolution ``shape``."""
        return GridSpec(tuple(shape), self.domain, self.periodic)

    def zero_sum_weight(self) -> torch.Tensor:
        """The stencils actually applied, ``[n_dim, C_out, C_in, s]``, each summing to zero."""
        return self.weight - self.weight.mean(dim=-1, keepdim=True)

    def forward(self, x: torch.Tensor, grid: GridSpec | None = None) -> torch.Tensor:
        """Apply the stencils.

        Parameters
        ----------
        x : torch.Tensor, shape [B, C_in, n_1, ..., n_d]
        grid : GridSpec, optional
            The grid of ``x`` (default: the layer's domain at ``x``'s resolution);
            give it when ``x`` covers more than the layer's domain, e.g. after
            domain padding.

        Returns
        -------
        torch.Tensor, shape [B, C_out, n_1, ..., n_d]
        """
        if x.dim() != self.n_dim + 2:
            raise ValueError(
                f"x must have shape [B, C, {', '.join(['n'] * self.n_dim)}], got {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(f"x has {x.shape[1]} channels but the layer expects "
                             f"{self.in_channels}")
        spatial = tuple(x.shape[2:])
        grid = self.grid(spatial) if grid is None else grid
        if tuple(grid.shape) != spatial:
            raise ValueError(f"grid has shape {grid.shape} but x has {spatial}")
        half = self.stencil_size // 2
        for axis, n in enumerate(spatial):
            if n <= half:
                raise ValueError(f"axis {axis} has {n} points; the stencil needs more than {half}")
        h = grid.spacing
        weight = self.zero_sum_weight()
        conv = (F.conv1d, F.conv2d, F.conv3d)[self.n_dim - 1]
        out = None
        for axis in range(self.n_dim):
            pad = [0, 0] * self.n_dim  # F.pad lists the last axis first
            pad[2 * (self.n_dim - 1 - axis)] = half
            pad[2 * (self.n_dim - 1 - axis) + 1] = half
            mode = "circular" if grid.periodic[axis] else PADDINGS[self.padding[axis]]
            padded = F.pad(x, pad, mode=mode) if mode != "constant" else F.pad(x, pad)
            shape = [self.out_channels, self.in_channels] + [1] * self.n_dim
            shape[2 + axis] = self.stencil_size
            term = conv(padded, weight[axis].reshape(shape)) / h[axis]
            out = term if out is None else out + term
        return out

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, n_dim={self.n_dim}, "
                f"stencil_size={self.stencil_size}, domain={self.domain}, "
                f"periodic={self.periodic}")


class PointDifferentialConv(DiscoConv):
    """Learned first-order differential operator on a point cloud or the sphere.

    A DISCO layer whose kernels are normalized per output point ("nodal"), made
    linearly consistent, zero-sum at every point and divided by the radius:

        out_i = sum_k theta_k sum_j psi_k(x_i, x_j) w_j (v_j - v_i) / (r N_ik),
        N_ik = sum_j |psi_k(x_i, x_j)| w_j,

    which tends to ``sum_k theta_k m_k . grad v`` with ``m_k`` the normalized
    first moment of ``psi_k`` on the unit disk, as the radius shrinks with the
    mesh. Takes the arguments of :class:`DiscoConv` (bias off by default; the
    destination cloud must be the source cloud), plus ``init_length``, a length
    that scales the initial weights (default 1; models pass the radius, so the
    layer starts as small as a plain difference over the radius).
    """

    differential = True

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_shape: int | tuple[int, ...] = (3, 4),
                 basis: str | FilterBasis = "piecewise_linear", radius: float | None = 0.1,
                 groups: int = 1, bias: bool = False, init_length: float | None = None,
                 cache_size: int = 16, max_edges: int = DEFAULT_MAX_EDGES, *,
                 radius_name: str = "radius", max_edges_name: str = "max_edges") -> None:
        super().__init__(in_channels, out_channels, kernel_shape, basis, radius, groups, bias,
                         normalization="nodal", cache_size=cache_size, max_edges=max_edges,
                         radius_name=radius_name, max_edges_name=max_edges_name)
        if init_length is not None:
            with torch.no_grad():
                self.weight.mul_(check_positive_number("init_length", init_length))
