"""Fourier neural operator (FNO) on regular grids, and the shared grid-operator skeleton.

:class:`GridNeuralOperator` holds what FNO-type models on regular grids share:
positional embedding, lifting, optional domain padding, a stack of
:class:`~geo_neuralop.layers.SpectralBlock` (a global convolution and optional
local layers each), and the projection. :class:`FNO`,
:class:`~geo_neuralop.models.AMFNO` and :class:`~geo_neuralop.models.LocalNO`
only choose the layers of the blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from geo_neuralop.geometry.grid_spec import GridSpec
from geo_neuralop.layers.channel_mlp import ChannelMLP
from geo_neuralop.layers.embeddings import GridEmbedding
from geo_neuralop.layers.spectral_block import SpectralBlock
from geo_neuralop.layers.spectral_conv import SpectralConv
from geo_neuralop.models.registry import register_model
from geo_neuralop.utils.checks import as_tuple, check_domain, check_positive_int, per_axis

__all__ = ["FNO", "GridNeuralOperator"]


class GridNeuralOperator(nn.Module):
    """Lifting -> spectral blocks -> projection, for fields ``[B, C, *spatial]`` on regular grids.

    Parameters
    ----------
    in_channels, out_channels : int
    n_dim : int
        Number of spatial axes (1, 2 or 3).
    conv_factory : callable
        ``conv_factory(index) -> nn.Module``: the global convolution of block
        ``index`` (``hidden_channels -> hidden_channels``).
    local_factory : callable, optional
        ``local_factory(index) -> list of nn.Module``: the local layers of block
        ``index`` (see :class:`~geo_neuralop.layers.SpectralBlock`).
    hidden_channels : int
    n_layers : int
    lifting_channel_ratio, projection_channel_ratio : float
        Hidden widths of the lifting and projection MLPs relative to
        ``hidden_channels`` (0: a single linear layer, torch-harmonics' encoder and
        decoder).
    positional_embedding : {"grid"} or None
        Append the grid coordinates (on ``domain``) to the input.
    domain : sequence of (lo, hi), optional
        Physical extent of each axis (default the unit box): the positional
        embedding's coordinates and the grid of the local layers.
    periodic : bool or sequence of bool
        Periodic axes of the domain (for the local layers).
    domain_padding : float
        Zero-pad every axis by this fraction of its size (rounded) before the
        blocks and crop afterwards, for non-periodic problems.
    activation, norm, use_channel_mlp, channel_mlp_expansion, channel_mlp_skip, skip
        See :class:`~geo_neuralop.layers.SpectralBlock` (``skip`` is the block's
        skip around the convolution).
    smooth_embedding : bool
        Embed with :class:`~geo_neuralop.layers.GridEmbedding`'s smooth coordinates on
        the ``periodic`` axes (cos and sin of the angle), for models with local layers
        that would see the jump of a raw coordinate at the wrap.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_dim: int,
        conv_factory: Callable[[int], nn.Module],
        local_factory: Callable[[int], Sequence[nn.Module]] | None = None,
        hidden_channels: int = 32,
        n_layers: int = 4,
        lifting_channel_ratio: float = 2.0,
        projection_channel_ratio: float = 2.0,
        positional_embedding: str | None = "grid",
        domain: Sequence[Sequence[float]] | None = None,
        periodic: bool | Sequence[bool] = True,
        domain_padding: float = 0.0,
        activation: str = "gelu",
        norm: str | None = None,
        use_channel_mlp: bool = True,
        channel_mlp_expansion: float = 0.5,
        channel_mlp_skip: str | None = "soft-gating",
        skip: str | None = "linear",
        smooth_embedding: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("hidden_channels", hidden_channels), ("n_layers", n_layers)):
            check_positive_int(name, value)
        if n_dim not in (1, 2, 3):
            raise ValueError(f"n_dim must be 1, 2 or 3, got {n_dim!r}")
        self.domain = check_domain(domain, n_dim)
        self.periodic = tuple(bool(p) for p in per_axis(periodic, n_dim, "periodic"))
        if not (isinstance(domain_padding, (int, float)) and 0.0 <= domain_padding < 1.0):
            raise ValueError(f"domain_padding must be a fraction in [0, 1), got {domain_padding!r}")
        for name, value in (("lifting_channel_ratio", lifting_channel_ratio),
                            ("projection_channel_ratio", projection_channel_ratio)):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if positional_embedding == "grid":
            self.positional_embedding = GridEmbedding(
                n_dim, self.domain, self.periodic if smooth_embedding else None)
            n_embed = self.positional_embedding.out_channels_added
        elif positional_embedding is None or positional_embedding == "none":
            self.positional_embedding = None
            n_embed = 0
        else:
            raise ValueError(
                f"positional_embedding must be 'grid' or None, got {positional_embedding!r}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.n_dim = n_dim
        self.hidden_channels = hidden_channels
        self.n_layers = n_layers
        self.domain_padding = float(domain_padding)
        lifting_hidden = round(lifting_channel_ratio * hidden_channels)
        self.lifting = ChannelMLP(
            in_channels + n_embed, hidden_channels, max(lifting_hidden, 1),
            n_layers=2 if lifting_hidden > 0 else 1, activation=activation,
        )
        self.blocks = nn.ModuleList([
            SpectralBlock(
                conv_factory(i), hidden_channels, hidden_channels,
                local=None if local_factory is None else local_factory(i), skip=skip,
                use_channel_mlp=use_channel_mlp, channel_mlp_expansion=channel_mlp_expansion,
                channel_mlp_skip=channel_mlp_skip, norm=norm, activation=activation,
                final_activation=i < n_layers - 1,
            )
            for i in range(n_layers)
        ])
        projection_hidden = round(projection_channel_ratio * hidden_channels)
        self.projection = ChannelMLP(hidden_channels, out_channels, max(projection_hidden, 1),
                                     n_layers=2 if projection_hidden > 0 else 1,
                                     activation=activation)

    # ------------------------------------------------------------------ pieces

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != self.n_dim + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must have shape [B, {self.in_channels}, *{self.n_dim} spatial axes], got "
                f"{tuple(x.shape)}"
            )

    def _padding(self, shape: Sequence[int]) -> list[int]:
        return [round(self.domain_padding * n) for n in shape]

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pad the end of every spatial axis by ``domain_padding`` (identity if 0)."""
        if self.domain_padding == 0.0:
            return x
        pads = self._padding(x.shape[2:])
        spec = [p for amount in reversed(pads) for p in (0, amount)]
        return F.pad(x, spec)

    def unpad(self, x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
        """Crop padded fields back to ``shape``."""
        if self.domain_padding == 0.0:
            return x
        index = (slice(None), slice(None)) + tuple(slice(0, n) for n in shape)
        return x[index]

    def lift(self, x: torch.Tensor) -> torch.Tensor:
        """Positional embedding and lifting: ``[B, C_in, *grid] -> [B, hidden, *grid]``."""
        if self.positional_embedding is not None:
            x = self.positional_embedding(x)
        return self.lifting(x)

    def hidden_grid(self, shape: Sequence[int]) -> GridSpec | None:
        """The grid of the blocks for an input of spatial ``shape``: the domain padded by
        ``domain_padding`` (same spacing, a proportionally larger box); None without padding
        (each local layer then takes its domain at the input's resolution)."""
        if self.domain_padding == 0.0:
            return None
        return GridSpec(tuple(shape), self.domain, self.periodic).padded(self._padding(shape))

    def forward_blocks(self, x: torch.Tensor, output_shape: Sequence[int] | None = None,
                       grid: GridSpec | None = None) -> torch.Tensor:
        """The stack of blocks on hidden fields ``[B, hidden, *shape]`` on ``grid``.

        ``output_shape`` applies to the last block (the others keep the grid).
        """
        for i, block in enumerate(self.blocks):
            last = i == len(self.blocks) - 1
            x = block(x, output_shape=output_shape if last else None, grid=grid)
        return x

    def forward(self, x: torch.Tensor, output_shape: Sequence[int] | None = None) -> torch.Tensor:
        """Apply the operator.

        Parameters
        ----------
        x : torch.Tensor, shape [B, C_in, n_1, ..., n_d]
            Input functions sampled on a regular grid (any resolution).
        output_shape : sequence of int, optional
            Grid of the output (the last block samples its result there); not
            combinable with ``domain_padding``.

        Returns
        -------
        torch.Tensor, shape [B, C_out, *output_shape]
        """
        self._check_input(x)
        if output_shape is not None:
            output_shape = as_tuple(output_shape, "output_shape")
            if len(output_shape) != self.n_dim:
                raise ValueError(f"output_shape must have {self.n_dim} entries, got "
                                 f"{output_shape!r}")
            if self.domain_padding:
                raise ValueError("output_shape cannot be combined with domain_padding > 0")
        shape = tuple(x.shape[2:])
        h = self.pad(self.lift(x))
        h = self.forward_blocks(h, output_shape, self.hidden_grid(shape))
        h = self.unpad(h, shape)
        return self.projection(h)


@register_model("fno", family="grid")
class FNO(GridNeuralOperator):
    """Fourier neural operator (Li et al., ICLR 2021) on periodic regular grids in 1-3D.

    ``lifting -> n_layers x [SpectralConv + linear skip, GELU, channel MLP] -> projection``,
    with neuraloperator's defaults (grid positional embedding, soft-gated
    channel-MLP skip). See :class:`~geo_neuralop.layers.SpectralConv` for the
    mode convention (``n_modes[d] = m`` keeps ``|k_d| <= m // 2``).

    Parameters
    ----------
    in_channels, out_channels : int
    n_modes : int or sequence of int
        Modes per spatial axis; its length sets the number of axes.
    hidden_channels : int
    n_layers : int
    lifting_channel_ratio, projection_channel_ratio : float
    positional_embedding : {"grid"} or None
    domain : sequence of (lo, hi), optional
        Physical extent of each axis (for the positional embedding).
    domain_padding : float
    activation : str
    norm : {"instance_norm", "group_norm", "layer_norm"} or None
    use_channel_mlp : bool
    channel_mlp_expansion : float
    channel_mlp_skip : {"linear", "identity", "soft-gating"} or None
    skip : {"linear", "identity", "soft-gating"} or None
        Skip connection around each block's convolution.
    conv_bias : bool
        Bias of the spectral convolutions.
    factorization : {"cp", "tucker", "tt", "dense"} or None
        Store the spectral weights factorized (a tensorized FNO; see :class:`TFNO`).
    rank : int, float or sequence of int
        Rank of the factorization (a float in (0, 1]: fraction of the dense parameters).
    basis : {"fourier", "hartley"}
        Spectral basis of the convolutions (see :class:`~geo_neuralop.layers.SpectralConv`);
        "hartley" is the Hartley neural operator (real multipliers).

    Notes
    -----
    Shapes: forward(x, output_shape=None): ``[B, C_in, *spatial] -> [B, C_out, *spatial]``.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.models import FNO
    >>> model = FNO(in_channels=1, out_channels=2, n_modes=(8, 8), hidden_channels=16, n_layers=2)
    >>> model(torch.randn(4, 1, 32, 32)).shape
    torch.Size([4, 2, 32, 32])
    >>> model(torch.randn(1, 1, 64, 48)).shape  # any resolution
    torch.Size([1, 2, 64, 48])
    >>> model.config["n_modes"]  # the constructor arguments, recorded by the registry
    [8, 8]
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_modes: int | Sequence[int],
        hidden_channels: int = 32,
        n_layers: int = 4,
        lifting_channel_ratio: float = 2.0,
        projection_channel_ratio: float = 2.0,
        positional_embedding: str | None = "grid",
        domain: Sequence[Sequence[float]] | None = None,
        domain_padding: float = 0.0,
        activation: str = "gelu",
        norm: str | None = None,
        use_channel_mlp: bool = True,
        channel_mlp_expansion: float = 0.5,
        channel_mlp_skip: str | None = "soft-gating",
        skip: str | None = "linear",
        conv_bias: bool = True,
        factorization: str | None = None,
        rank: float | int | Sequence[int] = 1.0,
        basis: str = "fourier",
    ) -> None:
        modes = as_tuple(n_modes, "n_modes")
        if not 1 <= len(modes) <= 3:
            raise ValueError(f"n_modes must have 1 to 3 entries (one per axis), got {n_modes!r}")
        super().__init__(
            in_channels, out_channels, len(modes),
            lambda i: SpectralConv(hidden_channels, hidden_channels, modes, bias=conv_bias,
                                   factorization=factorization, rank=rank, basis=basis),
            hidden_channels=hidden_channels, n_layers=n_layers,
            lifting_channel_ratio=lifting_channel_ratio,
            projection_channel_ratio=projection_channel_ratio,
            positional_embedding=positional_embedding, domain=domain,
            domain_padding=domain_padding, activation=activation, norm=norm,
            use_channel_mlp=use_channel_mlp, channel_mlp_expansion=channel_mlp_expansion,
            channel_mlp_skip=channel_mlp_skip, skip=skip,
        )
