"""Skip connections for channel-first fields: identity, linear, soft-gating.

Shapes: ``[B, C_in, *spatial]`` -> ``[B, C_out, *spatial]`` (soft-gating and
identity need ``C_in == C_out``).
"""

from __future__ import annotations

import torch
from torch import nn

from geo_neuralop.layers.channel_mlp import PointwiseLinear

__all__ = ["SKIP_TYPES", "SoftGating", "skip_connection"]

SKIP_TYPES = ("identity", "linear", "soft-gating")


class SoftGating(nn.Module):
    """``y = w * x (+ b)`` with one learned weight per channel (initialized to 1).

    Parameters
    ----------
    channels : int
    bias : bool
    """

    def __init__(self, channels: int, bias: bool = False) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        self.channels = channels
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != self.channels:
            raise ValueError(f"x must have shape [B, {self.channels}, ...], got {tuple(x.shape)}")
        shape = (1, self.channels) + (1,) * (x.dim() - 2)
        y = x * self.weight.view(shape)
        if self.bias is not None:
            y = y + self.bias.view(shape)
        return y

    def extra_repr(self) -> str:
        return f"{self.channels}, bias={self.bias is not None}"


def skip_connection(in_channels: int, out_channels: int, skip_type: str | None,
                    bias: bool = False) -> nn.Module | None:
    """Build a skip connection by name.

    Parameters
    ----------
    in_channels, out_channels : int
    skip_type : {"identity", "linear", "soft-gating"} or None
        None (or "none") returns None: no skip.
    bias : bool
        For "linear" and "soft-gating".

    Raises
    ------
    ValueError
        For an unknown type, or "identity"/"soft-gating" with
        ``in_channels != out_channels``.
    """
    if skip_type is None or skip_type == "none":
        return None
    if skip_type not in SKIP_TYPES:
        raise ValueError(f"skip_type must be one of {SKIP_TYPES} or None, got {skip_type!r}")
    if skip_type == "linear":
        return PointwiseLinear(in_channels, out_channels, bias=bias)
    if in_channels != out_channels:
        raise ValueError(
            f"skip_type={skip_type!r} needs in_channels == out_channels, got "
            f"{in_channels} and {out_channels}"
        )
    if skip_type == "identity":
        return nn.Identity()
    return SoftGating(in_channels, bias=bias)
