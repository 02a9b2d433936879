"""Normalization layers for channel-first fields ``[B, C, *spatial]``.

- "instance_norm": per sample and channel over all points, learned affine
  (``nn.GroupNorm(C, C)``, valid for any number of spatial axes).
- "group_norm": per sample over all channels and points (``nn.GroupNorm(1, C)``,
  neuraloperator's choice).
- "layer_norm": per point over the channels (:class:`ChannelLayerNorm`); it
  involves no spatial average, so it is the same operation at every resolution
  and on every mesh.

Instance and group norm average with equal weights per point, which is the
right quadrature on regular periodic grids but not on sphere grids or meshes.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["NORMS", "ChannelLayerNorm", "get_norm"]

NORMS = ("instance_norm", "group_norm", "layer_norm")


class ChannelLayerNorm(nn.Module):
    """Layer norm over the channel axis at every point, with a learned affine map.

    Shapes: ``[B, C, *spatial]`` -> same.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.movedim(1, -1), (self.channels,), self.weight, self.bias, self.eps)
        return y.movedim(-1, 1)


def get_norm(name: str | None, channels: int) -> nn.Module | None:
    """A normalization module by name ("instance_norm", "group_norm", "layer_norm") or None."""
    if name is None or name == "none":
        return None
    if name == "instance_norm":
        return nn.GroupNorm(channels, channels)
    if name == "group_norm":
        return nn.GroupNorm(1, channels)
    if name == "layer_norm":
        return ChannelLayerNorm(channels)
    raise ValueError(f"norm must be one of {NORMS} or None, got {name!r}")
