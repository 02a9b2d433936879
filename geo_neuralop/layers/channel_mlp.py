"""Pointwise (channel-mixing) layers for channel-first fields ``[B, C, *spatial]``.

These act at every grid point or mesh node independently, so they are
discretization-agnostic by construction: lifting, projection and the channel
MLP of FNO-type blocks.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from geo_neuralop.layers.activations import get_activation

__all__ = ["ChannelMLP", "PointwiseLinear"]

class PointwiseLinear(nn.Module):
    """A linear map of the channels at every point: ``y[:, o] = sum_i W[o, i] x[:, i] + b[o]``.

    Parameters
    ----------
    in_channels, out_channels : int
    bias : bool
    init_std : float, optional
        Standard deviation of the weight; default ``1 / sqrt(in_channels)``.

    Notes
    -----
    Shapes: ``[B, C_in, *spatial]`` (any number of spatial axes, including none) ->
    ``[B, C_out, *spatial]``.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True,
                 init_std: float | None = None) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        std = init_std if init_std is not None else 1.0 / math.sqrt(in_channels)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels) * std)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must have shape [B, {self.in_channels}, ...], got {tuple(x.shape)}"
            )
        b, _, *spatial = x.shape
        # a batched product with the weight broadcast over the batch: no transposed copies
        weight = self.weight.expand(b, self.out_channels, self.in_channels)
        y = torch.bmm(weight, x.reshape(b, self.in_channels, -1))  # [B, C_out, N]
        if self.bias is not None:
            y = y + self.bias.unsqueeze(-1)
        return y.reshape(b, self.out_channels, *spatial)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, bias={self.bias is not None}"


class ChannelMLP(nn.Module):
    """Pointwise MLP on the channel axis (lifting, projection, the MLP inside FNO blocks).

    Parameters
    ----------
    in_channels : int
    out_channels : int, optional
        Default ``in_channels``.
    hidden_channels : int, optional
        Default ``in_channels``.
    n_layers : int
        Number of linear layers (activation between them, none after the last).
    activation : str
    dropout : float
        Dropout probability after each hidden activation.

    Notes
    -----
    Shapes: ``[B, C_in, *spatial]`` -> ``[B, C_out, *spatial]``.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.layers.channel_mlp import ChannelMLP
    >>> ChannelMLP(3, 5, hidden_channels=16)(torch.randn(2, 3, 8, 8, 8)).shape
    torch.Size([2, 5, 8, 8, 8])
    """

    def __init__(self, in_channels: int, out_channels: int | None = None,
                 hidden_channels: int | None = None, n_layers: int = 2,
                 activation: str = "gelu", dropout: float = 0.0) -> None:
        super().__init__()
        if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
            raise ValueError(f"n_layers must be a positive int, got {n_layers!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        out_channels = out_channels or in_channels
        hidden_channels = hidden_channels or in_channels
        widths = [in_channels] + [hidden_channels] * (n_layers - 1) + [out_channels]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            last = i == n_layers - 1
            layers.append(PointwiseLinear(a, b, init_std=math.sqrt((1.0 if last else 2.0) / a)))
            if not last:
                layers.append(get_activation(activation))
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        self.layers = nn.Sequential(*layers)
        self.in_channels = in_channels
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
