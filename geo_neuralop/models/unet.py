"""U-Net baseline for fields on regular 1D, 2D and 3D grids.

A convolutional encoder-decoder (Ronneberger et al., 2015): at each level two
3-point (3x3, 3x3x3) convolutions with normalization and activation, then 2x
max-pooling; the decoder upsamples with transposed convolutions and
concatenates the encoder features of the same level (skip connections). It is a
fixed-stencil model: its receptive field is set in grid cells, not in physical
length, so unlike the neural operators it does not transfer across resolutions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from geo_neuralop.layers.activations import get_activation
from geo_neuralop.models.registry import register_model

__all__ = ["UNet"]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_INSTANCE_NORM = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
_NORMS = ("group", "instance", "batch", "none")
_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _norm(kind: str, n_dim: int, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    if kind == "instance":
        return _INSTANCE_NORM[n_dim](channels, affine=True)
    if kind == "batch":
        return _BATCH_NORM[n_dim](channels)
    return nn.Identity()


class _DoubleConv(nn.Sequential):
    """(conv 3 -> norm -> activation) x 2."""

    def __init__(self, c_in: int, c_out: int, n_dim: int, norm: str, activation: str,
                 padding_mode: str) -> None:
        bias = norm == "none"  # a bias before a normalization is cancelled by it
        layers: list[nn.Module] = []
        for c in (c_in, c_out):
            layers += [
                _CONV[n_dim](c, c_out, 3, padding=1, bias=bias, padding_mode=padding_mode),
                _norm(norm, n_dim, c_out),
                get_activation(activation),
            ]
        super().__init__(*layers)


@register_model("unet", family="grid")
class UNet(nn.Module):
    """U-Net on regular grids of any size.

    Parameters
    ----------
    in_channels : int
        Input channels ``C_in``.
    out_channels : int
        Output channels ``C_out``.
    hidden_channels : int
        Channels at the finest level; level ``l`` has
        ``hidden_channels * channel_multiplier**l``.
    depth : int
        Number of 2x downsamplings (0 gives a plain stack of convolutions).
        Spatial sizes that are not multiples of ``2**depth`` are padded by
        replication to the next multiple and the output is cropped back.
    n_dim : {1, 2, 3}
        Number of spatial dimensions.
    channel_multiplier : int
        Channel growth per level.
    norm : {"group", "instance", "batch", "none"}
        Normalization after every convolution (group norm uses up to 8 groups).
    activation : {"gelu", "relu", "silu", "tanh"}
    padding_mode : {"zeros", "reflect", "replicate", "circular"}
        Boundary handling of the 3-point convolutions (``"circular"`` for
        periodic domains).

    Notes
    -----
    Input ``[B, C_in, *spatial]`` with ``len(spatial) == n_dim``; output
    ``[B, C_out, *spatial]``, same spatial size. Use sizes such that the
    coarsest level has at least 2 points per axis when ``norm="instance"``.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.models import UNet
    >>> model = UNet(in_channels=3, out_channels=1, hidden_channels=8, depth=2)
    >>> model(torch.randn(4, 3, 30, 17)).shape
    torch.Size([4, 1, 30, 17])
    >>> UNet(1, 2, hidden_channels=4, depth=1, n_dim=3)(torch.randn(1, 1, 5, 6, 7)).shape
    torch.Size([1, 2, 5, 6, 7])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int = 32,
        depth: int = 3,
        n_dim: int = 2,
        channel_multiplier: int = 2,
        norm: str = "group",
        activation: str = "gelu",
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        for key, value, low in (
            ("in_channels", in_channels, 1),
            ("out_channels", out_channels, 1),
            ("hidden_channels", hidden_channels, 1),
            ("depth", depth, 0),
            ("channel_multiplier", channel_multiplier, 1),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{key} must be an integer >= {low}, got {value!r}")
        if n_dim not in (1, 2, 3) or isinstance(n_dim, bool):
            raise ValueError(f"n_dim must be 1, 2 or 3, got {n_dim!r}")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
        get_activation(activation)  # raises for an unknown name
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.in_channels = in_channels
        self.n_dim = n_dim
        self.depth = depth
        widths = [hidden_channels * channel_multiplier**level for level in range(depth + 1)]
        block = {"n_dim": n_dim, "norm": norm, "activation": activation,
                 "padding_mode": padding_mode}
        self.encoders = nn.ModuleList(
            [_DoubleConv(in_channels, widths[0], **block)]
            + [_DoubleConv(widths[level - 1], widths[level], **block)
               for level in range(1, depth + 1)]
        )
        self.pool = _POOL[n_dim](2)
        self.upsamplers = nn.ModuleList(
            [_CONV_T[n_dim](widths[level], widths[level - 1], 2, stride=2)
             for level in range(depth, 0, -1)]
        )
        self.decoders = nn.ModuleList(
            [_DoubleConv(2 * widths[level - 1], widths[level - 1], **block)
             for level in range(depth, 0, -1)]
        )
        self.head = _CONV[n_dim](widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the U-Net.

        Parameters
        ----------
        x : torch.Tensor, shape [B, C_in, *spatial]

        Returns
        -------
        torch.Tensor, shape [B, C_out, *spatial]
        """
        if x.dim() != self.n_dim + 2:
            raise ValueError(
                f"x must have shape [B, C, {', '.join('*' * self.n_dim)}] ({self.n_dim + 2} "
                f"dimensions) for n_dim={self.n_dim}, got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"x has {x.shape[1]} channels, the model expects in_channels={self.in_channels}"
            )
        spatial = x.shape[2:]
        multiple = 2**self.depth
        extra = [(-n) % multiple for n in spatial]
        # F.pad lists (left, right) pairs starting from the last axis.
        pads: list[int] = []
        for e in reversed(extra):
            pads += [e // 2, e - e // 2]
        if any(extra):
            x = F.pad(x, pads, mode="replicate")
        skips = []
        for level, encoder in enumerate(self.encoders):
            if level > 0:
                x = self.pool(x)
            x = encoder(x)
            skips.append(x)
        skips.pop()
        for upsample, decoder in zip(self.upsamplers, self.decoders, strict=True):
            x = decoder(torch.cat([skips.pop(), upsample(x)], dim=1))
        x = self.head(x)
        if any(extra):
            index = tuple(slice(e // 2, e // 2 + n) for e, n in zip(extra, spatial, strict=True))
            x = x[(slice(None), slice(None), *index)]
        return x
