"""``SphericalSpectralConv``: spectral convolution on the sphere through spherical harmonics.

``y = ISHT_out( W . SHT_in(x) )`` with torch-harmonics' ``RealSHT`` /
``InverseRealSHT`` (orthonormal harmonics, Condon-Shortley phase), degrees
``l < lmax`` and orders ``m < mmax``. Operator types:

- ``"driscoll-healy"``: one real weight per degree ``l`` (shared by all ``m``).
  By the Driscoll-Healy convolution theorem this is the convolution with a
  zonal kernel, so the layer commutes with every rotation of the sphere.
- ``"driscoll-healy-complex"``: one complex weight per ``l`` (torch-harmonics'
  SFNO ``"driscoll-healy"``); the imaginary part acts like a rotation of each
  ``m``-component in longitude, so only rotations about the polar axis commute.
- ``"diagonal"``: one complex weight per ``(l, m)``; equivariant to rotations about
  the polar axis only.

The transforms are built lazily for each grid shape the layer meets (and kept
in a small per-layer cache, outside the state dict), so one set of weights runs
at any resolution: the kept degrees are
``L = min(lmax, nlat_in, nlat_out, nlon_in // 2 + 1, nlon_out // 2 + 1)`` (the
usual torch-harmonics limits; equiangular grids integrate exactly only up to about
``(nlat + 1) // 2``) and the orders ``min(mmax, L)``. The transforms are always
built with explicit ``lmax == mmax == L`` (torch-harmonics 0.9 imposes
triangular truncation), and the order truncation to ``mmax`` is done here.

Speed: the forward pass does not use torch-harmonics' transforms: longitude FFT, then
the Legendre sums, the channel mixing and the inverse Legendre sums as three batched
matrix products with one layout change between each (complex products with a
contiguous backward), then the inverse FFT.

Memory: the Legendre tables are built by
:func:`~geo_neuralop.geometry.legendre.sphere_grid_legendre` (float32, one degree at a
time, the same values as torch-harmonics' float64 tables) and kept once per grid in the
``operator_cache`` a model shares between its layers: the forward transform applies the
quadrature weights to the longitude spectrum, so one table serves the analysis on a
grid and the synthesis onto it. At 721 x 1440 with an internal 361 x 720 grid and 361
degrees, SFNO holds 0.56 GB of tables where one table per direction and layer pair held
1.43 GB.
That is 1.4x faster than ``RealSHT -> einsum -> InverseRealSHT`` per training step
(benchmarks/models.py); :meth:`SphericalSpectralConv.forward_reference` keeps the
plain path, and a test checks that both agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch_harmonics import InverseRealSHT, RealSHT

from geo_neuralop.geometry.legendre import sphere_grid_legendre
from geo_neuralop.geometry.quadrature import SPHERE_GRIDS
from geo_neuralop.layers.factorized_tensors import FactorizedTensor, factorized_tensor
from geo_neuralop.layers.spectral_conv import complex_bmm
from geo_neuralop.utils.cache import BoundedCache

__all__ = ["OPERATOR_TYPES", "SphericalSpectralConv", "sht_degree_limit"]

OPERATOR_TYPES = ("driscoll-healy", "driscoll-healy-complex", "diagonal")
_CACHE_SIZE = 16


def release_torch_harmonics_tables() -> None:
    """Empty torch-harmonics' cache of Legendre tables (float64, up to 20 of them).

    torch-harmonics 0.8/0.9 memoize ``_precompute_legpoly`` with the colatitude tensor in
    the key; a tensor hashes by identity, so a later transform never finds an entry, but
    every table stays alive (751 MB each for a 721 x 1440 grid at lmax 361). Our layers
    copy what they need, so the entries are dropped. A private helper, looked up
    defensively: nothing happens when it is not there.
    """
    try:
        from torch_harmonics import legendre
    except ImportError:  # pragma: no cover - torch-harmonics is a dependency
        return
    for name in ("_precompute_legpoly", "_precompute_dlegpoly"):
        wrapper = getattr(legendre, name, None)
        for cell in getattr(wrapper, "__closure__", None) or ():
            clear = getattr(cell.cell_contents, "cache_clear", None)
            if callable(clear):
                clear()


def sht_degree_limit(nlat: int, nlon: int) -> int:
    """Largest ``lmax`` (exclusive) used on an ``nlat x nlon`` grid: ``min(nlat, nlon//2 + 1)``."""
    return min(nlat, nlon // 2 + 1)


def _check_grid(name: str, grid: str) -> None:
    if grid not in SPHERE_GRIDS:
        raise ValueError(f"{name} must be one of {SPHERE_GRIDS}, got {grid!r}")


class SphericalSpectralConv(nn.Module):
    """Spherical harmonic convolution (the SFNO layer) on latitude-longitude grids.

    Parameters
    ----------
    in_channels, out_channels : int
    lmax : int
        Number of degrees kept (``l = 0 .. lmax - 1``) when the grids allow it.
    mmax : int, optional
        Number of orders kept (``m = 0 .. mmax - 1``); default ``lmax``.
    grid : {"equiangular", "legendre-gauss"}
        Latitude rule of the input grid.
    out_grid : {"equiangular", "legendre-gauss"}, optional
        Latitude rule of the output grid; default ``grid``.
    operator_type : {"driscoll-healy", "driscoll-healy-complex", "diagonal"}
    bias : bool
        Learned constant per output channel.
    init_std : float or "auto"
        Standard deviation (``|w|``) of the weights; "auto" is
        ``sqrt(2 / (in_channels + out_channels))``.
    factorization : {"cp", "tucker", "tt", "dense"} or None
        Store the weight factorized (tensorized SFNO; see
        :mod:`~geo_neuralop.layers.factorized_tensors`); None: a plain parameter.
    rank : int, float or sequence of int
        Rank of the factorization (a float in (0, 1]: fraction of the dense parameters).
    operator_cache : BoundedCache, optional
        Where the Legendre operators of the fast path are kept (default: the layer's
        own). A model passes one cache to all its layers so that layers on the same
        grids hold their operators once.

    Attributes
    ----------
    weight : nn.Parameter
        ``[C_in, C_out, lmax]`` (real, "driscoll-healy"), ``[C_in, C_out, lmax, 2]``
        (real and imaginary parts, "driscoll-healy-complex") or
        ``[C_in, C_out, lmax, mmax, 2]`` ("diagonal"); with ``factorization`` a
        :class:`~geo_neuralop.layers.factorized_tensors.FactorizedTensor` of shape
        ``[C_in, C_out, lmax]`` or ``[C_in, C_out, lmax, mmax]`` (complex unless
        "driscoll-healy").

    Notes
    -----
    Shapes: forward(x, output_shape=None): ``[B, C_in, nlat, nlon]`` ->
    ``[B, C_out, *output_shape]`` (default: the input's ``(nlat, nlon)``).

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.layers import SphericalSpectralConv
    >>> conv = SphericalSpectralConv(3, 4, lmax=12, grid="equiangular", out_grid="legendre-gauss")
    >>> conv(torch.randn(2, 3, 25, 48), output_shape=(12, 24)).shape
    torch.Size([2, 4, 12, 24])
    >>> conv(torch.randn(2, 3, 49, 96), output_shape=(24, 48)).shape  # same weights, finer grids
    torch.Size([2, 4, 24, 48])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        lmax: int,
        mmax: int | None = None,
        grid: str = "equiangular",
        out_grid: str | None = None,
        operator_type: str = "driscoll-healy",
        bias: bool = False,
        init_std: float | str = "auto",
        factorization: str | None = None,
        rank: float | int | Sequence[int] = 1.0,
        operator_cache: BoundedCache | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("lmax", lmax)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        mmax = lmax if mmax is None else mmax
        if isinstance(mmax, bool) or not isinstance(mmax, int) or not 1 <= mmax <= lmax:
            raise ValueError(f"mmax must be an int in [1, lmax={lmax}], got {mmax!r}")
        out_grid = grid if out_grid is None else out_grid
        _check_grid("grid", grid)
        _check_grid("out_grid", out_grid)
        if operator_type not in OPERATOR_TYPES:
            raise ValueError(
                f"operator_type must be one of {OPERATOR_TYPES}, got {operator_type!r}"
            )
        if init_std == "auto":
            init_std = math.sqrt(2.0 / (in_channels + out_channels))
        elif isinstance(init_std, bool) or not isinstance(init_std, (int, float)) or init_std <= 0:
            raise ValueError(f"init_std must be a positive number or 'auto', got {init_std!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.lmax = lmax
        self.mmax = mmax
        self.grid = grid
        self.out_grid = out_grid
        self.operator_type = operator_type
        std = float(init_std)
        self.factorization = factorization
        if factorization is not None:
            shape = (in_channels, out_channels, lmax) + ((mmax,) if operator_type == "diagonal"
                                                          else ())
            self.weight = factorized_tensor(shape, factorization, rank,
                                            complex_valued=operator_type != "driscoll-healy",
                                            init_std=std)
        elif operator_type == "driscoll-healy":
            weight = torch.randn(in_channels, out_channels, lmax) * std
        elif operator_type == "driscoll-healy-complex":
            weight = torch.randn(in_channels, out_channels, lmax, 2) * (std / math.sqrt(2.0))
        else:
            weight = torch.randn(in_channels, out_channels, lmax, mmax, 2) * (std / math.sqrt(2.0))
        if factorization is None:
            self.weight = nn.Parameter(weight)
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_channels, 1, 1))
        else:
            self.register_parameter("bias", None)
        self.transform_cache: BoundedCache[tuple] = BoundedCache(_CACHE_SIZE)
        # the Legendre operators of the fast path: a model may hand the same cache to all
        # its layers, whose operators are then held once (keys name the layer's grids and
        # degrees; at 0.25 degrees one pair of them takes about 0.6 GB)
        self.operator_cache: BoundedCache[tuple] = operator_cache if operator_cache is not None \
            else BoundedCache(_CACHE_SIZE)

    # ------------------------------------------------------------------ transforms

    def _output_shape(self, x: torch.Tensor,
                      output_shape: Sequence[int] | None) -> tuple[int, int]:
        if output_shape is None:
            return int(x.shape[-2]), int(x.shape[-1])
        out = tuple(output_shape)
        if len(out) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1
                                for s in out):
            raise ValueError(f"output_shape must be two positive ints (nlat, nlon), got "
                             f"{output_shape!r}")
        if self.out_grid == "equiangular" and out[0] < 2:
            raise ValueError(f"an equiangular output grid needs nlat >= 2, got {out}")
        return out

    def transforms(
        self, in_shape: Sequence[int], out_shape: Sequence[int], dtype: torch.dtype,
        device: torch.device,
    ) -> tuple[nn.Module, nn.Module, int, int]:
        """Forward and inverse transforms for the given grids, and the kept ``(L, M)``."""
        key = (tuple(in_shape), tuple(out_shape), dtype, str(device))
        return self.transform_cache.get_or_build(
            key, lambda: self._build_transforms(in_shape, out_shape, dtype, device))

    def _build_transforms(self, in_shape: Sequence[int], out_shape: Sequence[int],
                          dtype: torch.dtype, device: torch.device
                          ) -> tuple[nn.Module, nn.Module, int, int]:
        (nlat_in, nlon_in), (nlat_out, nlon_out) = in_shape, out_shape
        degrees = min(self.lmax, sht_degree_limit(nlat_in, nlon_in),
                      sht_degree_limit(nlat_out, nlon_out))
        sht = RealSHT(nlat_in, nlon_in, lmax=degrees, mmax=degrees, grid=self.grid,
                      norm="ortho", csphase=True)
        isht = InverseRealSHT(nlat_out, nlon_out, lmax=degrees, mmax=degrees, grid=self.out_grid,
                              norm="ortho", csphase=True)
        sht, isht = sht.to(device=device, dtype=dtype), isht.to(device=device, dtype=dtype)
        degrees = min(degrees, int(sht.lmax), int(isht.lmax))
        orders = min(self.mmax, degrees, int(sht.mmax), int(isht.mmax))
        release_torch_harmonics_tables()  # the modules hold their own copies
        return sht, isht, degrees, orders

    def _analysis(self, x: torch.Tensor, out_shape: tuple[int, int]):
        work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        sht, isht, degrees, orders = self.transforms(
            tuple(x.shape[2:]), out_shape, work.dtype, work.device
        )
        coeffs = sht(work)[..., :degrees, :orders]  # [B, C, L, M] complex
        return coeffs, isht, degrees, orders

    @staticmethod
    def _synthesis(coeffs: torch.Tensor, isht: nn.Module) -> torch.Tensor:
        pad_l = int(isht.lmax) - coeffs.shape[-2]
        pad_m = int(isht.mmax) - coeffs.shape[-1]
        if pad_l or pad_m:
            coeffs = torch.view_as_complex(torch.nn.functional.pad(
                torch.view_as_real(coeffs), (0, 0, 0, pad_m, 0, pad_l)).contiguous())
        return isht(coeffs)

    # ------------------------------------------------------------------ operator

    def spectral_weight(self, degrees: int, orders: int) -> torch.Tensor:
        """The weight restricted to ``l < degrees`` (and ``m < orders``), complex if complex."""
        if isinstance(self.weight, FactorizedTensor):
            w = self.weight.to_tensor()
            return w[:, :, :degrees, :orders] if self.operator_type == "diagonal" \
                else w[:, :, :degrees]
        if self.operator_type == "driscoll-healy":
            return self.weight[..., :degrees]
        if self.operator_type == "driscoll-healy-complex":
            return torch.view_as_complex(self.weight[:, :, :degrees].contiguous())
        return torch.view_as_complex(self.weight[:, :, :degrees, :orders].contiguous())

    def transform(self, x: torch.Tensor, output_shape: Sequence[int] | None = None) -> torch.Tensor:
        """Band-limited resampling of ``x [B, C, nlat, nlon]`` onto the output grid.

        Identity when the output grid equals the input grid; otherwise
        ``ISHT_out(SHT_in(x))`` truncated to the layer's degrees (used for skip
        connections of blocks that change grids).
        """
        out_shape = self._output_shape(x, output_shape)
        if self.grid == self.out_grid and out_shape == tuple(x.shape[-2:]):
            return x
        dtype = x.dtype
        work = x.float() if dtype in (torch.float16, torch.bfloat16) else x
        b, c = work.shape[:2]
        coeffs, synthesis, _, _ = self._coefficients(work, out_shape)  # [M, L, B * C * 2]
        return self._fields(coeffs.transpose(1, 2), synthesis, b, c, out_shape).to(dtype)

    @staticmethod
    def _spectrum(x: torch.Tensor, orders: int) -> torch.Tensor:
        """Longitude FFT of ``x [B, C, K, nlon]``, orders ``m < M``, as ``[M, K, B * C * 2]``
        real."""
        b, c, k = x.shape[:3]
        spec = torch.view_as_real(torch.fft.rfft(x, dim=-1, norm="forward")[..., :orders])
        return spec.permute(3, 2, 0, 1, 4).reshape(orders, k, b * c * 2)

    @staticmethod
    def _fields(coeffs: torch.Tensor, synthesis: torch.Tensor, b: int, c: int,
                out_shape: tuple[int, int]) -> torch.Tensor:
        """The fields ``[B, C, *out_shape]`` of coefficients ``[M, B * C * 2, L]``."""
        m = coeffs.shape[0]
        k_out, nlon_out = out_shape
        fields = torch.bmm(coeffs, synthesis)  # [M, B * C * 2, K]
        fields = fields.view(m, b, c, 2, k_out).permute(1, 2, 4, 0, 3)  # [B, C, K, M, 2]
        half = nlon_out // 2 + 1
        if half > m:
            fields = nn.functional.pad(fields, (0, 0, 0, half - m))
        return torch.fft.irfft(torch.view_as_complex(fields.contiguous()), n=nlon_out, dim=-1,
                               norm="forward")

    def operator_shape(self, in_shape: Sequence[int], out_shape: Sequence[int]
                       ) -> tuple[int, int]:
        """The kept ``(L, M)`` for the given input and output grids."""
        degrees = min(self.lmax, sht_degree_limit(*in_shape), sht_degree_limit(*out_shape))
        return degrees, min(self.mmax, degrees)

    def grid_legendre(self, grid: str, nlat: int, degrees: int, orders: int,
                      dtype: torch.dtype, device: torch.device
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """One grid's Legendre table ``[M, L, nlat]`` and quadrature weights ``[nlat]``.

        Kept in :attr:`operator_cache` under the grid alone, so that the analysis of
        one layer and the synthesis of another on the same grid share one table (see
        :func:`~geo_neuralop.geometry.legendre.sphere_grid_legendre`).
        """
        key = ("legendre", grid, int(nlat), int(degrees), int(orders), dtype, str(device))
        return self.operator_cache.get_or_build(
            key, lambda: sphere_grid_legendre(nlat, grid, orders, degrees, dtype=dtype,
                                              device=device))

    def legendre_operators(self, in_shape: Sequence[int], out_shape: Sequence[int],
                           dtype: torch.dtype, device: torch.device
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int]:
        """The Legendre halves of the transforms, in the layout of the fast path.

        Returns
        -------
        analysis : torch.Tensor, shape [M, L, nlat_in]
            The Legendre functions on the input grid.
        weights : torch.Tensor, shape [nlat_in]
            The input grid's quadrature weights times ``2 pi``: the forward transform is
            ``analysis @ (weights * f_m)`` (torch-harmonics' ``RealSHT`` keeps the product
            as one table; kept apart, one table per grid serves both directions).
        synthesis : torch.Tensor, shape [M, L, nlat_out]
            The Legendre functions of the inverse transform.
        degrees, orders : int
            ``L`` and ``M``.
        """
        degrees, orders = self.operator_shape(in_shape, out_shape)
        analysis, weights = self.grid_legendre(self.grid, in_shape[0], degrees, orders, dtype,
                                               device)
        synthesis, _ = self.grid_legendre(self.out_grid, out_shape[0], degrees, orders, dtype,
                                          device)
        return analysis, weights, synthesis, degrees, orders

    def _coefficients(self, x: torch.Tensor, out_shape: tuple[int, int]):
        """Spherical harmonic coefficients ``[M, L, B * C * 2]`` of ``x [B, C, nlat, nlon]``
        and the operators of the inverse transform."""
        analysis, weights, synthesis, degrees, orders = self.legendre_operators(
            tuple(x.shape[2:]), out_shape, x.dtype, x.device)
        spec = self._spectrum(x, orders) * weights[:, None]  # [M, K, B * C * 2]
        return torch.bmm(analysis, spec), synthesis, degrees, orders

    def _check_x(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must have shape [B, {self.in_channels}, nlat, nlon], got {tuple(x.shape)}"
            )
        if self.grid == "equiangular" and x.shape[2] < 2:
            raise ValueError(f"an equiangular input grid needs nlat >= 2, got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor, output_shape: Sequence[int] | None = None) -> torch.Tensor:
        """Apply the spherical convolution.

        The fast path: longitude FFT, the Legendre sums and the channel mixing as three
        batched matrix products (over orders, degrees, orders) with one layout change
        between each, then the inverse FFT. :meth:`forward_reference` computes the same
        with torch-harmonics' transforms and ``einsum``.

        Parameters
        ----------
        x : torch.Tensor, shape [B, C_in, nlat, nlon]
            Samples on the input grid (``grid`` latitudes, longitudes ``2 pi j / nlon``).
        output_shape : (int, int), optional
            ``(nlat, nlon)`` of the output grid (``out_grid`` latitudes); default
            the input's shape.

        Returns
        -------
        torch.Tensor, shape [B, C_out, *output_shape]
        """
        self._check_x(x)
        out_shape = self._output_shape(x, output_shape)
        dtype = x.dtype
        work = x.float() if dtype in (torch.float16, torch.bfloat16) else x
        # longitude FFT, orders m < M, then the Legendre sums: [M, L, B * I * 2] real
        coeffs, synthesis, degrees, orders = self._coefficients(work, out_shape)
        b, i, o, m = work.shape[0], self.in_channels, self.out_channels, orders
        mixed = self._mix(coeffs.view(m, degrees, b, i, 2), degrees, orders)  # [M, B, O, 2, L]
        y = self._fields(mixed.reshape(m, b * o * 2, degrees), synthesis, b, o, out_shape)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.to(dtype)

    def _mix(self, coeffs: torch.Tensor, degrees: int, orders: int) -> torch.Tensor:
        """Channel mixing of coefficients ``[M, L, B, I, 2]`` -> ``[M, B, O, 2, L]``."""
        m, l_, b, i, _ = coeffs.shape
        o = self.out_channels
        weight = self.spectral_weight(degrees, orders)
        if self.operator_type == "driscoll-healy":  # real weight per degree
            flat = coeffs.permute(1, 0, 2, 4, 3).reshape(l_, m * b * 2, i)
            w = weight.permute(2, 0, 1).to(flat.dtype).contiguous()  # [L, I, O]
            out = torch.bmm(flat, w).view(l_, m, b, 2, o)
            return out.permute(1, 2, 4, 3, 0)
        if self.operator_type == "driscoll-healy-complex":
            flat = torch.view_as_complex(coeffs.permute(1, 0, 2, 3, 4).contiguous())
            w = weight.permute(2, 0, 1).to(flat.dtype).contiguous()  # [L, I, O]
            out = complex_bmm(flat.view(l_, m * b, i), w)  # [L, M * B, O]
            return torch.view_as_real(out).view(l_, m, b, o, 2).permute(1, 2, 3, 4, 0)
        flat = torch.view_as_complex(coeffs.contiguous()).view(m * l_, b, i)
        w = weight.permute(3, 2, 0, 1).to(flat.dtype).reshape(m * l_, i, o).contiguous()
        out = complex_bmm(flat, w)  # [M * L, B, O]
        return torch.view_as_real(out).view(m, l_, b, o, 2).permute(0, 2, 3, 4, 1)

    def forward_reference(self, x: torch.Tensor,
                          output_shape: Sequence[int] | None = None) -> torch.Tensor:
        """:meth:`forward` through torch-harmonics' ``RealSHT`` / ``InverseRealSHT`` and
        ``einsum`` (the plain path the fast one is tested against)."""
        self._check_x(x)
        out_shape = self._output_shape(x, output_shape)
        dtype = x.dtype
        coeffs, isht, degrees, orders = self._analysis(x, out_shape)
        weight = self.spectral_weight(degrees, orders)
        if self.operator_type == "driscoll-healy":
            out = torch.einsum("bilmr,iol->bolmr", torch.view_as_real(coeffs),
                               weight.to(coeffs.real.dtype))
            out = torch.view_as_complex(out.contiguous())
        elif self.operator_type == "driscoll-healy-complex":
            out = torch.einsum("bilm,iol->bolm", coeffs, weight.to(coeffs.dtype))
        else:
            out = torch.einsum("bilm,iolm->bolm", coeffs, weight.to(coeffs.dtype))
        y = self._synthesis(out, isht)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.to(dtype)

    def extra_repr(self) -> str:
        extra = "" if self.factorization is None else \
            f", factorization={self.factorization!r}, rank={self.weight.rank}"
        return (f"{self.in_channels}, {self.out_channels}, lmax={self.lmax}, mmax={self.mmax}, "
                f"grid={self.grid!r}, out_grid={self.out_grid!r}, "
                f"operator_type={self.operator_type!r}, bias={self.bias is not None}{extra}")
