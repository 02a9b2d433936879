"""``LocalNO``: FNO blocks fused with local integral (DISCO) and differential kernels.

Each block of the LocalNO paper (Liu-Schiaffini et al., ICML 2024) sums three
operators of its input before the skip and the nonlinearity::

    y = SpectralConv(x) + DiscoConv(x) + GridDifferentialConv(x)

The local layers are discretizations of continuous operators on the model's
physical ``domain``: the DISCO kernel (applied through the FFT, see
:mod:`geo_neuralop.layers.grid_disco_conv`) is built for the grid the input
actually has (radius in physical units, quadrature weights of that grid), and
the differential stencil is divided by that grid's physical width. So the same
weights evaluated at another resolution approximate the same operator
(zero-shot super-resolution), unlike a layer whose stencil was fixed for the
training grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from geo_neuralop.layers.channel_mlp import ChannelMLP
from geo_neuralop.layers.differential_conv import GridDifferentialConv
from geo_neuralop.layers.disco_conv import DiscoConv
from geo_neuralop.layers.grid_disco_conv import (
    GridDiscoStencil,
    grid_disco_forward,
    grid_disco_spectrum,
)
from geo_neuralop.layers.spectral_conv import SpectralConv, _as_tuple
from geo_neuralop.models.fno import GridNeuralOperator, _plain_bounds
from geo_neuralop.models.registry import register_model

__all__ = ["LocalNO", "layer_flags"]


def layer_flags(value: bool | Sequence[bool], n_layers: int, name: str) -> list[bool]:
    """One flag per block from a bool or a per-block sequence."""
    if isinstance(value, bool):
        return [value] * n_layers
    flags = list(value)
    if len(flags) != n_layers or not all(isinstance(v, bool) for v in flags):
        raise ValueError(f"{name} must be a bool or {n_layers} bools (one per block), got "
                         f"{value!r}")
    return flags


def _domain(domain, n_dim: int) -> tuple[tuple[float, float], ...]:
    if domain is None:
        return ((0.0, 1.0),) * n_dim
    bounds = tuple((float(lo), float(hi)) for lo, hi in domain)
    if len(bounds) != n_dim:
        raise ValueError(f"domain must have {n_dim} (lo, hi) pairs, got {domain!r}")
    for axis, (lo, hi) in enumerate(bounds):
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"domain axis {axis} must satisfy lo < hi, got {(lo, hi)}")
    return bounds


@register_model("local_no")
class LocalNO(GridNeuralOperator):
    """Local neural operator on regular grids: spectral + DISCO + differential blocks.

    Parameters
    ----------
    in_channels, out_channels : int
    n_modes : int or sequence of int
        Fourier modes per axis (see :class:`~geo_neuralop.layers.SpectralConv`);
        its length sets the number of axes.
    hidden_channels, n_layers : int
    domain : sequence of (lo, hi), optional
        Physical extent of each axis (default the unit box). Sets the grid
        widths of the differential layers, the DISCO quadrature and the
        positional embedding.
    periodic : bool or sequence of bool
        Periodic axes (grid without a repeated end point, periodic DISCO
        neighbourhoods and stencils); non-periodic axes include both end points
        and use replicate padding for the stencil.
    disco_layers, diff_layers : bool or sequence of bool
        Which blocks have a DISCO / differential term.
    disco_kernel_shape : int or tuple
        Piecewise-linear basis shape of the DISCO layers.
    disco_radius : float, optional
        DISCO support radius in physical units (default: 1/16 of the shortest
        side of ``domain``). Fixed across resolutions.
    disco_groups : int
        Channel groups of the DISCO layers (1 = dense channel mixing).
    diff_stencil_size : int
        Points per axis of the differential stencils.
    diff_init_length : float, optional
        The differential layers compute physical derivatives (stencil / grid
        width); their initial weights are scaled by this length (default:
        1/64 of the shortest side) so that at initialization they are as large
        as a one-cell difference on a 64-point grid rather than a full
        derivative, which would amplify high frequencies block after block.
    lifting_channel_ratio, projection_channel_ratio, positional_embedding, domain_padding,
    activation, norm, use_channel_mlp, channel_mlp_expansion, channel_mlp_skip, fno_skip,
    conv_bias
        As in :class:`~geo_neuralop.models.FNO`.

    Shapes
    ------
    forward(x, output_shape=None): ``[B, C_in, *spatial] -> [B, C_out, *spatial]``
    (any resolution; ``output_shape`` samples the last block's output on another grid).

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.models import LocalNO
    >>> model = LocalNO(1, 1, n_modes=(8, 8), hidden_channels=8, n_layers=2)
    >>> model(torch.randn(2, 1, 32, 32)).shape
    torch.Size([2, 1, 32, 32])
    >>> model(torch.randn(1, 1, 64, 64)).shape  # the same operator on a finer grid
    torch.Size([1, 1, 64, 64])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_modes: int | Sequence[int],
        hidden_channels: int = 32,
        n_layers: int = 4,
        domain: Sequence[Sequence[float]] | None = None,
        periodic: bool | Sequence[bool] = True,
        disco_layers: bool | Sequence[bool] = True,
        diff_layers: bool | Sequence[bool] = True,
        disco_kernel_shape: int | Sequence[int] = (2, 4),
        disco_radius: float | None = None,
        disco_groups: int = 1,
        diff_stencil_size: int = 3,
        diff_init_length: float | None = None,
        lifting_channel_ratio: float = 2.0,
        projection_channel_ratio: float = 2.0,
        positional_embedding: str | None = "grid",
        domain_padding: float = 0.0,
        activation: str = "gelu",
        norm: str | None = None,
        use_channel_mlp: bool = True,
        channel_mlp_expansion: float = 0.5,
        channel_mlp_skip: str | None = "soft-gating",
        fno_skip: str | None = "linear",
        conv_bias: bool = True,
    ) -> None:
        modes = _as_tuple(n_modes, "n_modes")
        n_dim = len(modes)
        bounds = _domain(domain, n_dim)
        super().__init__(
            in_channels, out_channels, n_dim,
            lambda i: SpectralConv(hidden_channels, hidden_channels, modes, bias=conv_bias),
            hidden_channels=hidden_channels, n_layers=n_layers,
            lifting_channel_ratio=lifting_channel_ratio,
            projection_channel_ratio=projection_channel_ratio,
            positional_embedding=None, grid_boundaries=bounds,
            domain_padding=domain_padding, activation=activation, norm=norm,
            use_channel_mlp=use_channel_mlp, channel_mlp_expansion=channel_mlp_expansion,
            channel_mlp_skip=channel_mlp_skip, skip=fno_skip,
        )
        periodic_axes = (periodic,) * n_dim if isinstance(periodic, bool) else tuple(periodic)
        if len(periodic_axes) != n_dim or not all(isinstance(p, bool) for p in periodic_axes):
            raise ValueError(f"periodic must be a bool or {n_dim} bools, got {periodic!r}")
        if positional_embedding not in ("grid", None, "none"):
            raise ValueError(
                f"positional_embedding must be 'grid' or None, got {positional_embedding!r}"
            )
        # The embedding must be a smooth function on the domain, or the differential layers
        # see a jump: periodic axes get (cos, sin) of the angle, the others the coordinate.
        self.embed = positional_embedding == "grid"
        if self.embed:
            n_embed = sum(2 if p else 1 for p in periodic_axes)
            lifting_hidden = round(lifting_channel_ratio * hidden_channels)
            self.lifting = ChannelMLP(in_channels + n_embed, hidden_channels,
                                      max(lifting_hidden, 1),
                                      n_layers=2 if lifting_hidden > 0 else 1,
                                      activation=activation)
        disco_flags = layer_flags(disco_layers, n_layers, "disco_layers")
        diff_flags = layer_flags(diff_layers, n_layers, "diff_layers")
        if disco_radius is None:
            disco_radius = min(hi - lo for lo, hi in bounds) / 16
        if not (isinstance(disco_radius, (int, float)) and disco_radius > 0):
            raise ValueError(f"disco_radius must be a positive length, got {disco_radius!r}")
        self.domain, self.periodic = bounds, periodic_axes
        self.disco_radius = float(disco_radius)
        kernel_shape = (disco_kernel_shape if isinstance(disco_kernel_shape, int)
                        else tuple(disco_kernel_shape))
        self.disco = nn.ModuleList([
            DiscoConv(hidden_channels, hidden_channels, kernel_shape, radius=self.disco_radius,
                      groups=disco_groups, bias=False) if flag else nn.Identity()
            for flag in disco_flags
        ])
        boundary = ["periodic" if p else "replicate" for p in periodic_axes]
        self.diff = nn.ModuleList([
            GridDifferentialConv(hidden_channels, hidden_channels, ndim=n_dim,
                                 stencil_size=diff_stencil_size,
                                 domain_size=[hi - lo for lo, hi in bounds], boundary=boundary)
            if flag else nn.Identity()
            for flag in diff_flags
        ])
        if diff_init_length is None:
            diff_init_length = min(hi - lo for lo, hi in bounds) / 64
        if not (isinstance(diff_init_length, (int, float)) and diff_init_length > 0):
            raise ValueError(f"diff_init_length must be a positive length, got "
                             f"{diff_init_length!r}")
        with torch.no_grad():  # derivative times a length: the size of a one-cell difference
            for layer in self.diff:
                if isinstance(layer, GridDifferentialConv):
                    layer.weight.mul_(diff_init_length)
        self.disco_flags, self.diff_flags = disco_flags, diff_flags
        self._stencils: dict[tuple, GridDiscoStencil] = {}
        self.config = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "n_modes": list(modes),
            "hidden_channels": hidden_channels,
            "n_layers": n_layers,
            "domain": [list(b) for b in bounds],
            "periodic": list(periodic_axes),
            "disco_layers": disco_flags,
            "diff_layers": diff_flags,
            "disco_kernel_shape": (kernel_shape if isinstance(kernel_shape, int)
                                   else list(kernel_shape)),
            "disco_radius": self.disco_radius,
            "disco_groups": disco_groups,
            "diff_stencil_size": diff_stencil_size,
            "diff_init_length": float(diff_init_length),
            "lifting_channel_ratio": float(lifting_channel_ratio),
            "projection_channel_ratio": float(projection_channel_ratio),
            "positional_embedding": positional_embedding,
            "domain_padding": float(domain_padding),
            "activation": activation,
            "norm": norm,
            "use_channel_mlp": bool(use_channel_mlp),
            "channel_mlp_expansion": float(channel_mlp_expansion),
            "channel_mlp_skip": channel_mlp_skip,
            "fno_skip": fno_skip,
            "conv_bias": bool(conv_bias),
        }
        _plain_bounds(self.config["domain"])

    # -------------------------------------------------------------- geometry

    def embedding(self, shape: Sequence[int], dtype: torch.dtype,
                  device: torch.device) -> torch.Tensor:
        """Positional channels ``[E, *shape]``: ``cos, sin`` of the angle on periodic axes
        (smooth across the wrap), the physical coordinate on the others."""
        channels, axes = [], []
        for (lo, hi), n, periodic in zip(self.domain, shape, self.periodic, strict=True):
            i = torch.arange(n, dtype=dtype, device=device)
            axes.append(i / n if periodic else lo + (hi - lo) * i / max(n - 1, 1))
        grids = torch.meshgrid(*axes, indexing="ij")
        for g, periodic in zip(grids, self.periodic, strict=True):
            if periodic:
                channels += [torch.cos(2 * math.pi * g), torch.sin(2 * math.pi * g)]
            else:
                channels.append(g)
        return torch.stack(channels)

    def lift(self, x: torch.Tensor) -> torch.Tensor:
        if self.embed:
            coords = self.embedding(x.shape[2:], x.dtype, x.device)
            x = torch.cat([x, coords.expand(x.shape[0], *coords.shape)], dim=1)
        return self.lifting(x)

    def grid_domain(self, shape: Sequence[int]) -> tuple[tuple[float, float], ...]:
        """Physical extent of a (possibly padded) hidden grid of spatial ``shape``.

        Without padding this is ``domain``; domain padding appends points with
        the same spacing, so the padded grid covers a proportionally larger box.
        """
        if self.domain_padding == 0.0:
            return self.domain
        out = []
        for (lo, hi), n_padded, pad, periodic in zip(
            self.domain, shape, self._unpadded_padding(shape), self.periodic, strict=True
        ):
            n = n_padded - pad
            spacing = (hi - lo) / (n if periodic else n - 1)
            out.append((lo, lo + spacing * (n_padded if periodic else n_padded - 1)))
        return tuple(out)

    def _unpadded_padding(self, padded_shape: Sequence[int]) -> list[int]:
        # pad = round(f * n) with n unknown: find the n whose padded size matches
        pads = []
        for n_padded in padded_shape:
            n = n_padded
            while n > 1 and n + round(self.domain_padding * n) > n_padded:
                n -= 1
            pads.append(n_padded - n)
        return pads

    def grid_spacing(self, shape: Sequence[int]) -> tuple[float, ...]:
        """Physical grid width of each axis of a hidden grid of spatial ``shape``."""
        return tuple((hi - lo) / (n if p else n - 1) for (lo, hi), n, p in
                     zip(self.grid_domain(shape), shape, self.periodic, strict=True))

    def disco_stencil(self, shape: Sequence[int], dtype: torch.dtype,
                      device: torch.device) -> GridDiscoStencil:
        """The DISCO basis on the grid of ``shape`` in Fourier space (built once per grid)."""
        shape = tuple(int(n) for n in shape)
        key = (shape, dtype, str(device))
        if key not in self._stencils:
            layer = next(m for m in self.disco if isinstance(m, DiscoConv))
            self._stencils[key] = GridDiscoStencil(
                layer.basis, self.disco_radius, shape, self.grid_domain(shape), self.periodic,
                normalization="mean", dtype=dtype, device=device)
        return self._stencils[key]

    # -------------------------------------------------------------- forward

    def fused_disco(self, index: int, x: torch.Tensor,
                    output_shape: Sequence[int] | None = None) -> bool:
        """Whether block ``index`` applies its DISCO term as a Fourier multiplier inside the
        spectral convolution (sharing its FFTs): every axis periodic, no domain padding, and
        the block's output on its input grid. Same result as the separate FFT path."""
        shape = tuple(x.shape[2:])
        return (self.disco_flags[index] and all(self.periodic) and self.domain_padding == 0.0
                and (output_shape is None or tuple(output_shape) == shape))

    def local_terms(self, index: int, x: torch.Tensor,
                    output_shape: Sequence[int] | None = None,
                    skip_disco: bool = False) -> list[torch.Tensor]:
        """DISCO and differential terms of block ``index`` for hidden fields ``x [B, C, *grid]``,
        on the grid ``output_shape`` (default: the input grid); ``skip_disco`` leaves out the
        DISCO term (when it is fused into the spectral convolution)."""
        shape = tuple(x.shape[2:])
        out_shape = shape if output_shape is None else tuple(output_shape)
        terms = []
        if self.disco_flags[index] and not skip_disco:
            layer = self.disco[index]
            stencil = self.disco_stencil(shape, x.dtype, x.device)
            terms.append(grid_disco_forward(x, stencil, layer.weight, layer.groups, layer.bias))
        if self.diff_flags[index]:
            terms.append(self.diff[index](x, spacing=self.grid_spacing(shape)))
        if out_shape != shape:  # the last block samples its output on another grid
            terms = [self.blocks[index].conv.transform(t, output_shape=out_shape) for t in terms]
        return terms

    def forward_blocks(self, x: torch.Tensor,
                       output_shape: Sequence[int] | None = None) -> torch.Tensor:
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            shape = output_shape if i == last else None
            fused = self.fused_disco(i, x, shape)
            spectrum_terms = [self._disco_spectrum_term(i, x)] if fused else None
            x = block(x, extra=self.local_terms(i, x, shape, skip_disco=fused),
                      output_shape=shape, spectrum_terms=spectrum_terms)
        return x

    def _disco_spectrum_term(self, index: int,
                             x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        layer = self.disco[index]
        stencil = self.disco_stencil(tuple(x.shape[2:]), x.dtype, x.device)

        def term(x_hat: torch.Tensor) -> torch.Tensor:
            return grid_disco_spectrum(x_hat, stencil, layer.weight, layer.groups)

        return term

    def _apply(self, fn, recurse: bool = True):
        self._stencils = {}  # stencils follow the model's device and dtype: rebuild lazily
        return super()._apply(fn, recurse)
