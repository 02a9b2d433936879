"""``SpectralBlock``: one FNO-style block around a global convolution and local layers.

::

    y = conv(x, output_shape) + sum_l local_l(x)   # local: e.g. DISCO and differential layers
    y = norm(y) + skip(T x)                        # T = conv.transform: resampling to the output
    y = act(y)                                     # kept before a channel MLP even in a last block
    y = channel_mlp(y) + mlp_skip(T x)             # optional
    y = act(y)                                     # skipped if final_activation=False

This is neuraloperator's FNO block (post-activation) and, with local layers,
the fusion of the LocalNO paper. The convolution must accept
``conv(x, output_shape=None)`` and provide ``conv.transform(x, output_shape=None)``
(:class:`SpectralConv`, :class:`AMSpectralConv` and :class:`SphericalSpectralConv`
do). A local layer is applied on the input grid and resampled with
``conv.transform``, unless it maps grids itself (``maps_grids``). A local layer
with ``fourier_term`` is folded into a spectral convolution's FFTs when it can be,
and local layers with equal ``fusion_key`` are applied together by ``apply_fused``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from geo_neuralop.geometry.grid_spec import GridSpec
from geo_neuralop.layers.activations import get_activation
from geo_neuralop.layers.channel_mlp import ChannelMLP
from geo_neuralop.layers.normalization import get_norm
from geo_neuralop.layers.skip_connections import skip_connection

__all__ = ["SpectralBlock"]


class SpectralBlock(nn.Module):
    """Global convolution + skip + nonlinearity + channel MLP (an FNO/SFNO/AM-FNO block).

    Parameters
    ----------
    conv : nn.Module
        The global convolution, ``in_channels -> out_channels``.
    local : sequence of nn.Module, optional
        Local layers ``in_channels -> out_channels`` summed with the convolution
        (e.g. :class:`GridDiscoConv` and :class:`GridDifferentialConv`).
    in_channels, out_channels : int
    skip : {"linear", "identity", "soft-gating"} or None
        Skip connection around the convolution.
    use_channel_mlp : bool
    channel_mlp_expansion : float
        Hidden width of the channel MLP as a fraction of ``out_channels``.
    channel_mlp_skip : {"linear", "identity", "soft-gating"} or None
        Skip connection around the channel MLP (from the block input).
    channel_mlp_dropout : float
    norm : {"instance_norm", "group_norm", "layer_norm"} or None
        Applied to the convolution output (plus extra terms) and after the MLP.
    activation : str
    final_activation : bool
        Apply the activation at the end of the block (False for the last block
        of a model, as in neuraloperator).

    Notes
    -----
    Shapes: forward(x, output_shape=None, grid=None): ``[B, C_in, *in_grid]`` ->
    ``[B, C_out, *out_grid]``.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.layers import GridDiscoConv, SpectralBlock, SpectralConv
    >>> block = SpectralBlock(SpectralConv(8, 8, n_modes=(8, 8)), 8, 8,
    ...                       local=[GridDiscoConv(8, 8, radius=0.1, bias=False)])
    >>> block(torch.randn(2, 8, 16, 16)).shape
    torch.Size([2, 8, 16, 16])
    """

    def __init__(
        self,
        conv: nn.Module,
        in_channels: int,
        out_channels: int,
        local: Sequence[nn.Module] | None = None,
        skip: str | None = "linear",
        use_channel_mlp: bool = True,
        channel_mlp_expansion: float = 0.5,
        channel_mlp_skip: str | None = "soft-gating",
        channel_mlp_dropout: float = 0.0,
        norm: str | None = None,
        activation: str = "gelu",
        final_activation: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(conv, nn.Module):
            raise TypeError(f"conv must be an nn.Module, got {type(conv).__name__}")
        self.conv = conv
        self.local = nn.ModuleList(local or [])
        for i, layer in enumerate(self.local):
            if not isinstance(layer, nn.Module):
                raise TypeError(f"local[{i}] must be an nn.Module, got {type(layer).__name__}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.skip = skip_connection(in_channels, out_channels, skip)
        self.norm = get_norm(norm, out_channels)
        self.activation = get_activation(activation)
        self.final_activation = final_activation
        if use_channel_mlp:
            if not channel_mlp_expansion > 0:
                raise ValueError(
                    f"channel_mlp_expansion must be positive, got {channel_mlp_expansion!r}"
                )
            hidden = max(1, round(out_channels * channel_mlp_expansion))
            self.channel_mlp = ChannelMLP(out_channels, out_channels, hidden, n_layers=2,
                                          activation=activation, dropout=channel_mlp_dropout)
            self.channel_mlp_skip = skip_connection(in_channels, out_channels, channel_mlp_skip)
            self.mlp_norm = get_norm(norm, out_channels)
        else:
            self.channel_mlp = None
            self.channel_mlp_skip = None
            self.mlp_norm = None

    def local_terms(self, x: torch.Tensor, output_shape: Sequence[int] | None = None,
                    grid: GridSpec | None = None) -> list[torch.Tensor]:
        """Outputs of the local layers on the block's output grid, ``[B, C_out, *out_grid]``.

        ``grid`` describes ``x``'s grid for grid layers (e.g. after domain padding).
        """
        out_shape = tuple(x.shape[2:]) if output_shape is None else tuple(output_shape)
        return [self._local_term(layer, x, out_shape, grid) for layer in self.local]

    def _local_term(self, layer: nn.Module, x: torch.Tensor, out_shape: tuple[int, ...],
                    grid: GridSpec | None) -> torch.Tensor:
        if getattr(layer, "maps_grids", False):
            return layer(x, output_shape=out_shape)
        term = layer(x) if grid is None else layer(x, grid=grid)
        if tuple(term.shape[2:]) == tuple(x.shape[2:]) != out_shape:  # resample onto the output
            term = self.conv.transform(term, output_shape=out_shape)
        return term

    def forward(
        self,
        x: torch.Tensor,
        output_shape: Sequence[int] | None = None,
        grid: GridSpec | None = None,
    ) -> torch.Tensor:
        """Apply the block.

        Parameters
        ----------
        x : torch.Tensor, shape [B, C_in, *in_grid]
        output_shape : sequence of int, optional
            Output grid (default: the input grid); passed to the convolution.
        grid : GridSpec, optional
            ``x``'s grid, for grid local layers (default: each layer's domain at
            ``x``'s resolution; give it after domain padding).

        Returns
        -------
        torch.Tensor, shape [B, C_out, *out_grid]
        """
        spectrum_terms, separate = [], []
        same_grid = output_shape is None or tuple(output_shape) == tuple(x.shape[2:])
        fuse = same_grid and getattr(self.conv, "accepts_spectrum_terms", False)
        for layer in self.local:
            term = layer.fourier_term(x, grid) if fuse and hasattr(layer, "fourier_term") \
                else None
            if term is None:
                separate.append(layer)
            else:
                spectrum_terms.append(term)
        if spectrum_terms:
            y = self.conv(x, output_shape=output_shape, spectrum_terms=spectrum_terms)
        else:
            y = self.conv(x, output_shape=output_shape)
        out_shape = tuple(y.shape[2:])
        groups: dict = {}
        for layer in separate:  # layers that share their precomputation are applied together
            key = layer.fusion_key(x, out_shape) if hasattr(layer, "fusion_key") else None
            groups.setdefault(id(layer) if key is None else key, []).append(layer)
        for group in groups.values():
            if len(group) > 1:
                term = group[0].apply_fused(group, x)
            else:
                term = self._local_term(group[0], x, out_shape, grid)
            if term.shape != y.shape:
                raise ValueError(f"local layer {type(group[0]).__name__} returned shape "
                                 f"{tuple(term.shape)}, expected {tuple(y.shape)}")
            y = y + term
        return self._finish(x, y, output_shape)

    def _finish(self, x: torch.Tensor, y: torch.Tensor,
                output_shape: Sequence[int] | None) -> torch.Tensor:
        if self.norm is not None:
            y = self.norm(y)
        needs_input = self.skip is not None or self.channel_mlp_skip is not None
        x_out = self.conv.transform(x, output_shape=output_shape) if needs_input else None
        if self.skip is not None:
            y = y + self.skip(x_out)
        if self.final_activation or self.channel_mlp is not None:
            y = self.activation(y)
        if self.channel_mlp is not None:
            y = self.channel_mlp(y)
            if self.channel_mlp_skip is not None:
                y = y + self.channel_mlp_skip(x_out)
            if self.mlp_norm is not None:
                y = self.mlp_norm(y)
            if self.final_activation:
                y = self.activation(y)
        return y
