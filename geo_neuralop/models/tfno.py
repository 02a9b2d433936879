"""Tensorized and multi-grid tensorized FNO (Kossaifi et al., "Multi-Grid Tensorized Fourier
Neural Operator for High-Resolution PDEs", TMLR 2024).

:class:`TFNO` is an :class:`~geo_neuralop.models.FNO` whose spectral weights are
stored as low-rank CP, Tucker or tensor-train tensors. :class:`MGTFNO` runs a TFNO on
the patches of :class:`~geo_neuralop.layers.MultigridPatching2D` (each patch with
coarse views of its surroundings) and stitches the results, so a field larger than
one pass allows is processed a few patches at a time (``patches_per_pass``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from geo_neuralop.layers.multigrid_patching import MultigridPatching2D
from geo_neuralop.models.fno import FNO
from geo_neuralop.models.registry import register_model
from geo_neuralop.utils.checks import as_tuple, check_positive_int

__all__ = ["MGTFNO", "TFNO"]


@register_model("tfno", family="grid")
class TFNO(FNO):
    """Tensorized FNO: an FNO with factorized spectral weights (Tucker by default).

    Parameters
    ----------
    in_channels, out_channels : int
    n_modes : int or sequence of int
    hidden_channels, n_layers : int
    factorization : {"tucker", "cp", "tt"}
    rank : int, float or sequence of int
        A float in (0, 1] keeps that fraction of the dense spectral parameters; ints
        and sequences are ranks (see
        :func:`~geo_neuralop.layers.factorized_tensors.resolve_rank`).
    domain, domain_padding, positional_embedding, norm, skip, use_channel_mlp
        As in :class:`~geo_neuralop.models.FNO`.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.models import FNO, TFNO
    >>> model = TFNO(1, 1, n_modes=(16, 16), hidden_channels=32, n_layers=4, rank=0.05)
    >>> model(torch.randn(2, 1, 64, 64)).shape
    torch.Size([2, 1, 64, 64])
    >>> dense = FNO(1, 1, n_modes=(16, 16), hidden_channels=32, n_layers=4)
    >>> n = lambda m: sum(p.numel() for p in m.parameters())
    >>> n(model) < 0.1 * n(dense)
    True
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_modes: int | Sequence[int],
        hidden_channels: int = 32,
        n_layers: int = 4,
        factorization: str = "tucker",
        rank: float | int | Sequence[int] = 0.1,
        domain: Sequence[Sequence[float]] | None = None,
        domain_padding: float = 0.0,
        positional_embedding: str | None = "grid",
        norm: str | None = None,
        skip: str | None = "linear",
        use_channel_mlp: bool = True,
    ) -> None:
        if factorization not in ("tucker", "cp", "tt"):
            raise ValueError(f"factorization must be 'tucker', 'cp' or 'tt' (a dense FNO is "
                             f"model 'fno'), got {factorization!r}")
        super().__init__(in_channels, out_channels, n_modes, hidden_channels=hidden_channels,
                         n_layers=n_layers, domain=domain, domain_padding=domain_padding,
                         positional_embedding=positional_embedding, norm=norm, skip=skip,
                         use_channel_mlp=use_channel_mlp, factorization=factorization,
                         rank=rank)


@register_model("mg_tfno", family="grid")
class MGTFNO(nn.Module):
    """Multi-grid TFNO: a TFNO on padded patches with multi-resolution context, stitched.

    ``x -> MultigridPatching2D.patch -> TFNO (C_in (levels + 1) channels) -> unpatch``.

    Parameters
    ----------
    in_channels, out_channels : int
    n_modes : sequence of two int
        Modes of the TFNO on a patch.
    levels : int
        ``2 ** levels`` patches per axis and ``levels`` coarse context views.
    padding_fraction : float
        Patch padding as a fraction of the field's size (periodic wrap).
    patches_per_pass : int, optional
        Run the TFNO on at most this many patches at a time (each chunk
        recomputed in the backward pass, so activations of one chunk are held);
        None: all patches in one pass.
    hidden_channels, n_layers, factorization, rank, positional_embedding
        Of the TFNO (see :class:`TFNO`).

    Shapes
    ------
    forward(x): ``[B, C_in, H, W] -> [B, C_out, H, W]``, with ``H`` and ``W`` multiples of
    ``4 ** levels`` (see :meth:`MultigridPatching2D.check_shape`).

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.models import MGTFNO
    >>> model = MGTFNO(1, 1, n_modes=(8, 8), levels=1, padding_fraction=0.125,
    ...                hidden_channels=16, n_layers=2, patches_per_pass=2)
    >>> model(torch.randn(2, 1, 32, 32)).shape
    torch.Size([2, 1, 32, 32])
    >>> model.tfno.in_channels  # the field and one coarse view of it
    2
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_modes: Sequence[int] = (16, 16),
        levels: int = 1,
        padding_fraction: float = 0.125,
        patches_per_pass: int | None = None,
        hidden_channels: int = 32,
        n_layers: int = 4,
        factorization: str = "tucker",
        rank: float | int | Sequence[int] = 0.1,
        positional_embedding: str | None = "grid",
    ) -> None:
        super().__init__()
        modes = as_tuple(n_modes, "n_modes")
        if len(modes) != 2:
            raise ValueError(f"n_modes must have 2 entries (MG-TFNO patches 2-D fields), got "
                             f"{n_modes!r}")
        check_positive_int("in_channels", in_channels)
        if patches_per_pass is not None:
            check_positive_int("patches_per_pass", patches_per_pass)
        self.patching = MultigridPatching2D(levels, padding_fraction)
        self.patches_per_pass = patches_per_pass
        self.in_channels, self.out_channels = in_channels, out_channels
        self.tfno = TFNO(in_channels * (levels + 1), out_channels, modes,
                         hidden_channels=hidden_channels, n_layers=n_layers,
                         factorization=factorization, rank=rank,
                         positional_embedding=positional_embedding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the operator patch by patch; see the class docstring for shapes."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape [B, {self.in_channels}, H, W], got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x)}")
        patches = self.patching.patch(x)
        chunk = self.patches_per_pass
        if chunk is None or chunk >= patches.shape[0]:
            out = self.tfno(patches)
        else:
            parts = []
            for part in patches.split(chunk):
                if torch.is_grad_enabled() and (part.requires_grad or self.training):
                    parts.append(checkpoint(self.tfno, part, use_reentrant=False))
                else:
                    parts.append(self.tfno(part))
            out = torch.cat(parts)
        return self.patching.unpatch(out, x.shape[-2:])
