"""``KernelBundle``: a sample's precomputed kernels in one contiguous buffer.

A DataLoader worker hands every tensor of a sample to the training process
through shared memory, one segment and one file descriptor per tensor: the four
kernels of a MeshNO sample with their applied forms are two dozen tensors, and
passing them costs more than building the sample. A bundle packs them into one
byte buffer (one segment) and unpacks into views of it, with each kernel's applied
form (:class:`~geo_neuralop.kernels.SparseBasisOperator`) attached, so the
training step receives ready kernels for the price of one tensor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from geo_neuralop.kernels.sparse import DiscoKernel, SparseBasisOperator

__all__ = ["KernelBundle"]

_SCALARS = ("num_src_nodes", "num_dst_nodes", "num_nodes", "radius", "normalization",
            "differential", "manifold", "basis")
_ALIGN = 16


class KernelBundle:
    """Named DISCO kernels (with their applied forms, if prepared) in one byte buffer.

    Parameters
    ----------
    kernels : mapping of str to DiscoKernel
        Single kernels (not PyG batches), in the layout :func:`disco_kernel` builds
        (CSR order, basis-major values).

    Examples
    --------
    >>> from geo_neuralop.geometry import jittered_rectangle_mesh
    >>> from geo_neuralop.kernels import disco_kernel
    >>> kernel = disco_kernel(jittered_rectangle_mesh((6, 5)), radius=0.5).prepare_operator()
    >>> bundle = KernelBundle({"local": kernel})
    >>> bundle.unpack()["local"].edge_values.data_ptr() >= bundle.buffer.data_ptr()
    True
    """

    def __init__(self, kernels: Mapping[str, DiscoKernel]) -> None:
        parts: list[tuple[str, str, torch.Tensor]] = []
        self.scalars: dict[str, dict[str, Any]] = {}
        for name, kernel in kernels.items():
            if not isinstance(kernel, DiscoKernel):
                raise TypeError(f"kernels[{name!r}] must be a DiscoKernel, got "
                                f"{type(kernel).__name__}")
            if isinstance(kernel.num_src_nodes, torch.Tensor):
                raise TypeError(f"kernels[{name!r}] is a batch; bundle single kernels")
            parts.append((name, "edge_index", kernel.edge_index))
            parts.append((name, "values", kernel.edge_values.T))
            op = kernel.__dict__.get("_operators", {}).get(
                (kernel.edge_values.dtype, str(kernel.edge_values.device)))
            if op is not None:
                parts.append((name, "rows", op.rows))
                transposed = op.transposed_state()
                for key, value in (transposed or {}).items():
                    parts.append((name, f"t_{key}", value))
            self.scalars[name] = {k: getattr(kernel, k, None) for k in _SCALARS}
        offsets, total = [], 0
        for _, _, tensor in parts:
            offsets.append(total)
            total += -(-tensor.numel() * tensor.element_size() // _ALIGN) * _ALIGN
        self.buffer = torch.empty(total, dtype=torch.uint8)
        self.layout = []
        for (name, key, tensor), offset in zip(parts, offsets, strict=True):
            size = tensor.numel() * tensor.element_size()
            self.buffer[offset:offset + size] = tensor.contiguous().view(-1).view(torch.uint8)
            self.layout.append((name, key, tensor.dtype, tuple(tensor.shape), offset))
        self._unpacked: dict[str, DiscoKernel] | None = None

    @property
    def nbytes(self) -> int:
        """Bytes of the buffer."""
        return int(self.buffer.numel())

    def unpack(self) -> dict[str, DiscoKernel]:
        """The kernels, as views of the buffer, applied forms attached (made once)."""
        if self._unpacked is None:
            arrays: dict[str, dict[str, torch.Tensor]] = {}
            for name, key, dtype, shape, offset in self.layout:
                count = 1
                for n in shape:
                    count *= n
                size = count * torch.empty(0, dtype=dtype).element_size()
                view = self.buffer[offset:offset + size].view(dtype).view(shape)
                arrays.setdefault(name, {})[key] = view
            kernels = {}
            for name, parts in arrays.items():
                kernel = DiscoKernel(edge_index=parts["edge_index"], edge_values=parts["values"].T)
                for key, value in self.scalars[name].items():
                    if value is not None:
                        setattr(kernel, key, value)
                if "rows" in parts:
                    transposed = {k[2:]: v for k, v in parts.items() if k.startswith("t_")}
                    kernel.attach_operator(SparseBasisOperator.of_kernel(
                        kernel.edge_index, kernel.edge_values, kernel.total_src, kernel.total_dst,
                        transposed or None, rows=parts["rows"]))
                kernels[name] = kernel
            self._unpacked = kernels
        return self._unpacked

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_unpacked"] = None  # views are made again from the buffer
        return state

    def __repr__(self) -> str:
        return f"KernelBundle({sorted(self.scalars)}, {self.nbytes} bytes)"
