"""DISCO kernels on regular grids, applied through the FFT.

On a regular grid the DISCO sum ``y_i = sum_j psi_k(x_j - x_i) w_j v_j`` is a
correlation of ``w v`` with the stencil ``psi_k`` sampled at the grid offsets, so
it costs ``O(N log N)`` whatever the radius. Periodic axes correlate circularly;
bounded axes are zero-padded by the stencil's half width (the disk is truncated
at the boundary exactly as the sparse kernel truncates it). The normalizations
are those of :func:`~geo_neuralop.kernels.disco_kernel`, so the result equals
the sparse kernel on the same :func:`~geo_neuralop.geometry.regular_grid`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from geo_neuralop.geometry.grid_spec import GridSpec
from geo_neuralop.kernels.basis import FilterBasis
from geo_neuralop.kernels.disco import NORMALIZATIONS, normalization_divisor
from geo_neuralop.kernels.frames import local_polar

__all__ = ["GridDiscoKernel"]


class GridDiscoKernel:
    """A DISCO basis on one regular grid, in Fourier space, ready to apply to grid fields.

    Parameters
    ----------
    basis : FilterBasis
    radius : float
        Support radius, physical units of the grid's domain.
    grid : GridSpec
        The grid (shape, domain, periodic axes).
    normalization : {"none", "mean", "nodal"}
    dtype, device
        Of the stored spectra (real dtype; spectra are complex of matching precision).

    Notes
    -----
    :meth:`apply` is a whole DISCO layer ``x [B, C_in, *shape] -> [B, C_out, *shape]``
    given its weights; :meth:`responses` gives the basis responses
    ``[B, C, K, *shape]``; :meth:`spectrum` the layer as a Fourier multiplier that
    shares the FFTs of a spectral convolution.
    """

    def __init__(self, basis: FilterBasis, radius: float, grid: GridSpec,
                 normalization: str = "mean", dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> None:
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got "
                             f"{normalization!r}")
        if not isinstance(grid, GridSpec):
            raise TypeError(f"grid must be a GridSpec, got {type(grid).__name__}")
        self.grid = grid
        self.shape = grid.shape
        self.periodic = grid.periodic
        ndim = len(self.shape)
        spacing = grid.spacing
        half = [int(math.floor(radius / h + 1e-9)) for h in spacing]
        for axis, (n, p, m) in enumerate(zip(self.shape, self.periodic, half, strict=True)):
            if p and 2 * m + 1 > n:
                raise ValueError(f"radius {radius:g} spans more than the periodic axis {axis} "
                                 f"({n} points): the stencil would wrap onto itself")
        # FFT size per axis: periodic axes as they are; others padded so no wrap-around.
        self.fft_shape = tuple(n if p else n + m for n, p, m in
                               zip(self.shape, self.periodic, half, strict=True))
        offsets = np.stack(np.meshgrid(*[np.arange(-m, m + 1) for m in half], indexing="ij"),
                           -1).reshape(-1, ndim)
        physical = offsets * np.asarray(spacing)
        r, phi = local_polar(physical, np.zeros_like(physical), "euclidean")
        inside = r <= radius
        offsets, r, phi = offsets[inside], r[inside], phi[inside]
        psi = basis(torch.from_numpy(np.minimum(r / radius, 1.0)), torch.from_numpy(phi))
        k = psi.shape[1]
        stencil = torch.zeros(k, *self.fft_shape, dtype=torch.float64)
        index = tuple(torch.from_numpy(offsets[:, a] % self.fft_shape[a]) for a in range(ndim))
        for b in range(k):
            stencil[(b, *index)] = psi[:, b]
        dims = tuple(range(1, ndim + 1))
        spectrum = torch.fft.rfftn(stencil, dim=dims).conj()  # correlation
        weights = grid.weights(dtype=torch.float64)
        if normalization == "none":
            scale = torch.ones(k, *([1] * ndim), dtype=torch.float64)
        else:
            abs_spec = torch.fft.rfftn(stencil.abs(), dim=dims).conj()
            norms = self._correlate(weights[None], abs_spec, dims)[0]  # [K, *shape]
            scale = normalization_divisor(norms, float(weights.sum()), normalization, dims)
        self.normalization = normalization
        self.kernel_size = k
        self.stencil_spectrum = spectrum.to(device=device)
        self.weights = weights.to(dtype=dtype, device=device)
        # FFT round-off leaves ~1e-17 where a truncated basis function has no support: zero
        positive = scale > 1e-10 * scale.abs().max()
        self.inv_scale = torch.where(positive, 1.0 / scale, torch.zeros_like(scale)).to(
            dtype=dtype, device=device)
        self.dims = dims
        self._spectra: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = {}

    def spectra(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The stencil spectra ``[K, *fft]`` and their conjugates (materialized) in the
        complex ``dtype``, cached."""
        cached = self._spectra.get(dtype)
        if cached is None:
            spectrum = self.stencil_spectrum.to(dtype)
            cached = (spectrum, spectrum.conj().resolve_conj())
            self._spectra[dtype] = cached
        return cached

    def _correlate(self, field: torch.Tensor, spectrum: torch.Tensor, dims) -> torch.Tensor:
        """Correlate ``field [..., *shape]`` with stencils whose spectra are ``[K, *fft]``."""
        nd = len(self.shape)
        fdims = tuple(range(field.dim() - nd, field.dim()))
        f_hat = torch.fft.rfftn(field, s=self.fft_shape, dim=fdims)
        out = torch.fft.irfftn(f_hat.unsqueeze(-nd - 1) * spectrum, s=self.fft_shape,
                               dim=tuple(d + 1 for d in fdims))
        crop = (Ellipsis,) + tuple(slice(0, n) for n in self.shape)
        return out[crop]

    def responses(self, x: torch.Tensor) -> torch.Tensor:
        """Basis responses of ``x [B, C, *shape]``: ``[B, C, K, *shape]``."""
        if tuple(x.shape[2:]) != self.shape:
            raise ValueError(f"x has grid {tuple(x.shape[2:])}, the kernel was built for "
                             f"{self.shape}")
        spectrum, _ = self.spectra(torch.complex128 if x.dtype == torch.float64
                                   else torch.complex64)
        responses = self._correlate(x * self.weights.to(x.dtype), spectrum, self.dims)
        inv = self.inv_scale.to(x.dtype)
        return responses * inv

    def spectrum(self, x_hat: torch.Tensor, weight: torch.Tensor,
                 groups: int = 1) -> torch.Tensor:
        """The DISCO layer as a Fourier multiplier, to share the FFTs of a spectral convolution.

        On a fully periodic grid the quadrature weight ``w_0`` is the same at every
        point and the FFT size is the grid, so ``apply(x)`` (no bias) equals
        ``irfftn(spectrum(rfftn(x, norm="forward")), norm="forward")``.

        Parameters
        ----------
        x_hat : torch.Tensor, complex, shape [B, C_in, n_1, ..., n_d // 2 + 1]
            ``torch.fft.rfftn(x, norm="forward")`` over the grid axes.
        weight : torch.Tensor, shape [C_out, C_in / groups, K]
        groups : int

        Returns
        -------
        torch.Tensor, complex, shape [B, C_out, n_1, ..., n_d // 2 + 1]
        """
        if not self.fourier_multiplier:
            raise ValueError("a grid DISCO kernel is a Fourier multiplier only on a fully "
                             f"periodic grid with 'none' or 'mean' normalization, got "
                             f"periodic={self.periodic}, normalization={self.normalization!r}")
        rfft_shape = (*self.shape[:-1], self.shape[-1] // 2 + 1)
        if tuple(x_hat.shape[2:]) != rfft_shape or not x_hat.is_complex():
            raise ValueError(f"x_hat must be a complex rfftn of the kernel's grid {self.shape}, "
                             f"shape [B, C, *{rfft_shape}], got {tuple(x_hat.shape)} "
                             f"{x_hat.dtype}")
        if x_hat.shape[1] != weight.shape[1] * groups:
            raise ValueError(f"x_hat has {x_hat.shape[1]} channels, the weight expects "
                             f"{weight.shape[1] * groups}")
        w0 = float(self.weights.flatten()[0])
        return _basis_multipliers(x_hat, self, weight, groups, w0)

    @property
    def fourier_multiplier(self) -> bool:
        """Whether the layer is a Fourier multiplier on the grid (see :meth:`spectrum`)."""
        return all(self.periodic) and self.normalization != "nodal"

    def apply(self, x: torch.Tensor, weight: torch.Tensor, groups: int = 1,
              bias: torch.Tensor | None = None) -> torch.Tensor:
        """A DISCO layer on the grid: ``x [B, C_in, *shape] -> [B, C_out, *shape]``.

        ``weight [C_out, C_in / groups, K]`` and ``bias [C_out]``. With "none" or
        "mean" normalization (one scale per basis function) the layer is a sum of
        ``K`` Fourier multipliers with real channel-mixing matrices,
        ``y_hat(f) = sum_k psi_hat_k(f) W_k x_hat(f)``, evaluated as one real matrix
        product of ``[C_out K, C_in]`` with the spectrum of ``x`` and a
        multiply-and-sum over ``k``: two FFTs per channel and no complex
        per-frequency matrices. "nodal" scales vary in space and take the general
        path (``C_in K`` inverse FFTs).
        """
        b, c_in = x.shape[:2]
        c_out, per_group, k = weight.shape
        nd = len(self.shape)
        if c_in != per_group * groups:
            raise ValueError(f"x has {c_in} channels, the weight expects {per_group * groups} "
                             f"({groups} groups of {per_group})")
        if self.normalization != "nodal":
            if tuple(x.shape[2:]) != self.shape:
                raise ValueError(f"x has grid {tuple(x.shape[2:])}, the kernel was built for "
                                 f"{self.shape}")
            fdims = tuple(range(2, 2 + nd))
            x_hat = torch.fft.rfftn(x * self.weights.to(x.dtype), s=self.fft_shape, dim=fdims)
            y_hat = _basis_multipliers(x_hat, self, weight, groups, 1.0)
            y = torch.fft.irfftn(y_hat, s=self.fft_shape, dim=fdims)
            y = y[(Ellipsis,) + tuple(slice(0, n) for n in self.shape)]
        else:
            responses = self.responses(x)  # [B, C_in, K, *shape]
            r = responses.reshape(b, groups, per_group, k, -1)
            w = weight.reshape(groups, c_out // groups, per_group, k)
            y = torch.einsum("bgckn,gock->bgon", r, w).reshape(b, c_out, *self.shape)
        if bias is not None:
            y = y + bias.reshape(1, -1, *([1] * nd))
        return y


class _WeightedBasisSum(torch.autograd.Function):
    """``y[b, g, o, f] = sum_k m[b, g, k, o, f] s[k, f]`` (complex), with a hand-written
    backward ``dm = dy conj(s)``: torch's broadcast multiply-then-sum over ``k`` and its
    autograd backward are slower (benchmarks/README.md). ``s`` is a constant (no gradient)."""

    @staticmethod
    def forward(ctx, mixed: torch.Tensor, spectrum: torch.Tensor,
                spectrum_conj: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(spectrum_conj)
        out = mixed[:, :, 0] * spectrum[0]
        for k in range(1, mixed.shape[2]):
            out.addcmul_(mixed[:, :, k], spectrum[k])
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (spectrum_conj,) = ctx.saved_tensors
        return grad.unsqueeze(2) * spectrum_conj, None, None


def _basis_multipliers(x_hat: torch.Tensor, kernel: GridDiscoKernel, weight: torch.Tensor,
                       groups: int, scale: float) -> torch.Tensor:
    """``y_hat = scale sum_k psi_hat_k (W_k / s_k) x_hat``: ``[B, C_in, *fft] -> [B, C_out, *fft]``
    (complex), one real matrix product and a multiply-and-sum over ``k``."""
    b = x_hat.shape[0]
    c_out, per_group, k = weight.shape
    real_dtype = x_hat.real.dtype
    complex_dtype = x_hat.dtype
    fshape = x_hat.shape[2:]
    n_freq = math.prod(fshape)
    x_real = torch.view_as_real(x_hat).reshape(b, groups, per_group, 2 * n_freq)
    # [G, K (C_out / G), C_in / G]: one real mixing matrix per basis function, k outer so
    # that the sum over k below reduces a non-innermost axis (faster than the inner one)
    w = weight.to(real_dtype) * (scale * kernel.inv_scale.to(real_dtype).reshape(1, 1, k))
    w = w.reshape(groups, c_out // groups, per_group, k).permute(0, 3, 1, 2)
    w = w.reshape(groups, k * (c_out // groups), per_group)
    mixed = torch.matmul(w, x_real)  # [B, G, K (C_out / G), 2F]
    mixed = torch.view_as_complex(mixed.reshape(b, groups, k, c_out // groups, n_freq, 2))
    spectrum, spectrum_conj = kernel.spectra(complex_dtype)
    y_hat = _WeightedBasisSum.apply(mixed, spectrum.reshape(k, 1, n_freq),
                                    spectrum_conj.reshape(k, 1, n_freq))
    return y_hat.reshape(b, c_out, *fshape)
