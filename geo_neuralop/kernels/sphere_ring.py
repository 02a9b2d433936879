"""Sphere DISCO kernels applied through FFTs in longitude (the ring symmetry of lat/lon grids).

Rotating a latitude-longitude grid about the polar axis by one grid step maps it
onto itself, so a kernel built in each output point's own frame satisfies
``psi(i, p; j, q) = psi(i, 0; j, q - p)``: for each pair of latitude rows it is a
circular correlation in longitude, and in Fourier space a small matrix between
latitude rows per longitudinal wavenumber ``m``,
``Y_i(m) = sum_k W_k sum_j conj(G_kij(m)) X_j(m)`` with ``G_kij = rfft_q psi_k(i, 0; j, q)``
(torch-harmonics stores its kernels the same way). Only rows within the radius
are stored. The result equals the sparse kernel's to round-off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from geo_neuralop.kernels.sparse import DiscoKernel

__all__ = ["SphereRingKernel"]


class SphereRingKernel:
    """Ring-symmetric sphere kernels in Fourier space, ready to apply to grids.

    Parameters
    ----------
    kernels : sequence of DiscoKernel
        Kernels from a ``nlat x nlon`` latitude-longitude grid to itself, point
        ``i * nlon + p`` at latitude row ``i`` and longitude ``2 pi p / nlon``
        (the layout of :func:`~geo_neuralop.geometry.sphere_grid`). Their basis
        functions are concatenated in order: ``K = sum K_n``.
    nlat, nlon : int
        Grid size.
    block_rows : int, optional
        Output latitude rows per block (default: the kernel's half-width in rows,
        at least 4; the fastest on CPU at 32 x 64 to 128 x 256).
    dtype : torch.dtype
        Real dtype of the stored spectra.
    device : torch.device or str, optional
    check_symmetry : bool
        Verify that every kernel is invariant under longitude shifts (to 1e-9
        relative for float64 kernels, 100 machine epsilons for others), raising
        ``ValueError`` otherwise. It is for any kernel built
        in the output point's frame on such a grid.

    Notes
    -----
    Memory: ``nblocks * (nlon // 2 + 1) * block_rows * K * window`` complex
    values, about ``K * nlat * window * nlon`` reals, where ``window`` is the
    number of latitude rows a block reads.
    """

    def __init__(self, kernels: Sequence[DiscoKernel], nlat: int, nlon: int,
                 block_rows: int | None = None, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None, check_symmetry: bool = True) -> None:
        if not kernels:
            raise ValueError("kernels must hold at least one DiscoKernel")
        n = nlat * nlon
        rings = []  # per kernel: (output row, input row, input lon, values [E0, K])
        for index, kernel in enumerate(kernels):
            if not isinstance(kernel, DiscoKernel):
                raise TypeError(f"kernels[{index}] must be a DiscoKernel, got "
                                f"{type(kernel).__name__}")
            if kernel.total_src != n or kernel.total_dst != n:
                raise ValueError(f"kernels[{index}] maps {kernel.total_src} -> "
                                 f"{kernel.total_dst} points, expected the {nlat} x {nlon} grid "
                                 f"({n} points) to itself")
            src, dst = kernel.edge_index[0].cpu(), kernel.edge_index[1].cpu()
            values = kernel.edge_values.detach().cpu().to(torch.float64)
            # the basis vanishes at the radius: edges at (round-off from) exactly the radius
            # have values ~1e-16 of the others, and which of them the neighbour search keeps
            # varies from one longitude to the next, so they are dropped
            size = values.abs().amax(dim=1)
            # tolerances follow the precision the kernel was stored in
            eps = torch.finfo(kernel.edge_values.dtype).eps
            tiny, tol = max(1e-12, 10 * eps), max(1e-9, 100 * eps)
            nonzero = size > tiny * float(size.max()) if len(size) else size > 0
            src, dst, values = src[nonzero], dst[nonzero], values[nonzero]
            first = dst % nlon == 0
            rings.append((dst[first] // nlon, src[first] // nlon, src[first] % nlon,
                          values[first]))
            if check_symmetry:
                _check_ring_symmetry(index, src, dst, values, rings[-1], nlat, nlon, tol)
        k_total = sum(r[3].shape[1] for r in rings)
        half = 0
        for out_row, in_row, _, _ in rings:
            if len(out_row):
                half = max(half, int((in_row - out_row).abs().max()))
        rows = block_rows if block_rows is not None else max(4, half)
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise ValueError(f"block_rows must be a positive int, got {block_rows!r}")
        rows = min(rows, nlat)
        n_blocks = math.ceil(nlat / rows)
        window = rows + 2 * half
        # Block b reads the rows b * rows - half ... b * rows + rows + half - 1 of the input,
        # which is zero-padded by `half` rows in front and enough rows behind.
        ring = torch.zeros(n_blocks, rows, window, k_total, nlon, dtype=torch.float64)
        k0 = 0
        for out_row, in_row, in_lon, values in rings:
            block, local = out_row // rows, out_row % rows
            offset = in_row - (block * rows - half)
            for kk in range(values.shape[1]):
                ring[block, local, offset, k0 + kk, in_lon] += values[:, kk]
            k0 += values.shape[1]
        # correlation in longitude: conj(rfft); complex [nb, M, rows, window, K]
        g = torch.fft.rfft(ring, dim=-1).conj().permute(0, 4, 1, 2, 3)
        # The complex product as one real matrix per (block, m): output rows
        # (re, im) x rows x K, input rows window x (re, im).
        real, imag = g.real.transpose(3, 4), g.imag.transpose(3, 4)  # [nb, M, rows, K, window]
        top = torch.stack([real, -imag], dim=-1)  # [nb, M, rows, K, window, 2]
        bottom = torch.stack([imag, real], dim=-1)
        blocks = torch.stack([top, bottom], dim=2)  # [nb, M, 2, rows, K, window, 2]
        n_freq = blocks.shape[1]
        self.nlat, self.nlon, self.kernel_size = nlat, nlon, k_total
        self.block_rows, self.window, self.n_blocks, self.half = rows, window, n_blocks, half
        self.n_freq = n_freq
        self.matrices = blocks.reshape(n_blocks, n_freq, 2 * rows * k_total, window * 2).to(
            dtype=dtype, device=device).contiguous()

    def to(self, dtype: torch.dtype | None = None,
           device: torch.device | str | None = None) -> SphereRingKernel:
        """Move the stored matrices (in place) and return ``self``."""
        self.matrices = self.matrices.to(dtype=dtype, device=device)
        return self

    def apply(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``y[b, o] = sum_k sum_c weight[o, c, k] (psi_k * x[b, c])`` on the grid.

        Parameters
        ----------
        x : torch.Tensor, shape [B, C_in, nlat, nlon]
        weight : torch.Tensor, shape [C_out, C_in, K]
            ``K = self.kernel_size`` (the kernels' basis functions in order).

        Returns
        -------
        torch.Tensor, shape [B, C_out, nlat, nlon]
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[2:]) != (
                self.nlat, self.nlon):
            raise ValueError(f"x must have shape [B, C, {self.nlat}, {self.nlon}], got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x)}")
        c_out, c_in, k = weight.shape
        if x.shape[1] != c_in or k != self.kernel_size:
            raise ValueError(f"weight has shape {tuple(weight.shape)}, expected "
                             f"[C_out, {x.shape[1]}, {self.kernel_size}]")
        dtype = x.dtype
        if dtype in (torch.float16, torch.bfloat16):
            x = x.float()  # FFTs of arbitrary lengths need single precision
        w = weight.permute(2, 1, 0).reshape(k * c_in, c_out)  # rows (k, c)
        b, nb, rows = x.shape[0], self.n_blocks, self.block_rows
        x_hat = torch.view_as_real(torch.fft.rfft(x, dim=-1))  # [B, C, nlat, M, 2]
        x_hat = x_hat.permute(0, 3, 2, 4, 1)  # [B, M, nlat, 2, C]
        pad_back = nb * rows + self.half - self.nlat
        x_hat = torch.nn.functional.pad(x_hat, (0, 0, 0, 0, self.half, pad_back))
        y = _RingBlockProduct.apply(x_hat.contiguous(), w.to(x_hat.dtype),
                                    self.matrices.to(x_hat.dtype), rows, self.window, k)
        y = y.view(b, nb, self.n_freq, 2, rows, c_out)
        y_hat = torch.complex(y[:, :, :, 0], y[:, :, :, 1]).transpose(1, 2).reshape(
            b, self.n_freq, nb * rows, c_out)
        out = torch.fft.irfft(y_hat[:, :, : self.nlat], n=self.nlon, dim=1)  # [B, nlon, nlat, O]
        return out.permute(0, 3, 2, 1).to(dtype)


class _RingBlockProduct(torch.autograd.Function):
    """Per sample and latitude block: the ring kernels on the block's window of rows,
    ``[M, 2 rows K, window 2] @ [M, window 2, C_in]``, then the channel mixing
    ``[(M 2 rows), (K C_in)] @ [(K C_in), C_out]``. Working block by block keeps the
    ``K``-times-larger basis responses small (a block's fit in cache and reuse heap
    memory, where whole-batch intermediates page-faulted fresh memory on every call), and
    they are not stored: the backward recomputes them (one small product) instead.

    Shapes: ``x_hat [B, M, J, 2, C_in]`` (padded rows ``J``), ``w [K C_in, C_out]``,
    ``matrices [nb, M, 2 rows K, window 2]`` -> ``[B, nb, M, 2 rows, C_out]``.
    """

    @staticmethod
    def forward(ctx, x_hat: torch.Tensor, w: torch.Tensor, matrices: torch.Tensor, rows: int,
                window: int, k: int) -> torch.Tensor:
        b, m, _, _, c_in = x_hat.shape
        nb = matrices.shape[0]
        c_out = w.shape[1]
        out = x_hat.new_empty(b, nb, m, 2 * rows, c_out)
        for i in range(b):
            for blk in range(nb):
                rows_in = x_hat[i, :, blk * rows: blk * rows + window].reshape(m, 2 * window,
                                                                                c_in)
                responses = torch.bmm(matrices[blk], rows_in)  # [M, 2 rows K, C_in]
                torch.mm(responses.view(m * 2 * rows, k * c_in), w,
                         out=out[i, blk].view(m * 2 * rows, c_out))
        ctx.save_for_backward(x_hat, w, matrices)
        ctx.rows, ctx.window, ctx.k = rows, window, k
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x_hat, w, matrices = ctx.saved_tensors
        rows, window, k = ctx.rows, ctx.window, ctx.k
        b, m, _, _, c_in = x_hat.shape
        nb = matrices.shape[0]
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_x = torch.zeros_like(x_hat) if need_x else None
        grad_w = torch.zeros_like(w) if need_w else None
        transposed = matrices.transpose(2, 3)  # [nb, M, window 2, 2 rows K], a view
        for i in range(b):
            for blk in range(nb):
                window_rows = slice(blk * rows, blk * rows + window)
                grad_out = grad[i, blk].reshape(m * 2 * rows, -1)
                if need_w:
                    rows_in = x_hat[i, :, window_rows].reshape(m, 2 * window, c_in)
                    responses = torch.bmm(matrices[blk], rows_in)
                    grad_w.addmm_(responses.view(m * 2 * rows, k * c_in).T, grad_out)
                if need_x:
                    grad_responses = (grad_out @ w.T).view(m, 2 * rows * k, c_in)
                    grad_x[i, :, window_rows] += torch.bmm(transposed[blk], grad_responses).view(
                        m, window, 2, c_in)
        return grad_x, grad_w, None, None, None, None


def _check_ring_symmetry(index: int, src: torch.Tensor, dst: torch.Tensor,
                         values: torch.Tensor, ring, nlat: int, nlon: int,
                         tol: float = 1e-9) -> None:
    """Every output point's row equals ring 0's row of its latitude, shifted in longitude."""
    out_row, in_row, in_lon, ring_values = ring
    ring_keys = (out_row * nlat + in_row) * nlon + in_lon
    order = torch.argsort(ring_keys)
    ring_keys, ring_values = ring_keys[order], ring_values[order]
    keys = (dst // nlon * nlat + src // nlon) * nlon + (src % nlon - dst % nlon) % nlon
    position = torch.searchsorted(ring_keys, keys).clamp(max=max(len(ring_keys) - 1, 0))
    found = ring_keys[position] == keys if len(ring_keys) else torch.zeros_like(keys, dtype=bool)
    counts = torch.bincount(dst // nlon, minlength=nlat)
    ring_counts = torch.bincount(out_row, minlength=nlat) * nlon
    error = 0.0
    if bool(found.all()) and values.numel():
        error = float((ring_values[position] - values).abs().max())
    scale = float(values.abs().max()) if values.numel() else 1.0
    if not bool(found.all()) or not torch.equal(counts, ring_counts) or error > tol * scale:
        raise ValueError(f"kernels[{index}] is not invariant under longitude shifts "
                         f"({int((~found).sum())} edges without a partner in ring 0, max "
                         f"deviation {error:.3g}); it cannot be applied by ring FFTs")
