"""Sphere DISCO kernels on latitude-longitude grids, built per meridian and applied by FFTs.

Rotating a latitude-longitude grid about the polar axis by ``2 pi / g`` maps the
input and the output grid onto themselves (``g = gcd(nlon_in, nlon_out)``), and a
kernel built in each output point's own frame is invariant under those
rotations. So the whole operator is fixed by the output points of one period of
longitudes: ``nlon_out / g`` meridians (one when the grids are the same or the
output is coarser in longitude), each holding ``nlat_out`` points, against the
whole input grid. Only those stencils are built (:func:`~geo_neuralop.kernels.disco.
disco_edges` on the meridian points and the input points within the radius of
them), as torch-harmonics stores its kernels: memory and build time grow like
``nlat x neighbours``, not ``nlat x nlon x neighbours``.

Applying a meridian's stencils at every longitude is a circular correlation in
longitude: for each pair of latitude rows, ``Y_i(m) = sum_k W_k sum_j conj(G_kij(m))
X_j(m)`` per longitudinal wavenumber ``m``, with ``G_kij = rfft_q psi_k(i; j, q)``. The
correlation is evaluated at every input longitude shift and sampled at the shifts
of the output longitudes (every ``nlon_in / g``-th), which covers coarser output
grids; finer output grids in longitude interleave the meridians. The result equals
the sparse kernel between the full grids to round-off.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from geo_neuralop.geometry.grid_spec import SphereGridSpec
from geo_neuralop.kernels.basis import FilterBasis, get_basis
from geo_neuralop.kernels.disco import NORMALIZATIONS, StencilPoints, disco_edges
from geo_neuralop.utils.checks import is_number

__all__ = ["MAX_STORED_SPECTRA_BYTES", "RingStencil", "SphereRingKernel", "ring_meridians"]

#: Spectra of a ring kernel are kept in memory up to this size; larger kernels (0.25 degree
#: grids) recompute each latitude block's spectra from its few stencil values at every
#: call, which costs a few percent of the product and no memory.
MAX_STORED_SPECTRA_BYTES = 64 * 1024**2

#: A block's spectra come from a direct DFT of its nonzero stencil longitudes (a sparse
#: product, cost ``2 M`` per value) unless an FFT of the whole block, cost about
#: ``DFT_COST_RATIO * P nlon log2(nlon)``, is cheaper (blocks near the poles).
DFT_COST_RATIO = 2.5


@dataclass(frozen=True)
class RingStencil:
    """How one DISCO kernel of a ring kernel is built.

    Parameters
    ----------
    basis : FilterBasis
    radius : float
        Support radius, a geodesic angle in radians, in (0, pi).
    normalization : {"none", "mean", "nodal"}
        See :func:`~geo_neuralop.kernels.disco_kernel`.
    differential : bool
        A differential (zero-sum, linearly consistent, divided by the radius)
        kernel; needs the output grid to be the input grid.
    max_edges : float, optional
        Refuse (before anything is built) a radius whose stencils hold more than
        about this many ``(output point, input point)`` pairs: the pairs of the
        output meridians a ring kernel builds (``nlat_out * meridians`` points, not
        the whole output grid; see :func:`~geo_neuralop.kernels.disco_kernel` for
        the per-point kernel's count); None: no limit.
    name, max_edges_name : str
        How messages call the radius and the edge limit (a layer or model passes
        the names of its own arguments, e.g. ``"disco_radius"``).
    """

    basis: FilterBasis
    radius: float
    normalization: str = "mean"
    differential: bool = False
    max_edges: float | None = None
    name: str = "radius"
    max_edges_name: str = "max_edges"

    def __post_init__(self) -> None:
        if not isinstance(self.basis, FilterBasis):
            raise TypeError(f"basis must be a FilterBasis, got {type(self.basis).__name__}")
        if not is_number(self.radius) or not 0 < float(self.radius) < math.pi:
            raise ValueError(f"{self.name} must be an angle in (0, pi) radians, got "
                             f"{self.radius!r}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got "
                             f"{self.normalization!r}")


def ring_meridians(nlon_in: int, nlon_out: int) -> int:
    """Output meridians a ring kernel builds: ``nlon_out / gcd(nlon_in, nlon_out)``.

    One when ``nlon_out`` divides ``nlon_in`` (same grid or coarser output), ``f``
    when the output is ``f`` times finer; the product's cost grows with it.
    """
    return nlon_out // math.gcd(nlon_in, nlon_out)


class SphereRingKernel:
    """DISCO kernels between two latitude-longitude grids, ready to apply through FFTs.

    Parameters
    ----------
    in_grid, out_grid : SphereGridSpec or (nlat, nlon, grid)
        Input and output grids (torch-harmonics' layout: latitude rows north to
        south, longitudes ``2 pi q / nlon``).
    stencils : sequence of RingStencil or dict
        The kernels, their basis functions concatenated in order: ``K = sum K_n``.
        Dicts are ``RingStencil`` arguments (``basis`` a FilterBasis, or a name
        with ``kernel_shape``).
    block_rows : int, optional
        Output rows (latitude rows times meridians) per block of the product
        (default: about half the rows a stencil spans, at least 4).
    dtype : torch.dtype
        Real dtype of the spectra.
    device : torch.device or str, optional
    max_stored_bytes : int
        Keep the spectra of all blocks when they take at most this many bytes;
        otherwise each block's spectra are recomputed from its stencil values at
        every call (see :data:`MAX_STORED_SPECTRA_BYTES`).

    Notes
    -----
    Stored spectra take ``4 K n_rows window (nlon_in // 2 + 1)`` reals, where
    ``n_rows = nlat_out * meridians`` and ``window`` is the number of input rows a
    block reads (about twice the stencil's half-width in rows plus ``block_rows``);
    the stencils themselves take ``K`` values per edge of the meridians.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.kernels import PiecewiseLinearBasis
    >>> ring = SphereRingKernel((33, 64, "equiangular"), (17, 32, "equiangular"),
    ...                         [RingStencil(PiecewiseLinearBasis((3, 4)), radius=0.3)])
    >>> ring.apply(torch.randn(2, 3, 33, 64), torch.randn(8, 3, ring.kernel_size)).shape
    torch.Size([2, 8, 17, 32])
    """

    def __init__(self, in_grid: SphereGridSpec | Sequence, out_grid: SphereGridSpec | Sequence,
                 stencils: Sequence[RingStencil | dict], block_rows: int | None = None,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
                 max_stored_bytes: int = MAX_STORED_SPECTRA_BYTES) -> None:
        self.in_grid, self.out_grid = _grid("in_grid", in_grid), _grid("out_grid", out_grid)
        specs = [_stencil(i, s) for i, s in enumerate(stencils)]
        if not specs:
            raise ValueError("stencils must hold at least one RingStencil")
        for i, spec in enumerate(specs):
            if spec.differential and self.in_grid != self.out_grid:
                raise ValueError(f"stencils[{i}] is differential, which needs out_grid == in_grid, "
                                 f"got {self.in_grid} and {self.out_grid}")
        (nlat_in, nlon_in), (nlat_out, nlon_out) = self.in_grid.shape, self.out_grid.shape
        self.nlat_in, self.nlon_in, self.nlat_out, self.nlon_out = nlat_in, nlon_in, nlat_out, \
            nlon_out
        for spec in specs:
            _check_edges(spec, nlat_in * nlon_in, nlat_out * ring_meridians(nlon_in, nlon_out))
        self.period = math.gcd(nlon_in, nlon_out)  # longitude shifts that map both grids
        self.meridians = nlon_out // self.period
        self.shift = nlon_in // self.period  # input longitudes per output shift
        self.n_freq = nlon_in // 2 + 1
        self.stencils = specs
        taps = _meridian_taps(self.in_grid, self.out_grid, specs)  # rows, in rows, lons, values
        self.kernel_size = taps[3].shape[1]
        self.num_edges = int(taps[0].shape[0])
        self._layout(taps, block_rows)
        self.dtype, self.device = dtype, torch.device("cpu") if device is None else \
            torch.device(device)
        self.matrices: torch.Tensor | None = None
        stored = self.spectra_bytes(dtype)
        if stored <= max_stored_bytes:
            matrices = torch.empty(self.n_blocks, self.n_freq, 2 * self.block_rows *
                                   self.kernel_size, 2 * self.window, dtype=dtype)
            for b in range(self.n_blocks):
                matrices[b] = self._block_matrix(b, torch.float64)
            self.matrices = matrices.to(device=device)
        self.tap_index = self.tap_index.to(self.device)
        self.tap_values = self.tap_values.to(device=self.device, dtype=dtype)

    # ------------------------------------------------------------------ layout
    def _layout(self, taps, block_rows: int | None) -> None:
        out_row, in_row, in_lon, values = taps
        n_rows = self.nlat_out * self.meridians
        lo = torch.full((n_rows,), self.nlat_in, dtype=torch.int64).scatter_reduce(
            0, out_row, in_row, "amin")
        hi = torch.full((n_rows,), -1, dtype=torch.int64).scatter_reduce(
            0, out_row, in_row, "amax")
        span = int((hi - lo).max()) + 1
        rows = block_rows if block_rows is not None else self.meridians * max(4, span // 2)
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise ValueError(f"block_rows must be a positive int, got {block_rows!r}")
        rows = min(rows, n_rows)
        n_blocks = math.ceil(n_rows / rows)
        block = torch.arange(n_rows) // rows
        starts = torch.full((n_blocks,), self.nlat_in, dtype=torch.int64).scatter_reduce(
            0, block, lo, "amin")
        ends = torch.zeros(n_blocks, dtype=torch.int64).scatter_reduce(0, block, hi + 1, "amax")
        self.n_rows, self.block_rows, self.n_blocks = n_rows, rows, n_blocks
        self.window = int((ends - starts).max())
        self.starts = [int(s) for s in starts]
        self.padded_rows = max(self.nlat_in, max(self.starts) + self.window)
        # every stencil value's place in its block's dense taps [nlon_in, rows, K, window]
        k = values.shape[1]
        tap_block = out_row // rows
        local = out_row % rows
        offset = in_row - starts[tap_block]
        base = ((in_lon[:, None] * rows + local[:, None]) * k + torch.arange(k)) * self.window \
            + offset[:, None]  # [E, K]
        nonzero = values != 0  # each stencil fills only its own columns
        value_block = tap_block[:, None].expand(-1, k)[nonzero]
        order = torch.argsort(value_block, stable=True)
        index_dtype = torch.int32 if rows * k * self.window * self.nlon_in < 2**31 else \
            torch.int64
        self.tap_index = base[nonzero][order].to(index_dtype)
        self.tap_values = values[nonzero][order]
        counts = torch.bincount(value_block, minlength=n_blocks)
        self.tap_ptr = [0] + torch.cumsum(counts, 0).tolist()

    def spectra_bytes(self, dtype: torch.dtype = torch.float32) -> int:
        """Bytes the spectra of all blocks take when stored."""
        return (self.n_blocks * self.n_freq * 4 * self.block_rows * self.kernel_size
                * self.window * torch.empty(0, dtype=dtype).element_size())

    @property
    def nbytes(self) -> int:
        """Bytes held now (stored spectra, if any, and the stencil values)."""
        held = self.tap_index.numel() * self.tap_index.element_size() + \
            self.tap_values.numel() * self.tap_values.element_size()
        if self.matrices is not None:
            held += self.matrices.numel() * self.matrices.element_size()
        return int(held)

    def block_matrix(self, block: int, dtype: torch.dtype) -> torch.Tensor:
        """The real form of block ``block``'s spectra, ``[M, 2 rows K, 2 window]``."""
        if self.matrices is not None:
            return self.matrices[block].to(dtype)
        return self._block_matrix(block, dtype)

    def _block_matrix(self, block: int, dtype: torch.dtype) -> torch.Tensor:
        """Block ``block``'s spectra from its stencil values: ``h = rfft_q`` of the stencils in
        longitude, ``[M, P]`` with ``P = rows K window``, as a direct DFT of the few nonzero
        longitudes (a sparse product with a cosine/sine table) or, for blocks whose stencils
        cover whole rings (near the poles), an FFT."""
        rows, k, window, nlon = self.block_rows, self.kernel_size, self.window, self.nlon_in
        width = rows * k * window
        a, b = self.tap_ptr[block], self.tap_ptr[block + 1]
        work = torch.float64 if dtype == torch.float64 else torch.float32
        device = self.tap_values.device
        flat, values = self.tap_index[a:b].long(), self.tap_values[a:b].to(work)
        out = torch.empty(self.n_freq, 2, width, 2, dtype=work, device=device)
        if (b - a) * 2 * self.n_freq < DFT_COST_RATIO * width * nlon * max(math.log2(nlon), 1.0):
            table = self._dft_table(work, device)  # [nlon, 2 M]: cos, -sin
            with warnings.catch_warnings():  # "sparse invariant checks are disabled"
                warnings.simplefilter("ignore", UserWarning)
                taps = torch.sparse_coo_tensor(torch.stack([flat % width, flat // width]),
                                               values, (width, nlon))
            spectra = torch.sparse.mm(taps, table)  # [P, 2M]: re h, im h
            real, imag = spectra[:, : self.n_freq].T, spectra[:, self.n_freq:].T
        else:
            dense = torch.zeros(nlon * width, dtype=work, device=device)
            dense.index_put_((flat,), values, accumulate=True)
            h = torch.fft.rfft(dense.view(nlon, width), dim=0)
            real, imag = h.real, h.imag
        # The correlation takes g = conj(h) = A + iB. The complex product as one real matrix
        # per m, columns the input rows' (re, im): output re rows (A, -B) = (re h, im h),
        # output im rows (B, A) = (-im h, re h).
        out[:, 0, :, 0] = real
        out[:, 0, :, 1] = imag
        out[:, 1, :, 0] = -imag
        out[:, 1, :, 1] = real
        return out.view(self.n_freq, 2 * rows * k, 2 * window).to(dtype)

    def _dft_table(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        key = (dtype, str(device))
        if getattr(self, "_table_key", None) != key:
            turns = torch.outer(torch.arange(self.nlon_in), torch.arange(self.n_freq)) \
                % self.nlon_in  # q m mod N, exact
            angle = (2.0 * math.pi / self.nlon_in) * turns.double()
            self._table = torch.cat([torch.cos(angle), -torch.sin(angle)], dim=1).to(
                dtype=dtype, device=device)
            self._table_key = key
        return self._table

    def to(self, dtype: torch.dtype | None = None,
           device: torch.device | str | None = None) -> SphereRingKernel:
        """Move the stored arrays (in place) and return ``self``."""
        if self.matrices is not None:
            self.matrices = self.matrices.to(dtype=dtype, device=device)
        self.tap_values = self.tap_values.to(dtype=dtype, device=device)
        self.tap_index = self.tap_index.to(device=device)
        self.dtype = dtype or self.dtype
        self.device = torch.device(device) if device is not None else self.device
        return self

    # ------------------------------------------------------------------ apply
    def apply(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``y[b, o] = sum_k sum_c weight[o, c, k] (psi_k * x[b, c])`` on the output grid.

        Parameters
        ----------
        x : torch.Tensor, shape [B, C_in, nlat_in, nlon_in]
        weight : torch.Tensor, shape [C_out, C_in, K]
            ``K = self.kernel_size`` (the stencils' basis functions in order).

        Returns
        -------
        torch.Tensor, shape [B, C_out, nlat_out, nlon_out]
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[2:]) != (
                self.nlat_in, self.nlon_in):
            raise ValueError(f"x must have shape [B, C, {self.nlat_in}, {self.nlon_in}], got "
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
        x_hat = torch.nn.functional.pad(x_hat, (0, 0, 0, 0, 0, self.padded_rows - self.nlat_in))
        y = _RingBlockProduct.apply(x_hat.contiguous(), w.to(x_hat.dtype), self)
        y = y.view(b, nb, self.n_freq, 2, rows, c_out)
        y_hat = torch.complex(y[:, :, :, 0], y[:, :, :, 1]).transpose(1, 2).reshape(
            b, self.n_freq, nb * rows, c_out)[:, :, : self.n_rows]
        z = torch.fft.irfft(y_hat, n=self.nlon_in, dim=1)  # [B, shifts, rows, O]
        z = z[:, :: self.shift]  # the shifts of the output longitudes: [B, period, rows, O]
        out = z.reshape(b, self.period, self.nlat_out, self.meridians, c_out)
        out = out.permute(0, 4, 2, 1, 3).reshape(b, c_out, self.nlat_out, self.nlon_out)
        return out.to(dtype)

    def dense(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The operator as a dense ``[K, nlat_out * nlon_out, nlat_in * nlon_in]`` tensor
        (tests and small grids only)."""
        rows, k, window, nlon = self.block_rows, self.kernel_size, self.window, self.nlon_in
        out = torch.zeros(k, self.nlat_out * self.nlon_out, self.nlat_in * nlon, dtype=dtype)
        for block in range(self.n_blocks):
            a, b = self.tap_ptr[block], self.tap_ptr[block + 1]
            flat = self.tap_index[a:b].cpu().long()
            offset, rest = flat % window, flat // window
            kk, rest = rest % k, rest // k
            local, lon = rest % rows, rest // rows
            row = block * rows + local
            lat_out, meridian = row // self.meridians, row % self.meridians
            lat_in = self.starts[block] + offset
            values = self.tap_values[a:b].cpu().to(dtype)
            for t in range(self.period):
                p = meridian + self.meridians * t
                q = (lon + self.shift * t) % nlon
                out.index_put_((kk, lat_out * self.nlon_out + p, lat_in * nlon + q), values,
                               accumulate=True)
        return out


class _RingBlockProduct(torch.autograd.Function):
    """Per latitude block and sample: the ring spectra on the block's window of input rows,
    ``[M, 2 rows K, window 2] @ [M, window 2, C_in]``, then the channel mixing
    ``[(M 2 rows), (K C_in)] @ [(K C_in), C_out]``. Working block by block keeps the
    ``K``-times-larger basis responses small (a block's fit in cache and reuse heap
    memory), and they are not stored: the backward recomputes them (one small product).

    Shapes: ``x_hat [B, M, J, 2, C_in]`` (padded rows ``J``), ``w [K C_in, C_out]`` ->
    ``[B, nb, M, 2 rows, C_out]``.
    """

    @staticmethod
    def forward(ctx, x_hat: torch.Tensor, w: torch.Tensor,
                ring: SphereRingKernel) -> torch.Tensor:
        b, m, _, _, c_in = x_hat.shape
        rows, window, k, nb = ring.block_rows, ring.window, ring.kernel_size, ring.n_blocks
        c_out = w.shape[1]
        out = x_hat.new_empty(b, nb, m, 2 * rows, c_out)
        for blk in range(nb):
            matrix = ring.block_matrix(blk, x_hat.dtype)
            start = ring.starts[blk]
            for i in range(b):
                rows_in = x_hat[i, :, start: start + window].reshape(m, 2 * window, c_in)
                responses = torch.bmm(matrix, rows_in)  # [M, 2 rows K, C_in]
                torch.mm(responses.view(m * 2 * rows, k * c_in), w,
                         out=out[i, blk].view(m * 2 * rows, c_out))
        ctx.save_for_backward(x_hat, w)
        ctx.ring = ring
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x_hat, w = ctx.saved_tensors
        ring = ctx.ring
        rows, window, k, nb = ring.block_rows, ring.window, ring.kernel_size, ring.n_blocks
        b, m, _, _, c_in = x_hat.shape
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_x = torch.zeros_like(x_hat) if need_x else None
        grad_w = torch.zeros_like(w) if need_w else None
        for blk in range(nb):
            matrix = ring.block_matrix(blk, x_hat.dtype)
            transposed = matrix.transpose(1, 2)  # [M, window 2, 2 rows K], a view
            window_rows = slice(ring.starts[blk], ring.starts[blk] + window)
            for i in range(b):
                grad_out = grad[i, blk].reshape(m * 2 * rows, -1)
                if need_w:
                    rows_in = x_hat[i, :, window_rows].reshape(m, 2 * window, c_in)
                    responses = torch.bmm(matrix, rows_in)
                    grad_w.addmm_(responses.view(m * 2 * rows, k * c_in).T, grad_out)
                if need_x:
                    grad_responses = (grad_out @ w.T).view(m, 2 * rows * k, c_in)
                    grad_x[i, :, window_rows] += torch.bmm(transposed, grad_responses).view(
                        m, window, 2, c_in)
        return grad_x, grad_w, None


def _grid(name: str, grid: SphereGridSpec | Sequence) -> SphereGridSpec:
    if isinstance(grid, SphereGridSpec):
        return grid
    if isinstance(grid, (tuple, list)) and len(grid) in (2, 3):
        return SphereGridSpec(*grid)
    raise TypeError(f"{name} must be a SphereGridSpec or (nlat, nlon, grid), got {grid!r}")


def _stencil(index: int, spec: RingStencil | dict) -> RingStencil:
    if isinstance(spec, RingStencil):
        return spec
    if isinstance(spec, dict):
        spec = dict(spec)
        shape = spec.pop("kernel_shape", None)
        basis = spec.pop("basis", "piecewise_linear")
        return RingStencil(get_basis(basis, None if isinstance(basis, FilterBasis) else shape),
                           **spec)
    raise TypeError(f"stencils[{index}] must be a RingStencil or a dict, got "
                    f"{type(spec).__name__}")


def _check_edges(spec: RingStencil, n_in: int, n_out: int) -> None:
    """Refuse a stencil whose meridian stencils would exceed its ``max_edges``.

    The estimate is ``n_out n_in (1 - cos r) / 2``: each of the ``n_out`` meridian
    points against the input points in a spherical cap of angle ``r`` (the cap's share
    of the sphere).
    """
    if spec.max_edges is None:
        return
    estimate = n_out * n_in * (1.0 - math.cos(float(spec.radius))) / 2.0
    if estimate > spec.max_edges:
        gigabytes = estimate * (4 * spec.basis.kernel_size + 8) / 1e9
        raise ValueError(
            f"{spec.name}={float(spec.radius):g} gives about {estimate:.3g} kernel edges (pairs "
            f"of the {n_out} output meridian points and {n_in} input grid points within the "
            f"radius), about "
            f"{gigabytes:.3g} GB of memory while building; this is above "
            f"{spec.max_edges_name}={spec.max_edges:g}. Use a smaller {spec.name}, or raise "
            f"{spec.max_edges_name} to build it anyway")


def _meridian_taps(in_grid: SphereGridSpec, out_grid: SphereGridSpec,
                   stencils: Sequence[RingStencil]):
    """The stencils of the output meridians against the input grid.

    Returns ``(out_row [E], in_row [E], in_lon [E], values [E, K])`` (int64 and
    float64 tensors), output row ``i * meridians + r`` for latitude ``i`` and meridian
    ``r`` at longitude ``2 pi r / nlon_out``; each stencil's values fill its own
    columns of ``values``.
    """
    (nlat_in, nlon_in), (nlat_out, nlon_out) = in_grid.shape, out_grid.shape
    meridians = ring_meridians(nlon_in, nlon_out)
    colat_out = out_grid.colatitudes()
    lon_out = 2.0 * np.pi * np.arange(meridians) / nlon_out
    sin_t = np.sin(colat_out)
    sin_t[(colat_out == 0.0) | (colat_out == np.pi)] = 0.0
    frame_colat = np.repeat(colat_out, meridians)
    frame_lon = np.tile(lon_out, nlat_out)
    dst_pos = np.stack([np.repeat(sin_t, meridians) * np.cos(frame_lon),
                        np.repeat(sin_t, meridians) * np.sin(frame_lon),
                        np.repeat(np.cos(colat_out), meridians)], axis=1)
    # input points that can lie within the radius of a meridian: in the frame of a meridian
    # at longitude lam, a point within chord c of it has |y| <= c and x >= -c
    reach = 2.0 * math.sin(min(max(s.radius for s in stencils), math.pi) / 2) * (1 + 1e-9) \
        + 1e-12
    colat_in = in_grid.colatitudes()
    sin_in = np.sin(colat_in)
    sin_in[(colat_in == 0.0) | (colat_in == np.pi)] = 0.0
    lon_in = in_grid.longitudes()
    near = np.zeros((nlat_in, nlon_in), dtype=bool)
    for lam in lon_out:
        x = np.outer(sin_in, np.cos(lon_in - lam))
        y = np.outer(sin_in, np.sin(lon_in - lam))
        near |= (np.abs(y) <= reach) & (x >= -reach)
    in_row, in_lon = np.nonzero(near)
    unit = in_grid.unit_vectors()
    src_pos = unit[in_row, in_lon]
    weights = in_grid.weights(torch.float64).numpy()
    src_weights = weights[in_row, in_lon]
    self_index = None
    if any(s.differential for s in stencils):  # same grid: meridian 0 is input longitude 0
        lookup = -np.ones((nlat_in, nlon_in), dtype=np.int64)
        lookup[in_row, in_lon] = np.arange(len(in_row))
        self_index = lookup[np.arange(nlat_out), 0]
    points = StencilPoints(src_pos=src_pos, src_weights=src_weights, dst_pos=dst_pos,
                           manifold="sphere", box=None, dst_frame=(frame_colat, frame_lon),
                           total_weight=float(weights.sum()), self_index=self_index,
                           tangent_dim=2)
    rows, srcs, parts = [], [], []
    k_total = sum(s.basis.kernel_size for s in stencils)
    k0 = 0
    for spec in stencils:
        edge_index, values = disco_edges(points, spec.basis, float(spec.radius),
                                         spec.normalization, spec.differential, torch.float64,
                                         names=(spec.name, f"{nlat_out} x {nlon_out} grid"))
        k = values.shape[0]
        full = torch.zeros(edge_index.shape[1], k_total, dtype=torch.float64)
        full[:, k0:k0 + k] = values.T
        rows.append(edge_index[1].long())
        srcs.append(edge_index[0].long())
        parts.append(full)
        k0 += k
    src = torch.cat(srcs)
    in_row_t, in_lon_t = torch.from_numpy(in_row)[src], torch.from_numpy(in_lon)[src]
    return torch.cat(rows), in_row_t, in_lon_t, torch.cat(parts)
