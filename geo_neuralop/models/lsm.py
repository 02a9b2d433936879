"""Latent Spectral Model (LSM, Wu et al., "Solving High-Dimensional PDEs with Latent Spectral
Models", ICML 2023) on 2-D grids, and through :class:`~geo_neuralop.models.MeshNO`'s latent grid
on meshes (``processor="lsm"``).

::

    [x, grid coordinates] -> linear lifting -> U-Net encoder (n_layers max-pool + double-conv
    levels) -> at every level a NeuralSpectralBlock2d on the skip features (latent tokens per
    patch, trigonometric latent transition) -> U-Net decoder (bilinear up-sampling,
    concatenation, double conv) -> 1x1 conv -> projection MLP

The paper's layout (its ``bilinear=True`` U-Net, unscaled patch attention with 8 heads,
``num_basis=12``, ``num_tokens=4``). Any grid size is accepted: the field is zero-padded
at the end of each axis to a multiple of ``2 ** n_layers`` (after ``domain_padding``) and
cropped back, and each level's patches use the largest divisor of its size up to
``patch_size``. Convolutions and pooling tie the model to the training resolution
(it is not discretization-invariant, unlike the FNO family).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from geo_neuralop.layers.channel_mlp import ChannelMLP, PointwiseLinear
from geo_neuralop.layers.embeddings import GridEmbedding
from geo_neuralop.layers.neural_spectral_block import NeuralSpectralBlock2d
from geo_neuralop.models.registry import register_model
from geo_neuralop.utils.checks import check_domain, check_positive_int

__all__ = ["LSM", "NORMS", "DoubleConv"]

NORMS = ("batch", "instance", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


class DoubleConv(nn.Module):
    """``(3x3 conv -> norm -> ReLU) x 2``, the U-Net unit of LSM."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int, norm: str) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, 3, padding=1, bias=False),
            _norm(norm, mid_channels), nn.ReLU(),
            nn.Conv2d(mid_channels, out_channels, 3, padding=1, bias=False),
            _norm(norm, out_channels), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register_model("lsm", family="grid")
class LSM(nn.Module):
    """Latent Spectral Model on 2-D regular grids (see the module docstring).

    Parameters
    ----------
    in_channels, out_channels : int
    n_dim : int
        Spatial axes; LSM is 2-D (a ValueError names other values).
    hidden_channels : int
        Width of the first U-Net level (doubling at each level below).
    n_layers : int
        Down-sampling levels of the U-Net (the paper: 4).
    num_tokens, num_basis, patch_size, heads
        Of the :class:`~geo_neuralop.layers.NeuralSpectralBlock2d` at every level.
    norm : {"batch", "instance", "none"}
        Normalization of the double convolutions.
    domain : sequence of (lo, hi), optional
        Physical extent (for the positional embedding).
    domain_padding : float
        Zero-pad every axis by this fraction before the U-Net (non-periodic data).
    positional_embedding : {"grid"} or None
    projection_channels : int
        Hidden width of the output projection (the paper's 128).

    Shapes
    ------
    forward(x): ``[B, C_in, H, W] -> [B, C_out, H, W]``.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.models import LSM
    >>> model = LSM(1, 1, hidden_channels=16, n_layers=3, heads=4)
    >>> model(torch.randn(2, 1, 30, 20)).shape  # padded to 32 x 24 inside, cropped back
    torch.Size([2, 1, 30, 20])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_dim: int = 2,
        hidden_channels: int = 32,
        n_layers: int = 4,
        num_tokens: int = 4,
        num_basis: int = 12,
        patch_size: int = 4,
        heads: int = 8,
        norm: str = "batch",
        domain: Sequence[Sequence[float]] | None = None,
        domain_padding: float = 0.0,
        positional_embedding: str | None = "grid",
        projection_channels: int = 128,
    ) -> None:
        super().__init__()
        if n_dim != 2:
            raise ValueError(f"n_dim must be 2: LSM works on 2-D grids, got {n_dim!r}")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("hidden_channels", hidden_channels), ("n_layers", n_layers),
                            ("projection_channels", projection_channels)):
            check_positive_int(name, value)
        if hidden_channels % heads:
            raise ValueError(f"hidden_channels ({hidden_channels}) must be a multiple of heads "
                             f"({heads}) (every level's width is)")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if not (isinstance(domain_padding, (int, float)) and 0.0 <= domain_padding < 1.0):
            raise ValueError(f"domain_padding must be a fraction in [0, 1), got {domain_padding!r}")
        self.in_channels, self.out_channels, self.n_dim = in_channels, out_channels, 2
        self.n_layers, self.domain_padding = n_layers, float(domain_padding)
        self.domain = check_domain(domain, 2)
        if positional_embedding == "grid":
            self.positional_embedding = GridEmbedding(2, self.domain)
            n_embed = self.positional_embedding.out_channels_added
        elif positional_embedding is None or positional_embedding == "none":
            self.positional_embedding, n_embed = None, 0
        else:
            raise ValueError(f"positional_embedding must be 'grid' or None, got "
                             f"{positional_embedding!r}")
        w = hidden_channels
        widths = [w * 2 ** level for level in range(n_layers)] + [w * 2 ** (n_layers - 1)]
        self.lifting = PointwiseLinear(in_channels + n_embed, w)
        self.inc = DoubleConv(w, w, w, norm)
        self.downs = nn.ModuleList([
            nn.Sequential(nn.MaxPool2d(2), DoubleConv(widths[level], widths[level + 1],
                                                      widths[level + 1], norm))
            for level in range(n_layers)])
        self.process = nn.ModuleList([
            NeuralSpectralBlock2d(c, num_basis, patch_size, num_tokens, heads) for c in widths])
        ups = []
        current = widths[-1]
        for level in range(n_layers - 1, -1, -1):
            total = current + widths[level]
            out = widths[level] // 2 if level > 0 else w
            ups.append(DoubleConv(total, out, total // 2, norm))
            current = out
        self.ups = nn.ModuleList(ups)
        self.outc = nn.Conv2d(w, w, kernel_size=1)
        self.projection = ChannelMLP(w, out_channels, projection_channels, n_layers=2,
                                     activation="gelu")

    def _pads(self, shape: Sequence[int]) -> list[int]:
        multiple = 2 ** self.n_layers
        pads = []
        for n in shape:
            padded = n + round(self.domain_padding * n)
            pads.append(-(-padded // multiple) * multiple - n)
        return pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the model; see the class docstring for shapes."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape [B, {self.in_channels}, H, W], got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x)}")
        h, w = x.shape[2:]
        if self.positional_embedding is not None:
            x = self.positional_embedding(x)
        x = self.lifting(x)
        pad_h, pad_w = self._pads((h, w))
        x = F.pad(x, (0, pad_w, 0, pad_h))
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = self.process[-1](skips[-1])
        for i, up in enumerate(self.ups):
            level = self.n_layers - 1 - i
            skip = self.process[level](skips[level])
            x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=True)
            x = up(torch.cat([skip, x], dim=1))
        x = self.outc(x)[:, :, :h, :w]
        return self.projection(x)
