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
    src_fingerprint, dst_fingerprint : str
        :func:`~geo_neuralop.geometry.fingerprint.geometry_fingerprint` of the clouds
        the kernel was built from (lists after batching).

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
        return super().__inc__(key, value, *args, **kwargs)

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
        built once per dtype and device and cached (see :class:`SparseBasisOperator`).

        The cached operator travels with the kernel when it is pickled (DataLoader
        workers, ``torch.save``), so one prepared where kernels are made
        (:meth:`prepare_operator`) costs nothing in the training step.
        """
        cache = self.__dict__.setdefault("_operators", {})
        key = (dtype, str(torch.device(device)))
        op = cache.get(key)
        if op is None or not op.matches(self.edge_index, self.edge_values):
            op = SparseBasisOperator.from_edges(self.edge_index, self.edge_values,
                                                self.total_src, self.total_dst, dtype, device)
            cache[key] = op
        return op

    def attach_operator(self, operator: SparseBasisOperator) -> DiscoKernel:
        """Keep ``operator`` (made from this kernel's tensors) as its applied form for the
        operator's dtype and device. Returns ``self``."""
        if not operator.matches(self.edge_index, self.edge_values):
            raise ValueError("the operator was not made from this kernel's edges")
        cache = self.__dict__.setdefault("_operators", {})
        cache[(operator.values.dtype, str(operator.values.device))] = operator
        return self

    def prepare_operator(self, dtype: torch.dtype | None = None,
                         device: torch.device | str = "cpu",
                         transpose: bool = True) -> DiscoKernel:
        """Build (once) the applied form, including the transposed pattern that gradients
        need, so that applying the kernel later sorts and gathers nothing. Do it where
        kernels are made (data-loading workers). Returns ``self``."""
        op = self.operator(self.edge_values.dtype if dtype is None else dtype, device)
        if transpose:
            op.prepare_transpose()
        return self

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

    Held as plain tensors (a row pointer, the kernel's own source indices and its
    basis-major values, no copy when the kernel was built in the applying dtype and
    device; and, once :meth:`prepare_transpose` ran, the transposed pattern), so it
    pickles cheaply; the CSR wrappers are made on first use in each process.

    Parameters
    ----------
    rows : torch.Tensor, shape [N_dst + 1]
        Row pointer (int32, or int64 for huge kernels).
    src : torch.Tensor, shape [E]
        Column (source) index of every edge, in CSR order.
    values : torch.Tensor, shape [K, E]
    n_src, n_dst : int
    """

    def __init__(self, rows: torch.Tensor, src: torch.Tensor, values: torch.Tensor, n_src: int,
                 n_dst: int) -> None:
        self.rows, self.src, self.values = rows, src, values
        self.n_src, self.n_dst, self.kernel_size = n_src, n_dst, values.shape[0]
        self.dst: torch.Tensor | None = None  # the destination of every edge (for transposing)
        self.transposed_parts: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.source: tuple = ()
        self._matrices: list[torch.Tensor] | None = None
        self._matrices_t: list[torch.Tensor] | None = None

    @classmethod
    def from_edges(cls, edge_index: torch.Tensor, edge_values: torch.Tensor, n_src: int,
                   n_dst: int, dtype: torch.dtype,
                   device: torch.device | str) -> SparseBasisOperator:
        """The operator of edges ``[2, E]`` (src, dst) with values ``[E, K]``."""
        src, dst = edge_index[0].to(device), edge_index[1].to(device)
        values = edge_values.T.to(device=device, dtype=dtype)  # [K, E]
        if len(dst) > 1 and not bool((dst[1:] >= dst[:-1]).all()):  # not in CSR order
            order = torch.argsort(dst.long() * max(n_src, 1) + src.long(), stable=True)
            src, dst, values = src[order], dst[order], values[:, order]
        index_dtype = _index_dtype(n_src, n_dst, len(dst))
        src, dst = src.to(index_dtype), dst.to(index_dtype)
        op = cls(_row_pointer(dst, n_dst, index_dtype), src, values.contiguous(), n_src, n_dst)
        op.dst = dst
        op.source = (edge_index.data_ptr(), edge_values.data_ptr())
        return op

    def matches(self, edge_index: torch.Tensor, edge_values: torch.Tensor) -> bool:
        """Whether this operator was made from these edges (the same tensors, or tensors
        sharing storage with this operator's, as after unpickling both together)."""
        if tuple(edge_values.shape) != (self.values.shape[1], self.kernel_size):
            return False
        if self.source == (edge_index.data_ptr(), edge_values.data_ptr()):
            return True
        return (_same_storage(self.values, edge_values) and self.dst is not None
                and _same_storage(self.src, edge_index))

    def prepare_transpose(self) -> SparseBasisOperator:
        """Make (once) the transposed pattern: rows by source, columns the destinations."""
        if self.transposed_parts is None:
            if self.dst is None:
                raise ValueError("this operator has no destination indices to transpose")
            key = self.src.long() * max(self.n_dst, 1) + self.dst.long()
            order = torch.argsort(key, stable=True)
            counts = torch.bincount(self.src.long(), minlength=self.n_src)
            rows = torch.zeros(self.n_src + 1, dtype=torch.int64, device=counts.device)
            rows[1:] = torch.cumsum(counts, 0)
            self.transposed_parts = (rows.to(self.src.dtype), self.dst[order],
                                     self.values[:, order].contiguous())
        return self

    @property
    def matrices(self) -> list[torch.Tensor]:
        """The ``K`` matrices ``[N_dst, N_src]``."""
        if self._matrices is None:
            self._matrices = [_csr(self.rows, self.src, self.values[k], (self.n_dst, self.n_src))
                              for k in range(self.kernel_size)]
        return self._matrices

    @property
    def transposed(self) -> list[torch.Tensor]:
        """The ``K`` matrices transposed, ``[N_src, N_dst]`` each (built on first use)."""
        if self._matrices_t is None:
            rows, cols, values = self.prepare_transpose().transposed_parts
            self._matrices_t = [_csr(rows, cols, values[k], (self.n_src, self.n_dst))
                                for k in range(self.kernel_size)]
        return self._matrices_t

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_matrices"] = state["_matrices_t"] = None  # CSR wrappers: made again
        return state

    def transposed_state(self) -> dict[str, torch.Tensor] | None:
        """The transposed pattern as plain tensors (for storing beside the kernel), or None."""
        if self.transposed_parts is None:
            return None
        rows, cols, values = self.transposed_parts
        return {"rows": rows, "cols": cols, "values": values}

    @classmethod
    def of_kernel(cls, edge_index: torch.Tensor, edge_values: torch.Tensor, n_src: int,
                  n_dst: int, transposed: dict[str, torch.Tensor] | None = None,
                  rows: torch.Tensor | None = None) -> SparseBasisOperator:
        """The operator of a kernel stored in CSR order and basis-major (no copy), with a
        stored row pointer and transposed pattern (:meth:`transposed_state`) if given."""
        values = edge_values.T
        if not values.is_contiguous():
            raise ValueError("edge_values must be basis-major (a transposed view of [K, E])")
        src, dst = edge_index[0], edge_index[1]
        rows = _row_pointer(dst, n_dst, src.dtype) if rows is None else rows
        op = cls(rows, src, values, n_src, n_dst)
        op.dst = dst
        op.source = (edge_index.data_ptr(), edge_values.data_ptr())
        if transposed is not None:
            op.transposed_parts = (transposed["rows"], transposed["cols"], transposed["values"])
        return op

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


def _same_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.device == b.device and \
        a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


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
