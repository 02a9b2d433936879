"""``SpectralConv``: the Fourier neural operator's global convolution on periodic regular grids.

Coefficients use ``norm="forward"`` and integer frequencies (cycles per domain), so
one weight tensor is the same continuous operator at every resolution;
``n_modes[d] = m`` keeps ``|k_d| <= m // 2`` (a set symmetric under ``k -> -k``), and
kept Nyquist bins are split between ``+n/2`` and ``-n/2``. The conventions, the
symmetric-block layout of :func:`spectral_crop` / :func:`spectral_pad`, and the
comparison with neuraloperator are in ``docs/design/spectral_conv.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from geo_neuralop.layers.factorized_tensors import FactorizedTensor, factorized_tensor
from geo_neuralop.utils.checks import as_tuple

__all__ = [
    "BASES",
    "FourierConvBase",
    "SpectralConv",
    "complex_bmm",
    "contract_channels",
    "kept_frequencies",
    "resample_periodic",
    "spectral_crop",
    "spectral_pad",
    "symmetric_frequencies",
]


def kept_frequencies(
    max_freq: Sequence[int | None], in_sizes: Sequence[int], out_sizes: Sequence[int]
) -> tuple[int, ...]:
    """Highest kept integer frequency per axis.

    Parameters
    ----------
    max_freq : sequence of (int or None)
        The layer's limit ``K_d`` per axis (``None``: no limit).
    in_sizes, out_sizes : sequence of int
        Grid points per axis of the input and of the output.

    Returns
    -------
    tuple of int
        ``k_d = min(K_d, n_in_d // 2, n_out_d // 2)``: the largest frequency both
        grids represent (``n/2`` on an even grid is its Nyquist bin).
    """
    out = []
    for limit, n_in, n_out in zip(max_freq, in_sizes, out_sizes, strict=True):
        k = min(n_in // 2, n_out // 2)
        out.append(k if limit is None else min(k, limit))
    return tuple(out)


def symmetric_frequencies(
    kept: Sequence[int], device: torch.device | None = None, dtype: torch.dtype | None = None
) -> list[torch.Tensor]:
    """Integer frequencies of a symmetric block, one 1-D tensor per axis.

    Full axes: ``[0, 1, ..., k, -k, ..., -1]``; last axis: ``[0, ..., k]``.
    """
    dtype = dtype or torch.get_default_dtype()
    freqs = []
    for k in kept[:-1]:
        pos = torch.arange(0, k + 1, device=device, dtype=dtype)
        freqs.append(torch.cat([pos, torch.arange(-k, 0, device=device, dtype=dtype)]))
    freqs.append(torch.arange(0, kept[-1] + 1, device=device, dtype=dtype))
    return freqs


def _axis_scale(length: int, positions: Sequence[int], value: float, dim: int, ndim: int,
                like: torch.Tensor) -> torch.Tensor:
    scale = torch.ones(length, dtype=like.real.dtype, device=like.device)
    scale[list(positions)] = value
    shape = [1] * ndim
    shape[dim] = length
    return scale.view(shape)


def spectral_crop(x_hat: torch.Tensor, kept: Sequence[int], sizes: Sequence[int]) -> torch.Tensor:
    """Symmetric block of kept frequencies from an ``rfftn`` result.

    Parameters
    ----------
    x_hat : torch.Tensor, complex, shape [..., n_1, ..., n_{d-1}, n_d // 2 + 1]
        ``torch.fft.rfftn`` over the last ``d`` axes of a real grid function.
    kept : sequence of int
        Highest kept frequency per axis (at most ``n_d // 2``).
    sizes : sequence of int
        The grid sizes ``n_1 .. n_d``.

    Returns
    -------
    torch.Tensor, shape [..., 2 k_1 + 1, ..., 2 k_{d-1} + 1, k_d + 1]
        A kept Nyquist bin (``n = 2k``) is split evenly between ``+k`` and ``-k``.
    """
    d = len(kept)
    ndim = x_hat.dim()
    for axis in range(d - 1):
        k, n = kept[axis], sizes[axis]
        dim = ndim - d + axis
        if 2 * k < n:
            if 2 * k + 1 < n:
                x_hat = torch.cat([x_hat.narrow(dim, 0, k + 1), x_hat.narrow(dim, n - k, k)], dim)
        else:  # n == 2k: the Nyquist bin k is frequency +k and -k at once
            x_hat = torch.cat([x_hat.narrow(dim, 0, k + 1), x_hat.narrow(dim, k, k)], dim)
            x_hat = x_hat * _axis_scale(2 * k + 1, (k, k + 1), 0.5, dim, ndim, x_hat)
    k, n = kept[-1], sizes[-1]
    if k + 1 < x_hat.shape[-1]:
        x_hat = x_hat[..., : k + 1]
    if 2 * k == n and k > 0:
        x_hat = x_hat * _axis_scale(k + 1, (k,), 0.5, ndim - 1, ndim, x_hat)
    return x_hat


def spectral_pad(y: torch.Tensor, kept: Sequence[int], sizes: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`spectral_crop`: a symmetric block into an ``rfftn`` layout.

    Parameters
    ----------
    y : torch.Tensor, complex, shape [..., 2 k_1 + 1, ..., k_d + 1]
    kept : sequence of int
    sizes : sequence of int
        Output grid sizes ``n_1 .. n_d``.

    Returns
    -------
    torch.Tensor, shape [..., n_1, ..., n_{d-1}, n_d // 2 + 1]
        Ready for ``torch.fft.irfftn(..., s=sizes, norm="forward")``. At an output
        Nyquist bin (``n = 2k``) the ``+k`` and ``-k`` values are summed (on the
        last axis the missing ``-k`` half is the conjugate partner, so the bin is
        doubled), which samples the continuous output exactly.
    """
    d = len(kept)
    ndim = y.dim()
    for axis in range(d - 1):
        k, n = kept[axis], sizes[axis]
        dim = ndim - d + axis
        if 2 * k < n:
            if 2 * k + 1 < n:
                shape = list(y.shape)
                shape[dim] = n - 2 * k - 1
                y = torch.cat([y.narrow(dim, 0, k + 1), y.new_zeros(shape),
                               y.narrow(dim, k + 1, k)], dim)
        else:  # n == 2k
            nyquist = y.narrow(dim, k, 1) + y.narrow(dim, k + 1, 1)
            y = torch.cat([y.narrow(dim, 0, k), nyquist, y.narrow(dim, k + 2, k - 1)], dim)
    k, n = kept[-1], sizes[-1]
    if 2 * k == n and k > 0:
        y = y * _axis_scale(k + 1, (k,), 2.0, ndim - 1, ndim, y)
    half = n // 2 + 1
    if k + 1 < half:
        shape = list(y.shape)
        shape[-1] = half - k - 1
        y = torch.cat([y, y.new_zeros(shape)], -1)
    return y


def resample_periodic(x: torch.Tensor, output_shape: Sequence[int]) -> torch.Tensor:
    """Band-limited (Fourier) resampling of a periodic grid function.

    Parameters
    ----------
    x : torch.Tensor, shape [B, C, n_1, ..., n_d]
    output_shape : sequence of int, length d

    Returns
    -------
    torch.Tensor, shape [B, C, *output_shape]
        The trigonometric interpolant of ``x`` (truncated to the frequencies the
        output grid holds) sampled on the output grid. Identity if the shapes agree.
    """
    output_shape = tuple(int(s) for s in output_shape)
    in_shape = tuple(x.shape[2:])
    if len(output_shape) != len(in_shape):
        raise ValueError(
            f"output_shape {output_shape} must have {len(in_shape)} entries for an input of "
            f"shape {tuple(x.shape)}"
        )
    if output_shape == in_shape:
        return x
    d = len(in_shape)
    dims = tuple(range(-d, 0))
    kept = kept_frequencies([None] * d, in_shape, output_shape)
    x_hat = spectral_crop(torch.fft.rfftn(x, dim=dims, norm="forward"), kept, in_shape)
    return torch.fft.irfftn(spectral_pad(x_hat, kept, output_shape), s=output_shape, dim=dims,
                            norm="forward")


class _BatchedComplexMatmul(torch.autograd.Function):
    """``bmm(x, w)`` whose backward multiplies contiguous conjugate transposes.

    PyTorch's own backward hands conjugated, transposed views to ``bmm``, which on
    CPU falls back to one small product per frequency (slower, see benchmarks/README.md).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        return torch.bmm(x, w)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, w = ctx.saved_tensors
        grad = grad.contiguous()
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.bmm(grad, w.conj().transpose(1, 2).contiguous())
        if ctx.needs_input_grad[1]:
            grad_w = torch.bmm(x.conj().transpose(1, 2).contiguous(), grad)
        return grad_x, grad_w


def complex_bmm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``torch.bmm(x, w)`` for complex ``x [F, N, I]`` and ``w [F, I, O]``, with a fast backward.

    The backward multiplies contiguous conjugate transposes (PyTorch's own hands
    conjugated views to ``bmm``, which on CPU runs one small product per batch entry).
    Real tensors go straight to ``torch.bmm``.
    """
    if not x.is_complex():
        return torch.bmm(x, w)
    return _BatchedComplexMatmul.apply(x, w)


def contract_channels(x_hat: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``y[b, o, k] = sum_i x[b, i, k] w[k, i, o]`` as one batched complex matmul over frequencies.

    Parameters
    ----------
    x_hat : torch.Tensor, complex, shape [B, C_in, *S]
    weight : torch.Tensor, complex, shape [*S, C_in, C_out]

    Returns
    -------
    torch.Tensor, complex, shape [B, C_out, *S]
    """
    b, i, *spatial = x_hat.shape
    o = weight.shape[-1]
    xf = x_hat.reshape(b, i, -1).permute(2, 0, 1).contiguous()  # [F, B, I]
    y = _BatchedComplexMatmul.apply(xf, weight.reshape(-1, i, o).contiguous())  # [F, B, O]
    return y.permute(1, 2, 0).reshape(b, o, *spatial)


class FourierConvBase(nn.Module):
    """Shared forward pass of Fourier-space convolutions on periodic grids.

    Subclasses implement :meth:`spectral_weight`, returning the complex
    multipliers on a symmetric block of kept frequencies. The forward pass is
    ``rfftn -> crop -> contract channels -> pad -> irfftn (+ bias)``, with no
    Python loop over modes.

    Parameters
    ----------
    in_channels, out_channels : int
    n_dim : int
        Number of spatial axes (1, 2 or 3).
    max_freq : sequence of (int or None)
        Highest frequency kept per axis (``None``: all the grid holds).
    bias : bool
        Add a learned constant per output channel (in physical space).
    """

    #: ``forward`` takes ``spectrum_terms`` (Fourier multipliers sharing its FFTs).
    accepts_spectrum_terms = True

    def __init__(self, in_channels: int, out_channels: int, n_dim: int,
                 max_freq: Sequence[int | None], bias: bool = True) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if isinstance(n_dim, bool) or not isinstance(n_dim, int) or n_dim not in (1, 2, 3):
            raise ValueError(f"n_dim must be 1, 2 or 3, got {n_dim!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.n_dim = n_dim
        self.max_freq = tuple(max_freq)
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_channels, *([1] * n_dim)))
        else:
            self.register_parameter("bias", None)

    def spectral_weight(self, kept: Sequence[int]) -> torch.Tensor:
        """Complex multipliers ``[2 k_1 + 1, ..., k_d + 1, C_in, C_out]`` (FFT order).

        Frequency-major, so the channel contraction is one batched complex matrix
        product over frequencies.
        """
        raise NotImplementedError

    def contract(self, x_hat: torch.Tensor, kept: Sequence[int]) -> torch.Tensor:
        """The output spectrum on the kept block: ``W(k) . x_hat(k)`` by default.

        ``x_hat [B, C_in, 2k_1 + 1, ..., k_d + 1]`` (FFT order) -> ``[B, C_out, ...]``.
        """
        return contract_channels(x_hat, self.spectral_weight(kept).to(x_hat.dtype))

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != self.n_dim + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must have shape [B, {self.in_channels}, *{self.n_dim} spatial axes], "
                f"got {tuple(x.shape)}"
            )

    def _output_shape(self, x: torch.Tensor,
                      output_shape: Sequence[int] | None) -> tuple[int, ...]:
        if output_shape is None:
            return tuple(x.shape[2:])
        out = as_tuple(output_shape, "output_shape")
        if len(out) != self.n_dim or min(out) < 1:
            raise ValueError(
                f"output_shape must hold {self.n_dim} positive sizes, got {output_shape!r}"
            )
        return out

    def transform(self, x: torch.Tensor, output_shape: Sequence[int] | None = None) -> torch.Tensor:
        """Resample ``x [B, C, *spatial]`` to the layer's output grid (for skip connections)."""
        if output_shape is None:
            return x
        return resample_periodic(x, self._output_shape(x, output_shape))

    def forward(self, x: torch.Tensor, output_shape: Sequence[int] | None = None,
                spectrum_terms: Sequence[Callable[[torch.Tensor], torch.Tensor]] | None = None,
                ) -> torch.Tensor:
        """Apply the convolution.

        Parameters
        ----------
        x : torch.Tensor, shape [B, C_in, n_1, ..., n_d]
            Samples on a regular grid of the periodic domain (any resolution).
        output_shape : sequence of int, optional
            Grid of the output (default: the input grid); the result is the
            continuous output sampled there.
        spectrum_terms : sequence of callables, optional
            Further Fourier multipliers sharing this layer's two FFTs (e.g.
            :meth:`~geo_neuralop.layers.GridDiscoConv.fourier_term`):
            each maps the full ``rfftn(x, norm="forward")`` ``[B, C_in, n_1, ...,
            n_d // 2 + 1]`` to a spectrum of the same grid with ``C_out``
            channels, added before the inverse FFT. Needs ``output_shape`` equal
            to the input grid.

        Returns
        -------
        torch.Tensor, shape [B, C_out, *output_shape]
        """
        self._check_input(x)
        in_shape = tuple(x.shape[2:])
        out_shape = self._output_shape(x, output_shape)
        dtype = x.dtype
        if dtype in (torch.float16, torch.bfloat16):
            x = x.float()  # FFTs of arbitrary sizes need single precision
        dims = tuple(range(-self.n_dim, 0))
        if spectrum_terms and out_shape != in_shape:
            raise ValueError(f"spectrum_terms need the output grid to equal the input grid "
                             f"{in_shape}, got output_shape {out_shape}")
        kept = kept_frequencies(self.max_freq, in_shape, out_shape)
        x_full = torch.fft.rfftn(x, dim=dims, norm="forward")
        x_hat = spectral_crop(x_full, kept, in_shape)
        y_hat = spectral_pad(self.contract(x_hat, kept), kept, out_shape)
        for i, term in enumerate(spectrum_terms or ()):
            extra = term(x_full)
            expected = (x.shape[0], self.out_channels, *x_full.shape[2:])
            if tuple(extra.shape) != expected:
                raise ValueError(f"spectrum_terms[{i}] returned shape {tuple(extra.shape)}, "
                                 f"expected {expected}")
            y_hat = y_hat + extra
        y = torch.fft.irfftn(y_hat, s=out_shape, dim=dims, norm="forward")
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.to(dtype)


BASES = ("fourier", "hartley")


class SpectralConv(FourierConvBase):
    """Fourier neural operator convolution with a weight per kept frequency.

    ``y = irfftn(W(k) . rfftn(x))`` on the frequencies ``|k_d| <= n_modes[d] // 2``
    (see the module docstring for the Fourier and Nyquist conventions). Works
    on any grid resolution: modes beyond what a grid holds are skipped.

    Tensorized (TFNO, Kossaifi et al.): with ``factorization`` the weight
    ``[C_in, C_out, *modes]`` is stored as a CP, Tucker or tensor-train tensor of the
    given ``rank`` (:mod:`~geo_neuralop.layers.factorized_tensors`) and rebuilt at each
    call; the layout is neuraloperator's, so its TFNO factors copy over.

    Hartley (``basis="hartley"``, the Hartley neural operator of Sulskis and Ravi, "Real
    vs. Complex Spectral Bases for Neural Operators"): one *real* multiplier per kept
    frequency of the discrete Hartley transform ``H x(k) = sum_n x(n) cas(2 pi k.n / N) / N``
    (``cas = cos + sin``), ``y = H^-1 (W . H x)``, on the same set ``|k_d| <= m_d // 2`` (both
    signs on every axis, so the weight ``[C_in, C_out, 2K_1 + 1, ..., 2K_d + 1]`` has about as
    many real numbers as the complex Fourier one). In Fourier terms the Hartley product
    is ``Y(k) = W_e(k) X(k) - i W_o(k) X(-k)`` with ``W_e``, ``W_o`` the even and odd parts
    of ``W``: a convolution with the even kernel plus one with the reflected input, so
    the layer commutes with translations exactly when ``W`` is even (then it is the
    Fourier layer with a real symmetric kernel). It runs on the same real FFTs.

    Parameters
    ----------
    in_channels, out_channels : int
    n_modes : int or sequence of int
        ``m`` per spatial axis (1, 2 or 3 axes); keeps ``|k| <= m // 2``, so the
        Fourier weight has ``2 (m // 2) + 1`` entries on the full axes and ``m // 2 + 1``
        on the last.
    bias : bool
        Learned constant per output channel.
    init_std : float or "auto"
        Standard deviation of the weights (``|w|``); "auto" is
        ``sqrt(2 / (in_channels + out_channels))``, as in neuraloperator.
    factorization : {"cp", "tucker", "tt", "dense"} or None
        Store the weight factorized (None: the plain dense parameter below).
    rank : int, float or sequence of int
        Rank of the factorization (a float in (0, 1] is the fraction of the dense
        parameter count kept; see :func:`~geo_neuralop.layers.factorized_tensors.resolve_rank`).
    basis : {"fourier", "hartley"}

    Attributes
    ----------
    weight : nn.Parameter or FactorizedTensor
        Fourier, unfactorized: ``[2K_1 + 1, ..., K_d + 1, C_in, C_out, 2]`` (real and
        imaginary parts; frequencies in FFT order ``0..K, -K..-1``); Hartley, unfactorized:
        ``[2K_1 + 1, ..., 2K_d + 1, C_in, C_out]`` (real). Factorized: a
        :class:`~geo_neuralop.layers.factorized_tensors.FactorizedTensor` of shape
        ``[C_in, C_out, 2K_1 + 1, ..., K_d + 1]`` (complex; Fourier) or ``[C_in, C_out,
        2K_1 + 1, ..., 2K_d + 1]`` (real; Hartley), FFT order.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.layers import SpectralConv
    >>> conv = SpectralConv(3, 8, n_modes=(12, 12))
    >>> conv(torch.randn(2, 3, 32, 40)).shape
    torch.Size([2, 8, 32, 40])
    >>> conv(torch.randn(2, 3, 16, 16), output_shape=(64, 64)).shape  # super-resolved output
    torch.Size([2, 8, 64, 64])
    >>> tucker = SpectralConv(32, 32, n_modes=(16, 16), factorization="tucker", rank=0.1)
    >>> round(tucker.count_parameters() / SpectralConv(32, 32, (16, 16)).count_parameters(), 2)
    0.09
    >>> hartley = SpectralConv(3, 8, n_modes=(12, 12), basis="hartley")
    >>> hartley(torch.randn(2, 3, 32, 40)).shape, hartley.weight.dtype  # real multipliers
    (torch.Size([2, 8, 32, 40]), torch.float32)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_modes: int | Sequence[int],
        bias: bool = True,
        init_std: float | str = "auto",
        factorization: str | None = None,
        rank: float | int | Sequence[int] = 1.0,
        basis: str = "fourier",
    ) -> None:
        modes = as_tuple(n_modes, "n_modes")
        if not 1 <= len(modes) <= 3:
            raise ValueError(f"n_modes must have 1 to 3 entries, got {n_modes!r}")
        for i, m in enumerate(modes):
            if m < 1:
                raise ValueError(f"n_modes[{i}] must be positive, got {m}")
        if basis not in BASES:
            raise ValueError(f"basis must be one of {BASES}, got {basis!r}")
        super().__init__(in_channels, out_channels, len(modes), [m // 2 for m in modes], bias)
        self.n_modes = modes
        self.basis = basis
        self.factorization = factorization
        if init_std == "auto":
            init_std = math.sqrt(2.0 / (in_channels + out_channels))
        elif isinstance(init_std, bool) or not isinstance(init_std, (int, float)) or init_std <= 0:
            raise ValueError(f"init_std must be a positive number or 'auto', got {init_std!r}")
        full = [2 * (m // 2) + 1 for m in modes]
        sizes = full[:-1] + [modes[-1] // 2 + 1]
        if basis == "fourier" and factorization is None:
            self.weight = nn.Parameter(
                torch.randn(*sizes, in_channels, out_channels, 2)
                * (float(init_std) / math.sqrt(2.0))
            )
        elif factorization is None:  # Hartley, frequency-major like the Fourier weight
            self.weight = nn.Parameter(
                torch.randn(*full, in_channels, out_channels) * float(init_std))
        else:
            shape = (in_channels, out_channels, *(full if basis == "hartley" else sizes))
            self.weight = factorized_tensor(shape, factorization, rank,
                                            complex_valued=basis == "fourier",
                                            init_std=float(init_std))

    def count_parameters(self) -> int:
        """Real scalars of the spectral weight (a complex number counts twice)."""
        if isinstance(self.weight, FactorizedTensor):
            return sum(p.numel() for p in self.weight.parameters())
        return self.weight.numel()

    def hartley_weight(self) -> torch.Tensor:
        """The real Hartley multipliers, frequency-major ``[2K_1 + 1, ..., 2K_d + 1, C_in, C_out]``
        (FFT order on every axis)."""
        if self.basis != "hartley":
            raise ValueError(f"hartley_weight needs basis='hartley', got {self.basis!r}")
        if isinstance(self.weight, FactorizedTensor):
            return self._dense()
        return self.weight

    def _crop(self, w: torch.Tensor, kept: Sequence[int], first: int = 0) -> torch.Tensor:
        """``w`` (frequency axes ``first .. first + d - 1``: ``2K_1 + 1, ..., K_d + 1``)
        restricted to the kept block."""
        for axis, (k, big_k) in enumerate(zip(kept[:-1], self.max_freq[:-1], strict=True)):
            dim = first + axis
            if k < big_k:
                w = torch.cat([w.narrow(dim, 0, k + 1), w.narrow(dim, 2 * big_k + 1 - k, k)], dim)
        last = first + self.n_dim - 1
        if kept[-1] < self.max_freq[-1]:
            w = w.narrow(last, 0, kept[-1] + 1)
        return w

    def _dense(self) -> torch.Tensor:
        """The factorized weight, frequency-major ``[*modes, C_in, C_out]``."""
        w = self.weight.to_tensor()  # type: ignore[operator]
        return w.permute(*range(2, self.n_dim + 2), 0, 1)

    def spectral_weight(self, kept: Sequence[int]) -> torch.Tensor:
        if self.basis == "hartley":
            even, odd = self.hartley_parts(kept)
            return torch.complex(even, -odd)  # the multiplier seen by symmetric-kernel inputs
        if isinstance(self.weight, FactorizedTensor):
            return self._crop(self._dense(), kept)
        return self._crop(torch.view_as_complex(self.weight), kept)

    def hartley_parts(self, kept: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Even and odd parts ``(W(k) + W(-k)) / 2``, ``(W(k) - W(-k)) / 2`` of the Hartley
        weight on the kept half block, ``[2k_1 + 1, ..., k_d + 1, C_in, C_out]`` (real)."""
        w = self.hartley_weight()  # [2K_1 + 1, ..., 2K_d + 1, I, O]
        d = self.n_dim
        full = w.shape[:d]
        half = self.max_freq[-1] + 1
        # rows (frequencies) of the half block and of their negatives, in the flattened grid
        grids = torch.meshgrid(*[torch.arange(n if a < d - 1 else half, device=w.device)
                                 for a, n in enumerate(full)], indexing="ij")
        pos = torch.zeros_like(grids[0])
        neg = torch.zeros_like(grids[0])
        for a, n in enumerate(full):
            pos = pos * n + grids[a]
            neg = neg * n + (-grids[a]) % n
        flat = w.reshape(-1, *w.shape[d:])
        w_half = flat.index_select(0, pos.reshape(-1))
        w_neg = flat.index_select(0, neg.reshape(-1))
        shape = (*full[:-1], half, *w.shape[d:])
        even = (0.5 * (w_half + w_neg)).reshape(shape)
        odd = (0.5 * (w_half - w_neg)).reshape(shape)
        return self._crop(even, kept), self._crop(odd, kept)

    def contract(self, x_hat: torch.Tensor, kept: Sequence[int]) -> torch.Tensor:
        if self.basis == "fourier":
            return super().contract(x_hat, kept)
        # Hartley: Y(k) = W_e(k) X(k) - i W_o(k) X(-k), and X(-k) = conj X(k) for real x, so
        # with X = R + i J: Re Y = R W_e - J W_o and Im Y = J W_e - R W_o: one real product of
        # the interleaved (R, J) pairs with a [2 C_in, 2 C_out] weight per frequency (as many
        # real operations as the complex product of the Fourier layer)
        even, odd = self.hartley_parts(kept)  # [*S, I, O]
        b, i, *spatial = x_hat.shape
        o = self.out_channels
        xf = x_hat.reshape(b, i, -1).permute(2, 0, 1).contiguous()  # [F, B, I] complex
        xr = torch.view_as_real(xf).reshape(xf.shape[0], b, 2 * i)  # (R, J) interleaved
        even, odd = even.reshape(-1, i, o), odd.reshape(-1, i, o)
        weight = torch.stack([torch.stack([even, -odd], -1), torch.stack([-odd, even], -1)],
                             dim=2)  # [F, I, R|J, O, re|im]
        weight = weight.reshape(-1, 2 * i, 2 * o).to(xr.dtype)
        out = _BatchedComplexMatmul.apply(xr, weight).reshape(-1, b, o, 2)
        return torch.view_as_complex(out).permute(1, 2, 0).reshape(b, o, *spatial)

    def extra_repr(self) -> str:
        extra = "" if self.basis == "fourier" else f", basis={self.basis!r}"
        if self.factorization is not None:
            extra += f", factorization={self.factorization!r}, rank={self.weight.rank}"
        return (f"{self.in_channels}, {self.out_channels}, n_modes={self.n_modes}, "
                f"bias={self.bias is not None}{extra}")
