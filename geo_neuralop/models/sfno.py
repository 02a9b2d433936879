"""Spherical Fourier neural operator (SFNO, Bonev et al., ICML 2023) on latitude-longitude grids."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from geo_neuralop.geometry.quadrature import SPHERE_GRIDS
from geo_neuralop.layers.channel_mlp import ChannelMLP
from geo_neuralop.layers.embeddings import SphereEmbedding, ZonalEmbedding
from geo_neuralop.layers.spectral_block import SpectralBlock
from geo_neuralop.layers.spherical_spectral_conv import SphericalSpectralConv
from geo_neuralop.models.registry import register_model
from geo_neuralop.utils.cache import BoundedCache

__all__ = ["SFNO", "internal_grid_shape"]


def internal_grid_shape(nlat: int, nlon: int, scale: int) -> tuple[int, int]:
    """Latent grid of an SFNO for an ``nlat x nlon`` input: ``((nlat - 1) // s + 1, nlon // s)``.

    This is torch-harmonics' SFNO rule (the latitude grid includes both poles).
    """
    return (nlat - 1) // scale + 1, max(1, nlon // scale)


@register_model("sfno", family="sphere")
class SFNO(nn.Module):
    """Spherical Fourier neural operator: spherical-harmonic blocks on a latitude-longitude grid.

    ``[sphere embedding] -> lifting -> n_layers x SpectralBlock(SphericalSpectralConv)
    -> projection``. The first block may move the field from the input grid onto
    an internal grid (``internal_grid``, ``internal_scale``) and the last block
    back, as torch-harmonics' SFNO does; skips then use the band-limited
    resampling of the convolution. The transforms are built for the grid sizes
    met at run time, so the same model runs at any resolution.

    Parameters
    ----------
    in_channels, out_channels : int
    lmax : int
        Spherical harmonic degrees kept (``l < lmax``), limited by each grid.
    hidden_channels, n_layers : int
    mmax : int, optional
        Orders kept (``m < mmax``), default ``lmax``.
    grid : {"equiangular", "legendre-gauss"}
        Latitude rule of the input and output.
    internal_grid : {"equiangular", "legendre-gauss"}, optional
        Latitude rule of the internal grid (default: ``grid``).
    internal_scale : int
        Downsampling factor of the internal grid (see :func:`internal_grid_shape`).
    operator_type : {"driscoll-healy", "driscoll-healy-complex", "diagonal"}
        See :class:`~geo_neuralop.layers.SphericalSpectralConv`.
    positional_embedding : {"sphere", "zonal"} or None
        ``"sphere"``: append the unit vector ``(x, y, z)`` of each grid point to the
        input. ``"zonal"``: add a learned function of latitude per channel to the lifted
        features (:class:`~geo_neuralop.layers.ZonalEmbedding`, zonal harmonics of degree
        ``< lmax``), the resolution-independent form of torch-harmonics' learnable
        latitude embedding. Without either, every layer commutes with longitude shifts
        and the spherical convolutions with all rotations: the model cannot tell
        latitudes apart (on rotating shallow water this doubles the error, see
        ``benchmarks/results/accuracy/swe_position``).
    lifting_channel_ratio, projection_channel_ratio : float
        Hidden widths of the lifting and projection MLPs relative to
        ``hidden_channels`` (0: a single linear layer, torch-harmonics' encoder and
        decoder). At 64 x 128 the default two-layer ones are why a training step takes
        about 1.08x torch-harmonics' SFNO's time rather than 0.92x
        (``benchmarks/results/models_sfno_split.md``).
    activation : str
    norm : {"instance_norm", "group_norm", "layer_norm"} or None
    use_channel_mlp : bool
    channel_mlp_expansion : float
    channel_mlp_skip : {"linear", "identity", "soft-gating"} or None
    skip : {"linear", "identity", "soft-gating"} or None
    conv_bias : bool
    factorization : {"cp", "tucker", "tt", "dense"} or None
        Store the spherical weights factorized (a tensorized SFNO; see
        :class:`~geo_neuralop.layers.SphericalSpectralConv`).
    rank : int, float or sequence of int
        Rank of the factorization (a float in (0, 1]: fraction of the dense parameters).
    checkpoint_blocks : bool
        Activation checkpointing in training: each block, the lifting and the projection
        keep only their input for the backward pass and recompute the rest
        (``torch.utils.checkpoint``, non-reentrant), trading about one more forward pass
        for their activations (the largest part of the memory at 0.25 degrees: the
        lifting's and projection's hidden layers alone hold 0.5 GB each on the 721 x 1440
        grid). Gradients are unchanged.

    Notes
    -----
    Shapes: forward(x): ``[B, C_in, nlat, nlon] -> [B, C_out, nlat, nlon]``.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.models import SFNO
    >>> model = SFNO(in_channels=3, out_channels=3, lmax=16, hidden_channels=8, n_layers=2)
    >>> model(torch.randn(2, 3, 17, 32)).shape
    torch.Size([2, 3, 17, 32])
    >>> fine = SFNO(3, 3, lmax=16, hidden_channels=8, n_layers=3, internal_grid="legendre-gauss",
    ...             internal_scale=2)
    >>> fine(torch.randn(1, 3, 33, 64)).shape  # blocks work on a 17 x 32 Gauss grid
    torch.Size([1, 3, 33, 64])
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
        lifting_channel_ratio: float = 2.0,
        projection_channel_ratio: float = 2.0,
        activation: str = "gelu",
        norm: str | None = None,
        use_channel_mlp: bool = True,
        channel_mlp_expansion: float = 0.5,
        channel_mlp_skip: str | None = "soft-gating",
        skip: str | None = "linear",
        conv_bias: bool = False,
        factorization: str | None = None,
        rank: float | int | Sequence[int] = 1.0,
        checkpoint_blocks: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(checkpoint_blocks, bool):
            raise TypeError(f"checkpoint_blocks must be a bool, got {checkpoint_blocks!r}")
        self.checkpoint_blocks = checkpoint_blocks
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("hidden_channels", hidden_channels), ("n_layers", n_layers),
                            ("internal_scale", internal_scale)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if grid not in SPHERE_GRIDS:
            raise ValueError(f"grid must be one of {SPHERE_GRIDS}, got {grid!r}")
        internal = grid if internal_grid is None else internal_grid
        if internal not in SPHERE_GRIDS:
            raise ValueError(f"internal_grid must be one of {SPHERE_GRIDS}, got {internal_grid!r}")
        for name, value in (("lifting_channel_ratio", lifting_channel_ratio),
                            ("projection_channel_ratio", projection_channel_ratio)):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        self.positional_embedding, self.zonal_embedding, n_embed = None, None, 0
        if positional_embedding == "sphere":
            self.positional_embedding = SphereEmbedding(grid)
            n_embed = 3
        elif positional_embedding == "zonal":
            self.zonal_embedding = ZonalEmbedding(hidden_channels, lmax, grid)
        elif positional_embedding is not None and positional_embedding != "none":
            raise ValueError(f"positional_embedding must be 'sphere', 'zonal' or None, got "
                             f"{positional_embedding!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.grid = grid
        self.internal_grid = internal
        self.internal_scale = internal_scale
        self.n_layers = n_layers
        self.resamples = internal != grid or internal_scale != 1

        def grids(i: int) -> tuple[str, str]:
            if not self.resamples or n_layers == 1:
                return grid, grid
            return (grid if i == 0 else internal), (grid if i == n_layers - 1 else internal)

        lifting_hidden = round(lifting_channel_ratio * hidden_channels)
        self.lifting = ChannelMLP(in_channels + n_embed, hidden_channels, max(lifting_hidden, 1),
                                  n_layers=2 if lifting_hidden > 0 else 1, activation=activation)
        # one store of Legendre tables for all blocks, one table per grid (at 0.25 degrees
        # the input grid's takes 0.38 GB, the internal grid's 0.19 GB)
        operators: BoundedCache[tuple] = BoundedCache(4 * (n_layers + 2))
        self.blocks = nn.ModuleList([
            SpectralBlock(
                SphericalSpectralConv(hidden_channels, hidden_channels, lmax, mmax=mmax,
                                      grid=grids(i)[0], out_grid=grids(i)[1],
                                      operator_type=operator_type, bias=conv_bias,
                                      factorization=factorization, rank=rank,
                                      operator_cache=operators),
                hidden_channels, hidden_channels, skip=skip, use_channel_mlp=use_channel_mlp,
                channel_mlp_expansion=channel_mlp_expansion, channel_mlp_skip=channel_mlp_skip,
                norm=norm, activation=activation, final_activation=i < n_layers - 1,
            )
            for i in range(n_layers)
        ])
        projection_hidden = round(projection_channel_ratio * hidden_channels)
        self.projection = ChannelMLP(hidden_channels, out_channels, max(projection_hidden, 1),
                                     n_layers=2 if projection_hidden > 0 else 1,
                                     activation=activation)

    def block_shapes(self, nlat: int, nlon: int) -> list[tuple[int, int]]:
        """Output grid shape of every block for an ``nlat x nlon`` input."""
        if not self.resamples or self.n_layers == 1:
            return [(nlat, nlon)] * self.n_layers
        inner = internal_grid_shape(nlat, nlon, self.internal_scale)
        return [inner] * (self.n_layers - 1) + [(nlat, nlon)]

    def lift(self, x: torch.Tensor) -> torch.Tensor:
        """Positional embedding and lifting on the input grid."""
        if self.positional_embedding is not None:
            x = self.positional_embedding(x)
        h = self.lifting(x)
        return h if self.zonal_embedding is None else self.zonal_embedding(h)

    def forward_blocks(self, x: torch.Tensor, shapes: Sequence[tuple[int, int]]) -> torch.Tensor:
        """The spherical blocks; ``shapes``: the output grid of every block."""
        recompute = self.checkpoint_blocks and self.training and torch.is_grad_enabled()
        for block, shape in zip(self.blocks, shapes, strict=True):
            if recompute:
                x = checkpoint(block, x, output_shape=shape, use_reentrant=False)
            else:
                x = block(x, output_shape=shape)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the operator.

        Parameters
        ----------
        x : torch.Tensor, shape [B, C_in, nlat, nlon]
            Fields on a ``grid`` latitude-longitude grid (torch-harmonics ordering).

        Returns
        -------
        torch.Tensor, shape [B, C_out, nlat, nlon]
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must have shape [B, {self.in_channels}, nlat, nlon], got {tuple(x.shape)}"
            )
        shapes = self.block_shapes(x.shape[2], x.shape[3])
        if self.checkpoint_blocks and self.training and torch.is_grad_enabled():
            h = checkpoint(self.lift, x, use_reentrant=False)
            h = self.forward_blocks(h, shapes)
            return checkpoint(self.projection, h, use_reentrant=False)
        return self.projection(self.forward_blocks(self.lift(x), shapes))
