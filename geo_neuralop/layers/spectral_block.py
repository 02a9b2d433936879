"""``SpectralBlock``: one FNO-style block around any global convolution.

::

    y = conv(x, output_shape) + sum(extra)     # extra: e.g. local DISCO / differential terms
    y = norm(y) + skip(T x)                    # T = conv.transform: resampling to the output grid
    y = act(y)                                 # kept before a channel MLP even in a last block
    y = channel_mlp(y) + mlp_skip(T x)         # optional
    y = act(y)                                 # skipped if final_activation=False

This is neuraloperator's FNO block (post-activation) and, with ``extra``, the
fusion of the LocalNO paper: callers compute their local terms on the output
grid and pass them in, so the block stays independent of how they are built.
The convolution must accept ``conv(x, output_shape=None)`` and provide
``conv.transform(x, output_shape=None)`` (:class:`SpectralConv`,
:class:`AMSpectralConv` and :class:`SphericalSpectralConv` do).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from geo_neuralop.layers.channel_mlp import ChannelMLP, get_activation
from geo_neuralop.layers.normalization import get_norm
from geo_neuralop.layers.skip_connections import skip_connection

__all__ = ["SpectralBlock"]


class SpectralBlock(nn.Module):
    """Global convolution + skip + nonlinearity + channel MLP (an FNO/SFNO/AM-FNO block).

    Parameters
    ----------
    conv : nn.Module
        The global convolution, ``in_channels -> out_channels``.
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

    Shapes
    ------
    forward(x, extra=None, output_shape=None): ``[B, C_in, *in_grid]`` ->
    ``[B, C_out, *out_grid]``; every ``extra`` tensor is ``[B, C_out, *out_grid]``.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.layers import SpectralBlock, SpectralConv
    >>> block = SpectralBlock(SpectralConv(8, 8, n_modes=(8, 8)), 8, 8)
    >>> x = torch.randn(2, 8, 16, 16)
    >>> local = torch.zeros(2, 8, 16, 16)  # e.g. a DISCO convolution of x
    >>> block(x, extra=[local]).shape
    torch.Size([2, 8, 16, 16])
    """

    def __init__(
        self,
        conv: nn.Module,
        in_channels: int,
        out_channels: int,
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

    def forward(
        self,
        x: torch.Tensor,
        extra: torch.Tensor | Sequence[torch.Tensor] | None = None,
        output_shape: Sequence[int] | None = None,
        spectrum_terms: Sequence[Callable[[torch.Tensor], torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """Apply the block.

        Parameters
        ----------
        x : torch.Tensor, shape [B, C_in, *in_grid]
        extra : torch.Tensor or sequence of torch.Tensor, optional
            Terms ``[B, C_out, *out_grid]`` added to the convolution output
            before the normalization, skip and activation.
        output_shape : sequence of int, optional
            Output grid (default: the input grid); passed to the convolution.
        spectrum_terms : sequence of callables, optional
            Fourier multipliers sharing the convolution's FFTs (see
            :meth:`geo_neuralop.layers.SpectralConv.forward`); only for grid
            spectral convolutions.

        Returns
        -------
        torch.Tensor, shape [B, C_out, *out_grid]
        """
        if spectrum_terms:
            y = self.conv(x, output_shape=output_shape, spectrum_terms=spectrum_terms)
        else:
            y = self.conv(x, output_shape=output_shape)
        if extra is not None:
            terms = [extra] if isinstance(extra, torch.Tensor) else list(extra)
            for i, term in enumerate(terms):
                if term.shape != y.shape:
                    raise ValueError(
                        f"extra[{i}] has shape {tuple(term.shape)}, expected {tuple(y.shape)}"
                    )
                y = y + term
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
