"""``DiscoKernel``: a precomputed sparse DISCO operator between two point clouds.

Edges ``dst <- src`` with ``K`` basis values each (quadrature weights and
normalization folded in), in CSR order with 32-bit indices, batched
block-diagonally by PyG, and applied as ``K`` CSR products that share the
kernel's own index array (:class:`SparseBasisOperator`).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch_geometric.data import Data

__all__ = ["DiscoKernel", "SparseBasisOperator"]


class DiscoKernel(Data):
    """A sparse DISCO kernel: edges dst <- src with ``K`` basis values each.

    Attributes
    ----------
    edge_index : torch.Tensor, shape [2, E], int32 (int64 for clouds of 2^31 points)
        Row 0: source point index; row 1: destination point index (PyG's
        source-to-target convention). Sorted by destination, then source: the
        kernel is in CSR order, and this is its only index array.
    edge_values : torch.Tensor, shape [E, K]
        ``psi_k(x_dst, x_src) * w_src``, normalized (and, for differential
        kernels, with the zero-sum correction on the diagonal and the
        ``1 / radius`` scale included). Built kernels hold it basis-major
        (a transposed view of ``[K, E]`` storage), the layout the products read.
    num_src_nodes, num_dst_nodes : int
        Point counts (tensors of per-sample counts after batching).
    kernel_size : int
        ``K``, the number of basis functions (columns of ``edge_values``).
    radius : float
    normalization : str
    differential : bool
    transpose_order : torch.Tensor, shape [E], optional
        The edges sorted by source (see :meth:`prepare_transpose`).

    Batching with ``torch_geometric.data.Batch.from_data_list`` offsets the
    source and destination indices separately, which gives the block-diagonal
    kernel of a batch of different geometries.

    Notes
    -----
    Memory: ``E * (2 * 4 + K * itemsize)`` bytes (44 B per edge for ``K = 9`` in
    float32). Applying it adds, once per dtype and device, a row pointer
    (``4 N_dst`` bytes) and, when gradients flow to the input, the transposed
    pattern (``E * (4 + K * itemsize)`` bytes).
    """

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "edge_index":
            return torch.tensor([[int(self.num_src_nodes)], [int(self.num_dst_nodes)]],
                                dtype=value.dtype)
        if key == "transpose_order":  # edges of the samples before
            return int(self.edge_index.shape[1])
        return super().__inc__(key, value, *args, **kwargs)

    def prepare_transpose(self) -> DiscoKernel:
        """Compute (once) the order of the edges sorted by source, ``transpose_order [E]``.

        The transposed pattern that gradients need is then a gather instead of a
        sort when the kernel is applied; do it where kernels are made (data-loading
        workers) so that kernels arriving with every batch cost no sort in the
        training step. It survives PyG batching. Returns ``self``.
        """
        if getattr(self, "transpose_order", None) is None:
            src, dst = self.edge_index[0].long(), self.edge_index[1].long()
            order = torch.argsort(src * max(self.total_dst, 1) + dst, stable=True)
            self.transpose_order = order.to(self.edge_index.dtype)
        return self

    # --- sizes that work for a single kernel and for a batch --------------------------
    @property
    def total_src(self) -> int:
        """Number of source points (summed over a batch)."""
        n = self.num_src_nodes
        return int(n.sum()) if isinstance(n, torch.Tensor) else int(n)

    @property
    def total_dst(self) -> int:
        """Number of destination points (summed over a batch)."""
        n = self.num_dst_nodes
        return int(n.sum()) if isinstance(n, torch.Tensor) else int(n)

    @property
    def kernel_size(self) -> int:
        """``K``, the number of basis functions (columns of ``edge_values``)."""
        return int(self.edge_values.shape[1])

    def nbytes(self) -> int:
        """Bytes held by the index and value arrays."""
        return int(self.edge_index.numel() * self.edge_index.element_size()
                   + self.edge_values.numel() * self.edge_values.element_size())

    def operator(self, dtype: torch.dtype,
                 device: torch.device | str = "cpu") -> SparseBasisOperator:
        """The kernel as ``K`` CSR matrices ``[N_dst, N_src]`` sharing one index pattern,
        built once per dtype and device and cached (see :class:`SparseBasisOperator`)."""
        cache = self.__dict__.setdefault("_operator_cache", {})
        key = (dtype, str(device), self.edge_values.data_ptr(), self.edge_index.data_ptr(),
               tuple(self.edge_values.shape))
        if key not in cache:
            cache.clear()
            cache[key] = SparseBasisOperator(self.edge_index, self.edge_values, self.total_src,
                                             self.total_dst, dtype, device,
                                             getattr(self, "transpose_order", None))
        return cache[key]

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        state.pop("_operator_cache", None)  # device tensors of the applied form: rebuilt
        return state

    def responses(self, x: torch.Tensor) -> torch.Tensor:
        """Integrals of ``x`` against every basis function at every destination point.

        Differentiable with respect to ``x`` (the kernel is fixed geometry).

        Parameters
        ----------
        x : torch.Tensor, shape [N_src, C]

        Returns
        -------
        torch.Tensor, shape [N_dst, K, C]
            ``sum_j psi_k(x_i, x_j) w_j x_j`` (normalized as the kernel is).
        """
        if x.dim() != 2 or x.shape[0] != self.total_src:
            raise ValueError(f"x must have shape [{self.total_src}, C], got {tuple(x.shape)}")
        return _BasisProduct.apply(self.operator(x.dtype, x.device), x)

    def to_dense(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The kernel as a dense tensor ``[K, N_dst, N_src]`` (tests and small problems only)."""
        k = self.kernel_size
        dense = torch.zeros(k, self.total_dst, self.total_src, dtype=dtype)
        src, dst = self.edge_index.long()
        for b in range(k):
            dense[b].index_put_((dst, src), self.edge_values[:, b].to(dtype), accumulate=True)
        return dense


class SparseBasisOperator:
    """A DISCO kernel ready to apply: ``K`` CSR matrices ``[N_dst, N_src]`` sharing one pattern.

    The column indices are the kernel's own source indices and the values its
    basis-major storage (no copy when the kernel was built in the applying dtype
    and device); the transposed pattern for gradients is made on first use.

    Parameters
    ----------
    edge_index : torch.Tensor, shape [2, E]
    edge_values : torch.Tensor, shape [E, K]
    n_src, n_dst : int
    dtype : torch.dtype
    device : torch.device or str
    transpose_order : torch.Tensor, shape [E], optional
        The edges sorted by source (:meth:`DiscoKernel.prepare_transpose`).
    """

    def __init__(self, edge_index: torch.Tensor, edge_values: torch.Tensor, n_src: int,
                 n_dst: int, dtype: torch.dtype, device: torch.device | str,
                 transpose_order: torch.Tensor | None = None) -> None:
        src, dst = edge_index[0].to(device), edge_index[1].to(device)
        values = edge_values.T.to(device=device, dtype=dtype)  # [K, E]
        if len(dst) > 1 and not bool((dst[1:] >= dst[:-1]).all()):  # not in CSR order
            order = torch.argsort(dst.long() * max(n_src, 1) + src.long(), stable=True)
            src, dst, values = src[order], dst[order], values[:, order]
            transpose_order = None
        self.transpose_order = None if transpose_order is None or len(transpose_order) != len(
            dst) else transpose_order.to(device)
        self.index_dtype = _index_dtype(n_src, n_dst, len(dst))
        self.src, self.dst = src.to(self.index_dtype), dst.to(self.index_dtype)
        self.values = values.contiguous()
        self.n_src, self.n_dst, self.kernel_size = n_src, n_dst, values.shape[0]
        self.rows = _row_pointer(self.dst, n_dst, self.index_dtype)
        self.matrices = [_csr(self.rows, self.src, self.values[k], (n_dst, n_src))
                         for k in range(self.kernel_size)]
        self._transposed: list[torch.Tensor] | None = None

    @property
    def transposed(self) -> list[torch.Tensor]:
        """The ``K`` matrices transposed, ``[N_src, N_dst]`` each (built on first use)."""
        if self._transposed is None:
            order = self.transpose_order
            if order is None:
                order = torch.argsort(self.src.long() * max(self.n_dst, 1) + self.dst.long(),
                                      stable=True)
            order = order.long()
            cols = self.dst[order]
            rows = _row_pointer(self.src[order], self.n_src, self.index_dtype)
            values = self.values[:, order]
            self._transposed = [_csr(rows, cols, values[k], (self.n_src, self.n_dst))
                                for k in range(self.kernel_size)]
        return self._transposed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N_src, C] -> [N_dst, K, C]``."""
        x = x.contiguous()
        out = x.new_empty(self.n_dst, self.kernel_size, x.shape[1])
        for k, matrix in enumerate(self.matrices):
            out[:, k] = torch.sparse.mm(matrix, x)
        return out

    def backward(self, grad: torch.Tensor) -> torch.Tensor:
        """The adjoint: ``[N_dst, K, C] -> [N_src, C]``."""
        out = grad.new_zeros(self.n_src, grad.shape[2])
        for k, matrix in enumerate(self.transposed):
            torch.addmm(out, matrix, grad[:, k].contiguous(), out=out)
        return out


class _BasisProduct(torch.autograd.Function):
    """``x [N_src, C] -> [N_dst, K, C]`` through a fixed :class:`SparseBasisOperator`."""

    @staticmethod
    def forward(ctx, operator: SparseBasisOperator, x: torch.Tensor) -> torch.Tensor:
        ctx.operator = operator
        return operator.forward(x)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        return None, ctx.operator.backward(grad)


def _index_dtype(n_src: int, n_dst: int, n_edges: int) -> torch.dtype:
    # 32-bit indices where they fit: the sparse BLAS works on them directly, while 64-bit
    # indices are converted on every product (a copy of the whole index array each call)
    return torch.int32 if max(n_src, n_dst, n_edges) < 2**31 - 1 else torch.int64


def _row_pointer(rows: torch.Tensor, n_rows: int, dtype: torch.dtype) -> torch.Tensor:
    pointer = torch.zeros(n_rows + 1, dtype=torch.int64, device=rows.device)
    pointer[1:] = torch.cumsum(torch.bincount(rows.long(), minlength=n_rows), 0)
    return pointer.to(dtype)


def _csr(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]):
    with warnings.catch_warnings():  # "CSR support is in beta": the ops used here are stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(rows, cols, values, size=shape, check_invariants=False)
