"""Multi-grid domain decomposition of MG-TFNO (Kossaifi et al., TMLR 2024).

A field ``[B, C, H, W]`` too big for one pass is cut into ``n x n`` patches
(``n = 2 ** levels``), each padded by ``padding_fraction`` of the domain (periodic
wrap). Each patch also gets ``levels`` coarser views of its surroundings: level
``l`` subsamples the whole field by ``2 ** l`` and cuts, around the patch, a window
of the patch's size, so it covers ``2 ** l`` times the patch's extent (periodic
wrap). The views are stacked on the channel axis, so a model on patches sees
``C (levels + 1)`` channels; :meth:`MultigridPatching2D.unpatch` crops the padding
of its output and stitches the patches back together.

The index arithmetic (window ``i`` of level ``l`` starts at ``i * stride_l - pad_l``,
modulo the subsampled size) reproduces neuraloperator's ``MultigridPatching2D``
(tests/layers/test_multigrid_patching.py compares the two).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from geo_neuralop.utils.checks import is_int, is_number

__all__ = ["MultigridPatching2D"]


def _window_index(size: int, count: int, window: int, stride: int, pad: int,
                  device: torch.device) -> torch.Tensor:
    """``[count, window]`` indices ``(i * stride + u - pad) mod size`` (periodic windows)."""
    i = torch.arange(count, device=device)[:, None]
    u = torch.arange(window, device=device)[None, :]
    return (i * stride + u - pad) % size


class MultigridPatching2D(nn.Module):
    """Cut 2-D fields into padded patches with multi-resolution context, and stitch back.

    Parameters
    ----------
    levels : int
        ``n = 2 ** levels`` patches per axis and ``levels`` coarse context views
        (0: identity).
    padding_fraction : float
        Padding of every patch side as a fraction of the field's size per axis
        (rounded to whole cells), in [0, 0.5).

    Shapes
    ------
    patch(x): ``[B, C, H, W] -> [B n^2, C (levels + 1), H / n + 2 p_H, W / n + 2 p_W]``;
    unpatch(y, shape): ``[B n^2, C', H / n + 2 p_H, W / n + 2 p_W] -> [B, C', H, W]``.

    Examples
    --------
    >>> import torch
    >>> mg = MultigridPatching2D(levels=1, padding_fraction=0.125)
    >>> x = torch.randn(2, 3, 32, 32)
    >>> patches = mg.patch(x)
    >>> patches.shape  # 4 patches of 16 x 16 (+ 4 cells of padding per side), 2 levels
    torch.Size([8, 6, 24, 24])
    >>> bool((mg.unpatch(patches[:, :3], x.shape[-2:]) == x).all())
    True
    """

    def __init__(self, levels: int = 1, padding_fraction: float = 0.0) -> None:
        super().__init__()
        if not is_int(levels) or levels < 0:
            raise ValueError(f"levels must be a non-negative int, got {levels!r}")
        if not is_number(padding_fraction) or not 0.0 <= padding_fraction < 0.5:
            raise ValueError(f"padding_fraction must be in [0, 0.5), got {padding_fraction!r}")
        self.levels = int(levels)
        self.padding_fraction = float(padding_fraction)

    @property
    def n_patches(self) -> int:
        """Patches per axis, ``2 ** levels``."""
        return 2 ** self.levels

    def padding(self, shape: tuple[int, int]) -> tuple[int, int]:
        """Cells of padding per patch side for a field of ``shape``."""
        return tuple(round(n * self.padding_fraction) for n in shape)  # type: ignore[return-value]

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """Raise ValueError unless ``n`` divides both sides and every level keeps a stride."""
        n = self.n_patches
        for axis, size in enumerate(shape):
            if size % n != 0 or size // n < n:
                raise ValueError(
                    f"levels={self.levels} cuts each axis into {n} patches whose size must be a "
                    f"multiple of {n} cells at least {n} (so every coarse level has a stride): "
                    f"axis {axis} has {size} cells; use a size that is a multiple of {n * n} "
                    f"or fewer levels")

    def patch(self, x: torch.Tensor) -> torch.Tensor:
        """Padded patches with their coarse context; see the class docstring for shapes."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(f"x must have shape [B, C, H, W], got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x)}")
        if self.levels == 0:
            return x
        b, c, h, w = x.shape
        self.check_shape((h, w))
        n = self.n_patches
        s1, s2 = h // n, w // n
        p1, p2 = self.padding((h, w))
        views = []
        for level in range(self.levels + 1):
            step = 2 ** level
            sub = x[:, :, ::step, ::step]
            size1, size2 = sub.shape[-2:]
            stride1, stride2 = s1 // step, s2 // step
            pad1 = p1 + (math.ceil((s1 + (n - 1) * stride1 - size1) / 2) if level else 0)
            pad2 = p2 + (math.ceil((s2 + (n - 1) * stride2 - size2) / 2) if level else 0)
            rows = _window_index(size1, n, s1 + 2 * p1, stride1, pad1, x.device)
            cols = _window_index(size2, n, s2 + 2 * p2, stride2, pad2, x.device)
            win = sub[:, :, rows[:, :, None, None], cols[None, None, :, :]]  # [B,C,n,h',n,w']
            views.append(win.permute(0, 2, 4, 1, 3, 5).reshape(b * n * n, c, s1 + 2 * p1,
                                                               s2 + 2 * p2))
        return torch.cat(views, dim=1)

    def unpatch(self, y: torch.Tensor, shape: tuple[int, int] | torch.Size) -> torch.Tensor:
        """Crop the padding of patch outputs and stitch them into fields of ``shape``."""
        if self.levels == 0:
            return y
        h, w = (int(s) for s in shape)
        self.check_shape((h, w))
        n = self.n_patches
        p1, p2 = self.padding((h, w))
        s1, s2 = h // n, w // n
        if y.dim() != 4 or y.shape[0] % (n * n) or tuple(y.shape[2:]) != (s1 + 2 * p1,
                                                                           s2 + 2 * p2):
            raise ValueError(f"y must have shape [B * {n * n}, C, {s1 + 2 * p1}, {s2 + 2 * p2}] "
                             f"for fields of shape {(h, w)}, got {tuple(y.shape)}")
        y = y[:, :, p1: p1 + s1, p2: p2 + s2]
        b = y.shape[0] // (n * n)
        y = y.reshape(b, n, n, -1, s1, s2).permute(0, 3, 1, 4, 2, 5)
        return y.reshape(b, -1, h, w)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, padding_fraction={self.padding_fraction}"
