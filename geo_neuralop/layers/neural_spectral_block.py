"""The neural spectral block of the Latent Spectral Model (Wu et al., "Solving High-Dimensional
PDEs with Latent Spectral Models", ICML 2023).

A field ``[B, C, H, W]`` is cut into patches. In each patch, ``T`` learned latent
tokens attend to the patch's points (*hierarchical projection* onto the latent
space, one attention per head, as in the paper: no ``1/sqrt(d)`` scaling); each token
value then passes through a learned trigonometric series ``z -> z + sum_k a_{c,k}
sin(k pi z / K) + b_{c,k} cos(k pi z / K)`` per channel (*latent spectral solving*,
``K = num_basis``); the points attend back to the tokens, added to the input.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from geo_neuralop.utils.checks import check_positive_int

__all__ = ["NeuralSpectralBlock2d", "largest_divisor_at_most"]


def largest_divisor_at_most(n: int, limit: int) -> int:
    """The largest divisor of ``n`` that is at most ``limit`` (the patch size used on an axis)."""
    for d in range(min(n, limit), 0, -1):
        if n % d == 0:
            return d
    return 1


class NeuralSpectralBlock2d(nn.Module):
    """Patchwise latent tokens with a trigonometric latent transition (the LSM block).

    Parameters
    ----------
    channels : int
    num_basis : int
        Terms ``K`` of the latent trigonometric series.
    patch_size : int or (int, int)
        Largest patch side; on each axis the largest divisor of the field's size
        that is at most this is used.
    num_tokens : int
        Latent tokens ``T`` per patch.
    heads : int
        Attention heads (``channels`` must be a multiple).

    Shapes
    ------
    ``[B, C, H, W] -> [B, C, H, W]``.

    Examples
    --------
    >>> import torch
    >>> block = NeuralSpectralBlock2d(16, num_basis=8, patch_size=4, num_tokens=4, heads=4)
    >>> block(torch.randn(2, 16, 12, 10)).shape  # patches of 4 x 2 (2 divides 10)
    torch.Size([2, 16, 12, 10])
    """

    def __init__(self, channels: int, num_basis: int = 12, patch_size: int | tuple = 4,
                 num_tokens: int = 4, heads: int = 8) -> None:
        super().__init__()
        for name, value in (("channels", channels), ("num_basis", num_basis),
                            ("num_tokens", num_tokens), ("heads", heads)):
            check_positive_int(name, value)
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be a multiple of heads ({heads})")
        patch = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
        if len(patch) != 2:
            raise ValueError(f"patch_size must be an int or two ints, got {patch_size!r}")
        for p in patch:
            check_positive_int("patch_size", p)
        self.channels, self.heads, self.num_tokens = channels, heads, num_tokens
        self.num_basis, self.patch_size = num_basis, patch
        self.weights = nn.Parameter(torch.rand(channels, 2 * num_basis) / channels)
        self.latent = nn.Parameter(torch.rand(heads, num_tokens, channels // heads) / channels)
        self.encoder_attn = nn.Conv2d(channels, 2 * channels, kernel_size=1)
        self.decoder_attn = nn.Conv2d(channels, channels, kernel_size=1)

    @staticmethod
    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``softmax(q k^T) v`` over the last two axes (the paper's unscaled attention)."""
        return torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v

    def patches(self, shape: tuple[int, int]) -> tuple[int, int]:
        """Patch sides used for a field of spatial ``shape``."""
        return (largest_divisor_at_most(shape[0], self.patch_size[0]),
                largest_divisor_at_most(shape[1], self.patch_size[1]))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent tokens ``[P, C, T]`` of patches ``x [P, C, p1, p2]``."""
        n, c = x.shape[:2]
        h, d = self.heads, c // self.heads
        kv = self.encoder_attn(x).reshape(n, 2 * c, -1).transpose(1, 2)  # [P, L, 2C]
        kv = kv.reshape(n, -1, h, d, 2).permute(4, 0, 2, 1, 3)  # [2, P, H, L, D]
        latent = self.latent.expand(n, -1, -1, -1)  # [P, H, T, D]
        tokens = self.attend(latent, kv[0], kv[1]) + latent
        return tokens.permute(0, 1, 3, 2).reshape(n, c, self.num_tokens)

    def transition(self, tokens: torch.Tensor) -> torch.Tensor:
        """``z + sum_k a_{c,k} sin(k pi z / K) + b_{c,k} cos(k pi z / K)`` per channel."""
        modes = torch.arange(self.num_basis, dtype=tokens.dtype, device=tokens.device)
        phase = (modes * (math.pi / self.num_basis)) * tokens[..., None]
        basis = torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)  # [P, C, T, 2K]
        return torch.einsum("pctm,cm->pct", basis, self.weights.to(tokens.dtype)) + tokens

    def decode(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Points of ``x [P, C, p1, p2]`` attend to the tokens ``[P, C, T]``; added to ``x``."""
        n, c, p1, p2 = x.shape
        h, d = self.heads, c // self.heads
        t = tokens.reshape(n, h, d, self.num_tokens).transpose(2, 3)  # [P, H, T, D]
        q = self.decoder_attn(x).reshape(n, h, d, p1 * p2).transpose(2, 3)  # [P, H, L, D]
        out = self.attend(q, t, t)  # [P, H, L, D]
        return out.transpose(2, 3).reshape(n, c, p1, p2) + x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block; see the class docstring for shapes."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"x must have shape [B, {self.channels}, H, W], got "
                             f"{tuple(x.shape)}")
        b, c, h, w = x.shape
        p1, p2 = self.patches((h, w))
        patches = x.reshape(b, c, h // p1, p1, w // p2, p2).permute(0, 2, 4, 1, 3, 5)
        patches = patches.reshape(-1, c, p1, p2)
        out = self.decode(patches, self.transition(self.encode(patches)))
        out = out.reshape(b, h // p1, w // p2, c, p1, p2).permute(0, 3, 1, 4, 2, 5)
        return out.reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return (f"{self.channels}, num_basis={self.num_basis}, patch_size={self.patch_size}, "
                f"num_tokens={self.num_tokens}, heads={self.heads}")
