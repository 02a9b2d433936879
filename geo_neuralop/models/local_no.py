"""``LocalNO``: FNO blocks fused with local integral (DISCO) and differential layers.

Each block of the LocalNO paper (Liu-Schiaffini et al., ICML 2024) sums three
operators of its input before the skip and the nonlinearity::

    y = SpectralConv(x) + GridDiscoConv(x) + GridDifferentialConv(x)

The local layers are discretizations of continuous operators on the model's
physical ``domain`` (radius in physical units, quadrature weights and spacing of
the grid the input has), so the same weights evaluated at another resolution
approximate the same operator (zero-shot super-resolution).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from geo_neuralop.layers.differential_conv import GridDifferentialConv
from geo_neuralop.layers.grid_disco_conv import GridDiscoConv
from geo_neuralop.layers.spectral_conv import SpectralConv
from geo_neuralop.models.fno import GridNeuralOperator
from geo_neuralop.models.registry import register_model
from geo_neuralop.utils.checks import (
    as_tuple,
    check_domain,
    check_positive_number,
    layer_flags,
    per_axis,
)

__all__ = ["LocalNO"]


@register_model("local_no", family="grid")
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
    positional_embedding : {"grid"} or None
        Append smooth coordinates: (cos, sin) of the angle on periodic axes, the
        physical coordinate on the others (a raw coordinate would jump at the wrap,
        and the differential layers would see the jump).
    lifting_channel_ratio, projection_channel_ratio, domain_padding, activation, norm,
    use_channel_mlp, channel_mlp_expansion, channel_mlp_skip, skip, conv_bias
        As in :class:`~geo_neuralop.models.FNO`.

    Notes
    -----
    Shapes: forward(x, output_shape=None): ``[B, C_in, *spatial] -> [B, C_out, *spatial]``
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
        skip: str | None = "linear",
        conv_bias: bool = True,
    ) -> None:
        modes = as_tuple(n_modes, "n_modes")
        n_dim = len(modes)
        if n_dim not in (1, 2, 3):
            raise ValueError(f"n_modes must have 1 to 3 entries (one per axis), got {n_modes!r}")
        bounds = check_domain(domain, n_dim)
        periodic_axes = per_axis(periodic, n_dim, "periodic")
        if not all(isinstance(p, bool) for p in periodic_axes):
            raise ValueError(f"periodic must be a bool or {n_dim} bools, got {periodic!r}")
        if positional_embedding not in ("grid", None, "none"):
            raise ValueError(
                f"positional_embedding must be 'grid' or None, got {positional_embedding!r}"
            )
        disco_flags = layer_flags(disco_layers, n_layers, "disco_layers")
        diff_flags = layer_flags(diff_layers, n_layers, "diff_layers")
        shortest = min(hi - lo for lo, hi in bounds)
        radius = check_positive_number("disco_radius",
                                       shortest / 16 if disco_radius is None else disco_radius)
        init_length = check_positive_number(
            "diff_init_length", shortest / 64 if diff_init_length is None else diff_init_length)

        def local(i: int) -> list[nn.Module]:
            layers: list[nn.Module] = []
            if disco_flags[i]:
                layers.append(GridDiscoConv(hidden_channels, hidden_channels, disco_kernel_shape,
                                            radius=radius, n_dim=n_dim, domain=bounds,
                                            periodic=periodic_axes, groups=disco_groups,
                                            bias=False))
            if diff_flags[i]:
                # derivative times a length: at initialization the size of a one-cell
                # difference on a 64-point grid rather than a full derivative
                layers.append(GridDifferentialConv(hidden_channels, hidden_channels, n_dim,
                                                   diff_stencil_size, domain=bounds,
                                                   periodic=periodic_axes,
                                                   init_length=init_length))
            return layers

        super().__init__(
            in_channels, out_channels, n_dim,
            lambda i: SpectralConv(hidden_channels, hidden_channels, modes, bias=conv_bias),
            local_factory=local, hidden_channels=hidden_channels, n_layers=n_layers,
            lifting_channel_ratio=lifting_channel_ratio,
            projection_channel_ratio=projection_channel_ratio,
            positional_embedding=None if positional_embedding == "none" else
            positional_embedding, domain=bounds, periodic=periodic_axes,
            domain_padding=domain_padding, activation=activation, norm=norm,
            use_channel_mlp=use_channel_mlp, channel_mlp_expansion=channel_mlp_expansion,
            channel_mlp_skip=channel_mlp_skip, skip=skip, smooth_embedding=True,
        )
        self.disco_radius = radius
