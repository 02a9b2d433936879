"""``AMSpectralConv``: amortized Fourier convolution (AM-FNO, Xiao et al., NeurIPS 2024).

Instead of one free weight per kept frequency, a small network produces the
``C_in x C_out`` complex kernel value ``R(k)`` for *every* frequency a grid
holds, from an orthogonal embedding of the frequency. The number of
parameters depends neither on the resolution nor on the number of modes.

Frequency normalization
-----------------------
Frequencies are integers ``k`` (cycles per domain; see
:mod:`geo_neuralop.layers.spectral_conv` for the Fourier conventions) and are
mapped to ``xi = k / sqrt(k^2 + s^2)`` in ``(-1, 1)`` with a fixed
``frequency_scale`` ``s``. The map depends on ``k`` only, never on the grid, so
a physical frequency gets the same kernel value at every resolution, and it
covers all frequencies without clipping. The Chebyshev embedding
``T_n(xi) = cos(n arccos xi)``, ``n = 1..n_basis``, is then Boyd's rational
Chebyshev basis on the real line (orthogonal for the weight ``1/(k^2 + s^2)``);
the "fourier" (triangular) embedding is ``cos(pi n xi), sin(pi n xi)``.

Variants
--------
- ``factorization="separable"``: one network per axis and
  ``R(k) = R_1(k_1) * ... * R_d(k_d)`` (elementwise in the channel pair), the
  paper's per-dimension factorization; the networks run on ``sum_d n_d`` points.
- ``factorization="full"``: one network on the concatenated embeddings of all
  axes, evaluated at every kept frequency of the grid.
- ``kernel_network="mlp"`` (on the embedding) or ``"kan"`` (a B-spline
  Kolmogorov-Arnold network on ``xi`` itself, :class:`~geo_neuralop.layers.kan.KAN`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from geo_neuralop.layers.activations import get_activation
from geo_neuralop.layers.kan import KAN
from geo_neuralop.layers.spectral_conv import FourierConvBase, symmetric_frequencies
from geo_neuralop.utils.checks import as_tuple

__all__ = ["AMSpectralConv", "frequency_embedding", "normalize_frequency"]

_EMBEDDINGS = ("chebyshev", "fourier")
_NETWORKS = ("mlp", "kan")
_FACTORIZATIONS = ("separable", "full")


def normalize_frequency(k: torch.Tensor, scale: float) -> torch.Tensor:
    """``xi = k / sqrt(k^2 + scale^2)`` in ``(-1, 1)``, independent of the grid."""
    return k / torch.sqrt(k * k + scale * scale)


def frequency_embedding(xi: torch.Tensor, n_basis: int, kind: str = "chebyshev") -> torch.Tensor:
    """Orthogonal embedding of normalized frequencies.

    Parameters
    ----------
    xi : torch.Tensor, shape [...]
        Normalized frequencies in ``[-1, 1]``.
    n_basis : int
    kind : {"chebyshev", "fourier"}
        "chebyshev": ``T_1(xi) .. T_n(xi)`` (``T_n = cos(n arccos xi)``);
        "fourier": ``cos(pi j xi), sin(pi j xi)`` for ``j = 1, 2, ...``, the
        first ``n_basis`` of them.

    Returns
    -------
    torch.Tensor, shape [..., n_basis]
    """
    if kind == "chebyshev":
        n = torch.arange(1, n_basis + 1, dtype=xi.dtype, device=xi.device)
        return torch.cos(n * torch.arccos(xi.clamp(-1.0, 1.0)).unsqueeze(-1))
    if kind == "fourier":
        j = torch.arange(1, (n_basis + 1) // 2 + 1, dtype=xi.dtype, device=xi.device)
        arg = math.pi * j * xi.unsqueeze(-1)
        return torch.stack([torch.cos(arg), torch.sin(arg)], -1).flatten(-2)[..., :n_basis]
    raise ValueError(f"embedding must be one of {_EMBEDDINGS}, got {kind!r}")


class _KernelMLP(nn.Sequential):
    """Pointwise MLP ``[n_in] -> hidden ... -> [n_out]`` with He-initialized hidden layers."""

    def __init__(self, n_in: int, n_out: int, hidden: int, n_layers: int, activation: str):
        layers: list[nn.Module] = []
        width = n_in
        for _ in range(n_layers - 1):
            lin = nn.Linear(width, hidden)
            nn.init.normal_(lin.weight, std=math.sqrt(2.0 / width))
            nn.init.zeros_(lin.bias)
            layers += [lin, get_activation(activation)]
            width = hidden
        layers.append(nn.Linear(width, n_out))
        super().__init__(*layers)


class AMSpectralConv(FourierConvBase):
    """Amortized Fourier convolution: kernel values from a network of the frequency.

    Parameters
    ----------
    in_channels, out_channels : int
    n_dim : int
        Number of spatial axes (1, 2 or 3).
    n_modes : int or sequence of int, optional
        Optional cap ``m`` per axis, keeping ``|k| <= m // 2`` as in
        :class:`~geo_neuralop.layers.SpectralConv`. Default: every frequency the
        grid holds (no truncation).
    kernel_network : {"mlp", "kan"}
    factorization : {"separable", "full"}
    embedding : {"chebyshev", "fourier"}
        Frequency embedding for the MLP (the KAN takes ``xi`` directly).
    n_basis : int
        Embedding size per axis.
    kernel_hidden : int, optional
        Hidden width of the kernel network; default 32 for the MLP and 8 for the
        KAN (whose last layer holds ``grid_size + spline_order + 1`` weights per
        edge, and has ``2 C_in C_out`` outputs).
    kernel_layers : int
        Number of layers of the kernel network (MLP: linear layers; KAN:
        KAN layers), at least 1.
    frequency_scale : float
        ``s`` in ``xi = k / sqrt(k^2 + s^2)`` (in cycles per domain): the
        frequency around which the embedding has most resolution.
    activation : str
        MLP activation (see :func:`~geo_neuralop.layers.activations.get_activation`).
    kan_grid_size, kan_spline_order : int
        B-spline grid of the KAN variant.
    bias : bool
    init_std : float or "auto"
        Target RMS of the kernel values at initialization; "auto" is
        ``sqrt(2 / (in_channels + out_channels))``. The last layer of each
        network is rescaled so that the product kernel has this RMS on the
        frequencies ``-64..64``.

    Notes
    -----
    Shapes: forward(x, output_shape=None): ``[B, C_in, n_1, ..., n_d]`` ->
    ``[B, C_out, *output_shape]``.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.layers import AMSpectralConv
    >>> conv = AMSpectralConv(4, 4, n_dim=2)
    >>> n_params = sum(p.numel() for p in conv.parameters())
    >>> conv(torch.randn(1, 4, 32, 32)).shape, conv(torch.randn(1, 4, 128, 96)).shape
    (torch.Size([1, 4, 32, 32]), torch.Size([1, 4, 128, 96]))
    >>> n_params == sum(p.numel() for p in conv.parameters())  # nothing grows with resolution
    True
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_dim: int,
        n_modes: int | Sequence[int] | None = None,
        kernel_network: str = "mlp",
        factorization: str = "separable",
        embedding: str = "chebyshev",
        n_basis: int = 16,
        kernel_hidden: int | None = None,
        kernel_layers: int = 2,
        frequency_scale: float = 16.0,
        activation: str = "gelu",
        kan_grid_size: int = 8,
        kan_spline_order: int = 3,
        bias: bool = True,
        init_std: float | str = "auto",
    ) -> None:
        if n_modes is None:
            max_freq: list[int | None] = [None] * (n_dim if isinstance(n_dim, int) else 0)
        else:
            modes = as_tuple(n_modes, "n_modes")
            if len(modes) != n_dim:
                raise ValueError(f"n_modes must have n_dim={n_dim} entries, got {n_modes!r}")
            for i, m in enumerate(modes):
                if m < 1:
                    raise ValueError(f"n_modes[{i}] must be positive, got {m}")
            max_freq = [m // 2 for m in modes]
        super().__init__(in_channels, out_channels, n_dim, max_freq, bias)
        if kernel_network not in _NETWORKS:
            raise ValueError(f"kernel_network must be one of {_NETWORKS}, got {kernel_network!r}")
        if factorization not in _FACTORIZATIONS:
            raise ValueError(
                f"factorization must be one of {_FACTORIZATIONS}, got {factorization!r}"
            )
        if embedding not in _EMBEDDINGS:
            raise ValueError(f"embedding must be one of {_EMBEDDINGS}, got {embedding!r}")
        if kernel_hidden is None:
            kernel_hidden = 32 if kernel_network == "mlp" else 8
        for name, value in (("n_basis", n_basis), ("kernel_hidden", kernel_hidden),
                            ("kernel_layers", kernel_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(frequency_scale, (int, float)) or not frequency_scale > 0:
            raise ValueError(f"frequency_scale must be positive, got {frequency_scale!r}")
        if init_std == "auto":
            init_std = math.sqrt(2.0 / (in_channels + out_channels))
        elif isinstance(init_std, bool) or not isinstance(init_std, (int, float)) or init_std <= 0:
            raise ValueError(f"init_std must be a positive number or 'auto', got {init_std!r}")
        self.n_modes = None if n_modes is None else as_tuple(n_modes, "n_modes")
        self.kernel_network = kernel_network
        self.factorization = factorization
        self.embedding = embedding
        self.n_basis = n_basis
        self.frequency_scale = float(frequency_scale)
        n_out = 2 * in_channels * out_channels
        n_nets = n_dim if factorization == "separable" else 1
        n_axes = 1 if factorization == "separable" else n_dim

        def make_net() -> nn.Module:
            if kernel_network == "mlp":
                return _KernelMLP(n_axes * n_basis, n_out, kernel_hidden, kernel_layers, activation)
            widths = [n_axes] + [kernel_hidden] * (kernel_layers - 1) + [n_out]
            return KAN(widths, grid_size=kan_grid_size, spline_order=kan_spline_order)

        self.nets = nn.ModuleList([make_net() for _ in range(n_nets)])
        self._rescale_init(float(init_std))

    # ------------------------------------------------------------------ kernel evaluation

    def _features(self, k: torch.Tensor) -> torch.Tensor:
        """Network input for integer frequencies ``k [...]``: ``[..., n_basis]`` or ``[..., 1]``."""
        xi = normalize_frequency(k, self.frequency_scale)
        if self.kernel_network == "kan":
            return xi.unsqueeze(-1)
        return frequency_embedding(xi, self.n_basis, self.embedding)

    def _net_values(self, net: nn.Module, feats: torch.Tensor) -> torch.Tensor:
        """Complex kernel values ``[..., C_in, C_out]`` from network features ``[..., F]``."""
        out = net(feats).reshape(*feats.shape[:-1], self.in_channels, self.out_channels, 2)
        return torch.view_as_complex(out.float() if out.dtype == torch.float16 else out)

    def kernel_values(self, freqs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Kernel ``R(k)`` on the tensor-product frequency grid ``freqs[0] x ... x freqs[d-1]``.

        Parameters
        ----------
        freqs : sequence of torch.Tensor
            Integer frequencies per axis (any order, any values).

        Returns
        -------
        torch.Tensor, complex, shape [len(freqs[0]), ..., len(freqs[-1]), C_in, C_out]
        """
        if len(freqs) != self.n_dim:
            raise ValueError(f"freqs must hold {self.n_dim} tensors, got {len(freqs)}")
        d = self.n_dim
        if self.factorization == "separable":
            kernel = None
            for axis, (net, k) in enumerate(zip(self.nets, freqs, strict=True)):
                r = self._net_values(net, self._features(k))  # [n_axis, I, O]
                shape = [1] * d + [self.in_channels, self.out_channels]
                shape[axis] = k.shape[0]
                r = r.reshape(shape)
                kernel = r if kernel is None else kernel * r
            return kernel
        grids = torch.meshgrid(*freqs, indexing="ij")
        feats = torch.cat([self._features(g) for g in grids], dim=-1)  # [n_1, ..., n_d, F]
        return self._net_values(self.nets[0], feats)  # [n_1, ..., n_d, I, O]

    def spectral_weight(self, kept: Sequence[int]) -> torch.Tensor:
        param = next(self.nets.parameters())
        freqs = symmetric_frequencies(kept, device=param.device, dtype=param.dtype)
        return self.kernel_values(freqs)

    @torch.no_grad()
    def _rescale_init(self, target: float) -> None:
        param = next(self.nets.parameters())
        if param.is_meta:  # shapes only (e.g. checking a checkpoint before building): no values
            return
        probe = torch.arange(-64, 65, device=param.device, dtype=param.dtype)
        if self.factorization == "separable":
            per_net = target ** (1.0 / self.n_dim)
            for net in self.nets:
                rms = self._net_values(net, self._features(probe)).abs().pow(2).mean().sqrt()
                _scale_last_layer(net, per_net / float(rms))
        else:
            probe = probe[::8] if self.n_dim == 3 else probe[::2]
            rms = self.kernel_values([probe] * self.n_dim).abs().pow(2).mean().sqrt()
            _scale_last_layer(self.nets[0], target / float(rms))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, n_dim={self.n_dim}, "
                f"n_modes={self.n_modes}, kernel_network={self.kernel_network!r}, "
                f"factorization={self.factorization!r}, embedding={self.embedding!r}, "
                f"n_basis={self.n_basis}, frequency_scale={self.frequency_scale}")


def _scale_last_layer(net: nn.Module, factor: float) -> None:
    last = list(net.children())[-1]
    for p in last.parameters():
        p.mul_(factor)
