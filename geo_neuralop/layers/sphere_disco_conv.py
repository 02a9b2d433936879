"""DISCO and differential convolutions on latitude-longitude grids of the sphere.

:class:`SphereDiscoConv` and :class:`SphereDifferentialConv` take fields
``[B, C, nlat, nlon]`` on a :func:`~geo_neuralop.geometry.sphere_grid` and build
their kernels for every grid they meet, in geodesic polar coordinates of each
output point (the torch-harmonics convention) with the grid's quadrature
weights. By default they build only the stencils of the output meridians that
the longitude symmetry needs and apply them through FFTs in longitude
(:class:`~geo_neuralop.kernels.SphereRingKernel`), also between grids of
different sizes (when one grid's ``nlon`` is a multiple of the other's, or more
generally with ``nlon_out / gcd(nlon_in, nlon_out)`` meridians, up to
:data:`MAX_RING_MERIDIANS`); ``ring=False`` selects the sparse kernel between the
full grids, the reference the ring path equals to round-off. Several such layers
on one grid (a block's DISCO and differential layers) share one ring kernel and
its FFTs (:meth:`fusion_key`, :meth:`apply_fused`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from geo_neuralop.geometry.quadrature import SPHERE_GRIDS
from geo_neuralop.geometry.sphere import sphere_grid
from geo_neuralop.kernels.basis import FilterBasis
from geo_neuralop.kernels.disco import DEFAULT_MAX_EDGES
from geo_neuralop.kernels.sparse import DiscoKernel
from geo_neuralop.kernels.sphere_ring import RingStencil, SphereRingKernel, ring_meridians
from geo_neuralop.layers.differential_conv import PointDifferentialConv
from geo_neuralop.layers.disco_conv import DiscoConv
from geo_neuralop.utils.cache import BoundedCache
from geo_neuralop.utils.checks import is_number

__all__ = ["MAX_RING_MERIDIANS", "SphereDifferentialConv", "SphereDiscoConv"]

GridKey = tuple[int, int, str]

#: Grid pairs whose ring kernel would need more output meridians than this (finer output
#: longitudes that are not a multiple of the input's) use the sparse kernel instead.
MAX_RING_MERIDIANS = 8


def _check_angle(name: str, value: object) -> float:
    if not is_number(value) or not 0 < float(value) < math.pi:  # type: ignore[arg-type]
        raise ValueError(f"{name} must be an angle in (0, pi) radians, got {value!r}")
    return float(value)  # type: ignore[arg-type]


class _SphereLocalConv(nn.Module):
    """Shared machinery: grid bookkeeping, kernel caches, ring and sparse paths."""

    #: Whether the layer computes its output on another grid itself (``output_shape``).
    maps_grids = False

    def __init__(self, conv: DiscoConv, grid: str, out_grid: str, ring: bool,
                 cache_size: int) -> None:
        super().__init__()
        for name, value in (("grid", grid), ("out_grid", out_grid)):
            if value not in SPHERE_GRIDS:
                raise ValueError(f"{name} must be one of {SPHERE_GRIDS}, got {value!r}")
        self.conv = conv
        self.grid, self.out_grid, self.ring = grid, out_grid, bool(ring)
        self.kernels: BoundedCache[DiscoKernel] = BoundedCache(cache_size)
        self.rings: BoundedCache[SphereRingKernel] = BoundedCache(cache_size)

    @property
    def weight(self) -> nn.Parameter:
        """``[C_out, C_in, K]``."""
        return self.conv.weight

    @property
    def kernel_size(self) -> int:
        return self.conv.kernel_size

    def sparse_kernel(self, src: GridKey, dst: GridKey, dtype: torch.dtype) -> DiscoKernel:
        """The kernel from grid ``src`` to grid ``dst`` (``(nlat, nlon, kind)`` each), cached."""
        def build() -> DiscoKernel:
            src_cloud = sphere_grid(src[0], src[1], src[2], dtype=torch.float64)
            dst_cloud = src_cloud if dst == src else sphere_grid(dst[0], dst[1], dst[2],
                                                                 dtype=torch.float64)
            return self.conv.build_kernel(src_cloud, dst_cloud, dtype=dtype)

        return self.kernels.get_or_build((src, dst, dtype), build)

    def stencil(self) -> RingStencil:
        """How the layer's kernel is built (basis, radius, normalization, differential)."""
        return RingStencil(self.conv.basis, float(self.conv.radius), self.conv.normalization,
                           self.conv.differential, max_edges=self.conv.max_edges,
                           name=self.conv.radius_name, max_edges_name=self.conv.max_edges_name)

    def uses_ring(self, src: GridKey, dst: GridKey) -> bool:
        """Whether the kernel from grid ``src`` to ``dst`` is applied in ring form."""
        return self.ring and ring_meridians(src[1], dst[1]) <= MAX_RING_MERIDIANS

    def ring_kernel(self, src: GridKey, dst: GridKey, dtype: torch.dtype,
                    device: torch.device) -> SphereRingKernel:
        """The layer's kernel from grid ``src`` to ``dst`` in ring (longitude FFT) form,
        built from the output meridians' stencils only, cached."""
        def build() -> SphereRingKernel:
            return SphereRingKernel(src, dst, [self.stencil()], dtype=dtype, device=device)

        return self.rings.get_or_build((src, dst, dtype, str(device)), build)

    def fusion_key(self, x: torch.Tensor,
                   output_shape: Sequence[int] | None = None) -> tuple | None:
        """A key shared by the layers that can be applied together on ``x`` through one ring
        kernel (same input grid, output on it), or None."""
        self._check_input(x)
        src = (int(x.shape[2]), int(x.shape[3]), self.grid)
        if not self.ring or (output_shape is not None and tuple(output_shape) != src[:2]) or (
                self.out_grid != self.grid):
            return None
        return ("sphere ring", src, x.dtype, str(x.device))

    @staticmethod
    def apply_fused(layers: Sequence[_SphereLocalConv], x: torch.Tensor) -> torch.Tensor:
        """The sum of ``layers`` (which share a :meth:`fusion_key`) applied to ``x``, with their
        kernels concatenated in one ring kernel: one pair of FFTs and one product for all."""
        first = layers[0]
        grid = (int(x.shape[2]), int(x.shape[3]), first.grid)
        key = (grid, x.dtype, str(x.device), tuple(id(layer) for layer in layers))

        def build() -> SphereRingKernel:
            return SphereRingKernel(grid, grid, [layer.stencil() for layer in layers],
                                    dtype=x.dtype, device=x.device)

        ring = first.rings.get_or_build(key, build)
        out = ring.apply(x, torch.cat([layer.conv.weight for layer in layers], dim=2))
        for layer in layers:
            if layer.conv.bias is not None:
                out = out + layer.conv.bias.reshape(1, -1, 1, 1)
        return out

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.conv.in_channels:
            raise ValueError(f"x must have shape [B, {self.conv.in_channels}, nlat, nlon], got "
                             f"{tuple(getattr(x, 'shape', ()))}")

    def _convolve(self, x: torch.Tensor, src: GridKey, dst: GridKey) -> torch.Tensor:
        if self.uses_ring(src, dst):
            ring = self.ring_kernel(src, dst, x.dtype, x.device)
            out = ring.apply(x, self.conv.weight)
            if self.conv.bias is not None:
                out = out + self.conv.bias.reshape(1, -1, 1, 1)
            return out
        flat = x.flatten(2).transpose(1, 2)  # [B, N, C]
        y = self.conv(flat, self.sparse_kernel(src, dst, x.dtype))
        return y.transpose(1, 2).reshape(x.shape[0], -1, dst[0], dst[1])


class SphereDiscoConv(_SphereLocalConv):
    """Discrete-continuous convolution on latitude-longitude grids of the sphere.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_shape : int or tuple
        Basis shape (torch-harmonics convention).
    radius : float
        Support radius, a geodesic angle in radians (default pi / 16, 11.25 degrees).
    grid, out_grid : {"equiangular", "legendre-gauss"}
        Latitude rules of the input and output grids (``out_grid`` default ``grid``).
    basis : {"piecewise_linear", "morlet", "zernike"} or FilterBasis
    bias : bool
    normalization : {"none", "mean", "nodal"}
    ring : bool
        Build the output meridians' stencils only and apply them through FFTs in
        longitude (False: the sparse kernel between the full grids, the same
        operator; it is also used for grid pairs that need more than
        :data:`MAX_RING_MERIDIANS` meridians).
    cache_size : int
        Grids whose kernels are kept.
    max_edges : int
        Largest kernel built: a radius covering most of the sphere is refused before
        anything is allocated, naming the radius and the memory it would take.
    radius_name, max_edges_name : str
        How error messages call ``radius`` and ``max_edges`` (a model passes its own
        argument names, e.g. ``"disco_radius"``).

    Notes
    -----
    Shapes: forward(x, output_shape=None): ``[B, C_in, nlat, nlon] -> [B, C_out, *output_shape]``
    (default: the input's grid).

    Examples
    --------
    >>> import torch
    >>> conv = SphereDiscoConv(3, 8, radius=0.3)
    >>> conv(torch.randn(2, 3, 17, 32)).shape
    torch.Size([2, 8, 17, 32])
    >>> conv(torch.randn(2, 3, 17, 32), output_shape=(9, 16)).shape  # onto a coarser grid
    torch.Size([2, 8, 9, 16])
    """

    maps_grids = True

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_shape: int | tuple[int, ...] = (3, 4), radius: float = math.pi / 16,
                 grid: str = "equiangular", out_grid: str | None = None,
                 basis: str | FilterBasis = "piecewise_linear", bias: bool = False,
                 normalization: str = "mean", ring: bool = True, cache_size: int = 4,
                 max_edges: int = DEFAULT_MAX_EDGES, *, radius_name: str = "radius",
                 max_edges_name: str = "max_edges") -> None:
        conv = DiscoConv(in_channels, out_channels, kernel_shape, basis,
                         _check_angle(radius_name, radius), bias=bias,
                         normalization=normalization, max_edges=max_edges,
                         radius_name=radius_name, max_edges_name=max_edges_name)
        super().__init__(conv, grid, grid if out_grid is None else out_grid, ring, cache_size)

    def forward(self, x: torch.Tensor,
                output_shape: Sequence[int] | None = None) -> torch.Tensor:
        self._check_input(x)
        src = (int(x.shape[2]), int(x.shape[3]), self.grid)
        out = src[:2] if output_shape is None else tuple(int(n) for n in output_shape)
        return self._convolve(x, src, (out[0], out[1], self.out_grid))

    def extra_repr(self) -> str:
        return f"grid={self.grid!r}, out_grid={self.out_grid!r}, ring={self.ring}"


class SphereDifferentialConv(_SphereLocalConv):
    """Learned first-order differential operator on latitude-longitude grids.

    The zero-sum, linearly consistent DISCO stencil of
    :class:`~geo_neuralop.layers.PointDifferentialConv` on the input's grid,
    divided by the radius; it converges to a directional derivative as the
    grid is refined. Its output stays on the input grid.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_shape : int or tuple
    radius : float
        Stencil radius, radians.
    grid : {"equiangular", "legendre-gauss"}
    basis, bias, ring, cache_size, max_edges, radius_name, max_edges_name
        As in :class:`SphereDiscoConv`.
    init_length : float, optional
        Scale of the initial weights (default: the radius, so the layer starts as
        small as a difference over the radius).

    Notes
    -----
    Shapes: forward(x): ``[B, C_in, nlat, nlon] -> [B, C_out, nlat, nlon]``.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_shape: int | tuple[int, ...] = (3, 4), radius: float = math.pi / 16,
                 grid: str = "equiangular", basis: str | FilterBasis = "piecewise_linear",
                 bias: bool = False, ring: bool = True, init_length: float | None = None,
                 cache_size: int = 4, max_edges: int = DEFAULT_MAX_EDGES, *,
                 radius_name: str = "radius", max_edges_name: str = "max_edges") -> None:
        radius = _check_angle(radius_name, radius)
        conv = PointDifferentialConv(in_channels, out_channels, kernel_shape, basis, radius,
                                     bias=bias,
                                     init_length=radius if init_length is None else init_length,
                                     max_edges=max_edges, radius_name=radius_name,
                                     max_edges_name=max_edges_name)
        super().__init__(conv, grid, grid, ring, cache_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        src = (int(x.shape[2]), int(x.shape[3]), self.grid)
        return self._convolve(x, src, src)

    def extra_repr(self) -> str:
        return f"grid={self.grid!r}, ring={self.ring}"
