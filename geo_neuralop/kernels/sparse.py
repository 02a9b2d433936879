"""``DiscoKernel``: a precomputed sparse DISCO operator between two point clouds.

Edges ``dst <- src`` with ``K`` basis values each (quadrature weights and
normalization folded in), batched block-diagonally by PyG, and applied as one
CSR product per sample for all ``K`` basis functions.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch_geometric.data import Data

__all__ = ["DiscoKernel"]


class DiscoKernel(Data):
    """A sparse DISCO kernel: edges dst <- src with ``K`` basis values each.

    Attributes
    ----------
    edge_index : torch.Tensor, shape [2, E], long
        Row 0: source point index; row 1: destination point index (PyG's
        source-to-target convention). Sorted by destination, then source.
    edge_values : torch.Tensor, shape [E, K]
        ``psi_k(x_dst, x_src) * w_src``, normalized (and, for differential
        kernels, with the zero-sum correction on the diagonal and the
        ``1 / radius`` scale included).
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
    """

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "edge_index":
            return torch.tensor([[int(self.num_src_nodes)], [int(self.num_dst_nodes)]])
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

    def sparse_matrices(
        self, dtype: torch.dtype, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The kernel as CSR matrices, built once per dtype and device and cached.

        Returns
        -------
        matrix : torch.Tensor, sparse CSR, shape [N_dst * K, N_src]
            Row ``i * K + k`` holds ``psi_k(x_i, .) w``.
        matrix_t : torch.Tensor, sparse CSR, shape [N_src, N_dst * K]
            Its transpose (used by the backward pass).
        """
        cache = self.__dict__.setdefault("_sparse_cache", {})
        key = (dtype, str(device), self.edge_values.data_ptr(), self.edge_index.data_ptr())
        if key not in cache:
            cache.clear()
            cache[key] = _csr_pair(
                self.edge_index, self.edge_values, self.total_src, self.total_dst, dtype, device
            )
        return cache[key]

    def responses(self, x: torch.Tensor) -> torch.Tensor:
        """Integrals of ``x`` against every basis function at every destination point.

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
        matrix, _ = self.sparse_matrices(x.dtype, x.device)
        return torch.sparse.mm(matrix, x.contiguous()).view(self.total_dst, self.kernel_size, -1)

    def to_dense(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The kernel as a dense tensor ``[K, N_dst, N_src]`` (tests and small problems only)."""
        k = self.kernel_size
        dense = torch.zeros(k, self.total_dst, self.total_src, dtype=dtype)
        src, dst = self.edge_index
        for b in range(k):
            dense[b].index_put_((dst, src), self.edge_values[:, b].to(dtype), accumulate=True)
        return dense


def _csr(rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, shape: tuple[int, int]):
    order = torch.argsort(rows * shape[1] + cols, stable=True)
    rows, cols, vals = rows[order], cols[order], vals[order]
    crow = torch.zeros(shape[0] + 1, dtype=torch.int64, device=rows.device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=shape[0]), 0)
    # 32-bit indices where they fit: the sparse BLAS works on them directly, while 64-bit
    # indices are converted on every product (a copy of the whole index array each call)
    if max(shape) < 2**31 - 1 and len(vals) < 2**31 - 1:
        crow, cols = crow.to(torch.int32), cols.to(torch.int32)
    with warnings.catch_warnings():  # "CSR support is in beta": the ops used here are stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, vals, size=shape, check_invariants=False)


def _csr_pair(edge_index, edge_values, n_src, n_dst, dtype, device):
    k = edge_values.shape[1]
    src, dst = edge_index[0].to(device), edge_index[1].to(device)
    vals = edge_values.to(device=device, dtype=dtype)
    rows = (dst[:, None] * k + torch.arange(k, device=device)).reshape(-1)
    cols = src[:, None].expand(-1, k).reshape(-1)
    vals = vals.reshape(-1)
    nonzero = vals != 0
    rows, cols, vals = rows[nonzero], cols[nonzero], vals[nonzero]
    matrix = _csr(rows, cols, vals, (n_dst * k, n_src))
    matrix_t = _csr(cols, rows, vals, (n_src, n_dst * k))
    return matrix, matrix_t
