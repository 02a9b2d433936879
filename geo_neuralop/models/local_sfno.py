"""``LocalSFNO``: spherical spectral blocks fused with sphere DISCO and differential layers.

Each block sums, on the block's output grid::

    y = SphericalSpectralConv(x) + DiscoConv_S2(x) + PointDifferentialConv_S2(x)

The local layers act on the sphere itself: the DISCO kernel uses geodesic polar
coordinates in each output point's frame (the torch-harmonics convention) with
the quadrature weights of the latitude-longitude grid the input actually has,
and the differential kernel is the zero-sum, linearly consistent version of it
divided by its radius. Both radii are angles fixed at construction, so the same
weights define the same operator at every resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from geo_neuralop.geometry.sphere import sphere_grid
from geo_neuralop.kernels.disco import DiscoKernel
from geo_neuralop.layers.differential_conv import PointDifferentialConv
from geo_neuralop.layers.disco_conv import DiscoConv
from geo_neuralop.layers.sphere_ring_conv import SphereRingKernel
from geo_neuralop.models.local_no import layer_flags
from geo_neuralop.models.registry import register_model
from geo_neuralop.models.sfno import SFNO

__all__ = ["LocalSFNO"]


@register_model("local_sfno")
class LocalSFNO(SFNO):
    """SFNO whose blocks also hold local DISCO and differential convolutions on the sphere.

    Parameters
    ----------
    in_channels, out_channels, lmax, hidden_channels, n_layers, mmax, grid, internal_grid,
    internal_scale, operator_type, positional_embedding, lifting_channel_ratio,
    projection_channel_ratio, activation, norm, use_channel_mlp, channel_mlp_expansion,
    channel_mlp_skip, skip, conv_bias
        As in :class:`~geo_neuralop.models.SFNO`.
    disco_layers, diff_layers : bool or sequence of bool
        Which blocks have a DISCO / differential term.
    disco_kernel_shape : int or tuple
        Piecewise-linear basis shape of the DISCO layers (torch-harmonics convention).
    disco_radius : float
        DISCO support radius, radians (default pi / 16, 11.25 degrees).
    diff_kernel_shape : int or tuple
        Basis of the differential layers.
    diff_radius : float, optional
        Radius of the differential stencils, radians (default ``disco_radius``).
        Their output is a difference divided by this radius; initial weights are
        scaled by it so the layers start as small as plain differences.

    Shapes
    ------
    forward(x): ``[B, C_in, nlat, nlon] -> [B, C_out, nlat, nlon]`` on ``grid`` (any resolution).

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.models import LocalSFNO
    >>> model = LocalSFNO(3, 3, lmax=12, hidden_channels=8, n_layers=2)
    >>> model(torch.randn(1, 3, 24, 48)).shape
    torch.Size([1, 3, 24, 48])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        lmax: int,
        hidden_channels: int = 32,
        n_layers: int = 4,
        mmax: int | None = None,
        grid: str = "equiangular",
        internal_grid: str | None = None,
        internal_scale: int = 1,
        operator_type: str = "driscoll-healy",
        positional_embedding: str | None = "sphere",
        disco_layers: bool | Sequence[bool] = True,
        diff_layers: bool | Sequence[bool] = True,
        disco_kernel_shape: int | Sequence[int] = (3, 4),
        disco_radius: float = math.pi / 16,
        diff_kernel_shape: int | Sequence[int] = (3, 4),
        diff_radius: float | None = None,
        lifting_channel_ratio: float = 2.0,
        projection_channel_ratio: float = 2.0,
        activation: str = "gelu",
        norm: str | None = None,
        use_channel_mlp: bool = True,
        channel_mlp_expansion: float = 0.5,
        channel_mlp_skip: str | None = "soft-gating",
        skip: str | None = "linear",
        conv_bias: bool = False,
    ) -> None:
        super().__init__(
            in_channels, out_channels, lmax, hidden_channels=hidden_channels, n_layers=n_layers,
            mmax=mmax, grid=grid, internal_grid=internal_grid, internal_scale=internal_scale,
            operator_type=operator_type, positional_embedding=positional_embedding,
            lifting_channel_ratio=lifting_channel_ratio,
            projection_channel_ratio=projection_channel_ratio, activation=activation, norm=norm,
            use_channel_mlp=use_channel_mlp, channel_mlp_expansion=channel_mlp_expansion,
            channel_mlp_skip=channel_mlp_skip, skip=skip, conv_bias=conv_bias,
        )
        diff_radius = disco_radius if diff_radius is None else diff_radius
        for name, value in (("disco_radius", disco_radius), ("diff_radius", diff_radius)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                0 < value < math.pi
            ):
                raise ValueError(f"{name} must be an angle in (0, pi) radians, got {value!r}")
        disco_flags = layer_flags(disco_layers, n_layers, "disco_layers")
        diff_flags = layer_flags(diff_layers, n_layers, "diff_layers")
        disco_shape = (disco_kernel_shape if isinstance(disco_kernel_shape, int)
                       else tuple(disco_kernel_shape))
        diff_shape = (diff_kernel_shape if isinstance(diff_kernel_shape, int)
                      else tuple(diff_kernel_shape))
        self.disco = nn.ModuleList([
            DiscoConv(hidden_channels, hidden_channels, disco_shape, radius=float(disco_radius),
                      bias=False) if flag else nn.Identity()
            for flag in disco_flags
        ])
        self.diff = nn.ModuleList([
            PointDifferentialConv(hidden_channels, hidden_channels, diff_shape,
                                  radius=float(diff_radius)) if flag else nn.Identity()
            for flag in diff_flags
        ])
        with torch.no_grad():
            for layer in self.diff:
                if isinstance(layer, PointDifferentialConv):
                    layer.weight.mul_(float(diff_radius))
        self.disco_flags, self.diff_flags = disco_flags, diff_flags
        self._kernels: dict[tuple, DiscoKernel] = {}
        self._rings: dict[tuple, SphereRingKernel] = {}
        # apply the local layers by FFTs in longitude where a block keeps its grid (set
        # False for the sparse kernels: the same operator, slower)
        self.ring_fft = True
        self.config.update({
            "disco_layers": disco_flags,
            "diff_layers": diff_flags,
            "disco_kernel_shape": disco_shape if isinstance(disco_shape, int)
            else list(disco_shape),
            "disco_radius": float(disco_radius),
            "diff_kernel_shape": diff_shape if isinstance(diff_shape, int) else list(diff_shape),
            "diff_radius": float(diff_radius),
        })

    def _kernel(self, layer: DiscoConv, src: tuple[int, int, str], dst: tuple[int, int, str],
                dtype: torch.dtype, differential: bool, cache: bool = True) -> DiscoKernel:
        key = (src, dst, dtype, differential)
        if key not in self._kernels:
            src_grid = sphere_grid(src[0], src[1], src[2], dtype=torch.float64)
            dst_grid = src_grid if dst == src else sphere_grid(dst[0], dst[1], dst[2],
                                                               dtype=torch.float64)
            kernel = layer.build_kernel(src_grid, dst_grid, dtype=dtype)
            if not cache:
                return kernel
            self._kernels[key] = kernel
        return self._kernels[key]

    def _ring(self, index: int, grid: tuple[int, int, str], dtype: torch.dtype,
              device: torch.device) -> SphereRingKernel:
        """Block ``index``'s DISCO and differential kernels on ``grid`` in ring (longitude
        FFT) form, concatenated along the basis axis; built once per grid and layer set."""
        flags = (self.disco_flags[index], self.diff_flags[index])
        key = (grid, dtype, str(device), flags)
        if key not in self._rings:
            kernels = []
            if flags[0]:
                kernels.append(self._kernel(self.disco[index], grid, grid, torch.float64, False,
                                            cache=False))
            if flags[1]:
                kernels.append(self._kernel(self.diff[index], grid, grid, torch.float64, True,
                                            cache=False))
            self._rings[key] = SphereRingKernel(kernels, grid[0], grid[1], dtype=dtype,
                                                device=device)
        return self._rings[key]

    def local_terms(self, index: int, x: torch.Tensor,
                    output_shape: tuple[int, int]) -> list[torch.Tensor]:
        """DISCO and differential terms of block ``index`` for ``x [B, C, nlat, nlon]``,
        on the block's output grid ``output_shape``.

        When the block keeps its grid, both terms are applied together through FFTs in
        longitude (:class:`~geo_neuralop.layers.sphere_ring_conv.SphereRingKernel`: the
        same operator as the sparse kernels, 2.8x faster at 64 x 128 in
        ``benchmarks/sphere_ring.py``) and returned as one
        term; otherwise through the sparse kernels."""
        conv = self.blocks[index].conv
        src = (x.shape[2], x.shape[3], conv.grid)
        dst = (output_shape[0], output_shape[1], conv.out_grid)
        if self.ring_fft and src == dst and (self.disco_flags[index] or self.diff_flags[index]):
            ring = self._ring(index, src, x.dtype, x.device)
            weights = [layer.weight for layer, flag in
                       ((self.disco[index], self.disco_flags[index]),
                        (self.diff[index], self.diff_flags[index])) if flag]
            return [ring.apply(x, torch.cat(weights, dim=2))]
        flat = x.flatten(2).transpose(1, 2)  # [B, N, C]
        terms = []
        if self.disco_flags[index]:
            layer = self.disco[index]
            y = layer(flat, self._kernel(layer, src, dst, x.dtype, False))
            terms.append(y.transpose(1, 2).reshape(*x.shape[:2], *output_shape))
        if self.diff_flags[index]:
            layer = self.diff[index]
            y = layer(flat, self._kernel(layer, src, src, x.dtype, True))
            y = y.transpose(1, 2).reshape(x.shape)
            if src != dst:
                y = conv.transform(y, output_shape=output_shape)
            terms.append(y)
        return terms

    def forward_blocks(self, x: torch.Tensor, shapes: Sequence[tuple[int, int]]) -> torch.Tensor:
        for i, (block, shape) in enumerate(zip(self.blocks, shapes, strict=True)):
            x = block(x, extra=self.local_terms(i, x, tuple(shape)), output_shape=shape)
        return x

    def _apply(self, fn, recurse: bool = True):
        self._kernels, self._rings = {}, {}
        return super()._apply(fn, recurse)
