"""``LocalSFNO``: spherical spectral blocks fused with sphere DISCO and differential layers.

Each block sums, on the block's output grid::

    y = SphericalSpectralConv(x) + SphereDiscoConv(x) + SphereDifferentialConv(x)

The local layers build their kernels for the grid the input actually has, with
radii that are angles fixed at construction, so the same weights define the same
operator at every resolution. They build only the stencils of the output meridians
that the longitude symmetry needs and apply them through FFTs in longitude
(:class:`~geo_neuralop.kernels.SphereRingKernel`), including the first and last
blocks that move between the data grid and an internal grid; a block's DISCO and
differential layers share one ring kernel. Build time and memory grow like
``nlat x neighbours``, so 0.25-degree grids (721 x 1440) are built in seconds
(``benchmarks/sphere_scale.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from geo_neuralop.kernels.disco import DEFAULT_MAX_EDGES
from geo_neuralop.layers.sphere_disco_conv import SphereDifferentialConv, SphereDiscoConv
from geo_neuralop.models.registry import register_model
from geo_neuralop.models.sfno import SFNO
from geo_neuralop.utils.checks import layer_flags

__all__ = ["LocalSFNO"]


@register_model("local_sfno", family="sphere")
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
    max_kernel_edges : int
        Largest local kernel built (pairs of points within the radius that a kernel
        stores: the output meridians' on the ring path, every output point's on the
        per-point path): a larger one is refused at the first forward pass, before
        anything is allocated, naming the radius and the memory it would take; raise
        it to build such a kernel anyway.
    checkpoint_blocks : bool
        Activation checkpointing of the blocks in training (see
        :class:`~geo_neuralop.models.SFNO`).

    Notes
    -----
    Shapes: forward(x): ``[B, C_in, nlat, nlon] -> [B, C_out, nlat, nlon]`` on ``grid``
    (any resolution).

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
        max_kernel_edges: int = DEFAULT_MAX_EDGES,
        checkpoint_blocks: bool = False,
    ) -> None:
        super().__init__(
            in_channels, out_channels, lmax, hidden_channels=hidden_channels, n_layers=n_layers,
            mmax=mmax, grid=grid, internal_grid=internal_grid, internal_scale=internal_scale,
            operator_type=operator_type, positional_embedding=positional_embedding,
            lifting_channel_ratio=lifting_channel_ratio,
            projection_channel_ratio=projection_channel_ratio, activation=activation, norm=norm,
            use_channel_mlp=use_channel_mlp, channel_mlp_expansion=channel_mlp_expansion,
            channel_mlp_skip=channel_mlp_skip, skip=skip, conv_bias=conv_bias,
            checkpoint_blocks=checkpoint_blocks,
        )
        # messages name the argument the user set (diff_radius defaults to disco_radius)
        diff_name = "disco_radius" if diff_radius is None else "diff_radius"
        diff_radius = disco_radius if diff_radius is None else diff_radius
        for name, value in (("disco_radius", disco_radius), ("diff_radius", diff_radius)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                0 < value < math.pi
            ):
                raise ValueError(f"{name} must be an angle in (0, pi) radians, got {value!r}")
        disco_flags = layer_flags(disco_layers, n_layers, "disco_layers")
        diff_flags = layer_flags(diff_layers, n_layers, "diff_layers")
        # all DISCO layers, then all differential layers (the order of their random weights)
        limit = {"max_edges": max_kernel_edges, "max_edges_name": "max_kernel_edges"}
        disco = [SphereDiscoConv(hidden_channels, hidden_channels, disco_kernel_shape,
                                 radius=float(disco_radius), grid=block.conv.grid,
                                 out_grid=block.conv.out_grid, radius_name="disco_radius",
                                 **limit) if flag else None
                 for block, flag in zip(self.blocks, disco_flags, strict=True)]
        diff = [SphereDifferentialConv(hidden_channels, hidden_channels, diff_kernel_shape,
                                       radius=float(diff_radius), grid=block.conv.grid,
                                       radius_name=diff_name, **limit)
                if flag else None for block, flag in zip(self.blocks, diff_flags, strict=True)]
        for block, *local in zip(self.blocks, disco, diff, strict=True):
            block.local.extend(layer for layer in local if layer is not None)

    @property
    def ring_fft(self) -> bool:
        """Whether the local layers use longitude FFTs where a block keeps its grid."""
        return all(layer.ring for block in self.blocks for layer in block.local)

    @ring_fft.setter
    def ring_fft(self, value: bool) -> None:
        for block in self.blocks:
            for layer in block.local:
                layer.ring = bool(value)
