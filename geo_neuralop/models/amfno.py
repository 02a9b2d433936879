"""Amortized Fourier neural operator (AM-FNO, Xiao et al., NeurIPS 2024) on regular grids."""

from __future__ import annotations

from collections.abc import Sequence

from geo_neuralop.layers.am_spectral_conv import AMSpectralConv
from geo_neuralop.models.fno import GridNeuralOperator
from geo_neuralop.models.registry import register_model
from geo_neuralop.utils.checks import as_tuple

__all__ = ["AMFNO"]


@register_model("amfno", family="grid")
class AMFNO(GridNeuralOperator):
    """FNO whose spectral kernels come from a network of the frequency (AM-FNO).

    Every block uses an :class:`~geo_neuralop.layers.AMSpectralConv`: by default
    all frequencies the grid holds are used, and the parameter count does not
    depend on the resolution or on the number of modes.

    Parameters
    ----------
    in_channels, out_channels : int
    n_dim : int
        Number of spatial axes (1, 2 or 3).
    hidden_channels, n_layers : int
    n_modes : int or sequence of int, optional
        Optional frequency cap per axis (``|k| <= m // 2``); default: none.
    kernel_network : {"mlp", "kan"}
    factorization : {"separable", "full"}
    embedding : {"chebyshev", "fourier"}
    n_basis, kernel_hidden, kernel_layers : int
    frequency_scale : float
    kan_grid_size, kan_spline_order : int
        See :class:`~geo_neuralop.layers.AMSpectralConv`.
    lifting_channel_ratio, projection_channel_ratio, positional_embedding, domain,
    domain_padding, activation, norm, use_channel_mlp, channel_mlp_expansion, channel_mlp_skip,
    skip, conv_bias
        As in :class:`~geo_neuralop.models.FNO`.

    Notes
    -----
    Shapes: forward(x, output_shape=None): ``[B, C_in, *spatial] -> [B, C_out, *spatial]``.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.models import AMFNO
    >>> model = AMFNO(in_channels=1, out_channels=1, n_dim=2, hidden_channels=8, n_layers=2)
    >>> model(torch.randn(2, 1, 32, 32)).shape
    torch.Size([2, 1, 32, 32])
    >>> kan = AMFNO(1, 1, n_dim=1, hidden_channels=8, n_layers=2, kernel_network="kan")
    >>> kan(torch.randn(2, 1, 100)).shape
    torch.Size([2, 1, 100])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_dim: int = 2,
        hidden_channels: int = 32,
        n_layers: int = 4,
        n_modes: int | Sequence[int] | None = None,
        kernel_network: str = "mlp",
        factorization: str = "separable",
        embedding: str = "chebyshev",
        n_basis: int = 16,
        kernel_hidden: int | None = None,
        kernel_layers: int = 2,
        frequency_scale: float = 16.0,
        kan_grid_size: int = 8,
        kan_spline_order: int = 3,
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
    ) -> None:
        modes = None if n_modes is None else list(as_tuple(n_modes, "n_modes"))

        def conv(_: int) -> AMSpectralConv:
            return AMSpectralConv(
                hidden_channels, hidden_channels, n_dim, n_modes=modes,
                kernel_network=kernel_network, factorization=factorization,
                embedding=embedding, n_basis=n_basis, kernel_hidden=kernel_hidden,
                kernel_layers=kernel_layers, frequency_scale=frequency_scale,
                activation=activation, kan_grid_size=kan_grid_size,
                kan_spline_order=kan_spline_order, bias=conv_bias,
            )

        super().__init__(
            in_channels, out_channels, n_dim, conv,
            hidden_channels=hidden_channels, n_layers=n_layers,
            lifting_channel_ratio=lifting_channel_ratio,
            projection_channel_ratio=projection_channel_ratio,
            positional_embedding=positional_embedding, domain=domain,
            domain_padding=domain_padding, activation=activation, norm=norm,
            use_channel_mlp=use_channel_mlp, channel_mlp_expansion=channel_mlp_expansion,
            channel_mlp_skip=channel_mlp_skip, skip=skip,
        )
