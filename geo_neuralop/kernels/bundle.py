"""``KernelBundle``: a sample's precomputed operators in one contiguous buffer (and file).

A DataLoader worker hands every tensor of a sample to the training process
through shared memory, one segment and one file descriptor per tensor: the four
kernels of a MeshNO sample with their applied forms are two dozen tensors, and
passing them costs more than building the sample. A bundle packs them into one
byte buffer and unpacks into views of it, with each kernel's applied form
(:class:`~geo_neuralop.kernels.SparseBasisOperator`) attached.

A bundle is also a file format: a small JSON header and the buffer, which
:meth:`KernelBundle.load` memory-maps. A :class:`BundleFile` is a picklable
reference to such a file: a worker passes the file name, and the training process
maps the file (the kernels come from the page cache, nothing is copied between
processes). :class:`~geo_neuralop.data.KernelStore` keeps its kernels this way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geo_neuralop.kernels.sparse import DiscoKernel, SparseBasisOperator

__all__ = ["BundleFile", "KernelBundle"]

_SCALARS = ("num_src_nodes", "num_dst_nodes", "num_nodes", "radius", "normalization",
            "differential", "manifold", "basis")
_ALIGN = 64
_MAGIC = b"GNOKB001"
_DTYPES = {str(d): d for d in (torch.float16, torch.bfloat16, torch.float32, torch.float64,
                               torch.int32, torch.int64, torch.uint8, torch.bool)}


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty(0, dtype=dtype).element_size()


class KernelBundle:
    """Named DISCO kernels (with their applied forms, if prepared) and tensors in one buffer.

    Parameters
    ----------
    operators : mapping of str to DiscoKernel or torch.Tensor
        Single kernels (not PyG batches), in the layout :func:`disco_kernel` builds
        (CSR order, basis-major values), and plain tensors (e.g. graphs).
    meta : mapping, optional
        Plain values kept in the header (e.g. what the operators were built from).

    Examples
    --------
    >>> from geo_neuralop.geometry import jittered_rectangle_mesh
    >>> from geo_neuralop.kernels import disco_kernel
    >>> kernel = disco_kernel(jittered_rectangle_mesh((6, 5)), radius=0.5).prepare_operator()
    >>> bundle = KernelBundle({"local": kernel})
    >>> bundle.unpack()["local"].edge_values.data_ptr() >= bundle.buffer.data_ptr()
    True
    """

    def __init__(self, operators: Mapping[str, DiscoKernel | torch.Tensor],
                 meta: Mapping[str, Any] | None = None) -> None:
        parts: list[tuple[str, str, torch.Tensor]] = []
        self.scalars: dict[str, dict[str, Any] | None] = {}
        for name, value in operators.items():
            if isinstance(value, torch.Tensor):
                parts.append((name, "tensor", value.detach().cpu()))
                self.scalars[name] = None
                continue
            if not isinstance(value, DiscoKernel):
                raise TypeError(f"operators[{name!r}] must be a DiscoKernel or a tensor, got "
                                f"{type(value).__name__}")
            if isinstance(value.num_src_nodes, torch.Tensor):
                raise TypeError(f"operators[{name!r}] is a batch; bundle single kernels")
            parts.append((name, "edge_index", value.edge_index))
            parts.append((name, "values", value.edge_values.T))
            op = value.__dict__.get("_operators", {}).get(
                (value.edge_values.dtype, str(value.edge_values.device)))
            if op is not None:
                parts.append((name, "rows", op.rows))
                for key, part in (op.transposed_state() or {}).items():
                    parts.append((name, f"t_{key}", part))
            self.scalars[name] = {k: _plain(getattr(value, k, None)) for k in _SCALARS}
        offsets, total = [], 0
        for _, _, tensor in parts:
            offsets.append(total)
            total += -(-tensor.numel() * tensor.element_size() // _ALIGN) * _ALIGN
        self.buffer = torch.empty(total, dtype=torch.uint8)
        self.layout: list[tuple[str, str, str, list[int], int]] = []
        for (name, key, tensor), offset in zip(parts, offsets, strict=True):
            size = tensor.numel() * tensor.element_size()
            self.buffer[offset:offset + size] = tensor.contiguous().view(-1).view(torch.uint8)
            self.layout.append((name, key, str(tensor.dtype), list(tensor.shape), offset))
        self.meta = dict(meta or {})
        self._unpacked: dict[str, Any] | None = None

    @property
    def nbytes(self) -> int:
        """Bytes of the buffer."""
        return int(self.buffer.numel())

    def unpack(self) -> dict[str, Any]:
        """The kernels and tensors, as views of the buffer, applied forms attached (once)."""
        if self._unpacked is None:
            arrays: dict[str, dict[str, torch.Tensor]] = {}
            for name, key, dtype_name, shape, offset in self.layout:
                dtype = _DTYPES[dtype_name]
                size = int(np.prod(shape, dtype=np.int64)) * _itemsize(dtype)
                view = self.buffer[offset:offset + size].view(dtype).view(shape)
                arrays.setdefault(name, {})[key] = view
            out: dict[str, Any] = {}
            for name, parts in arrays.items():
                if "tensor" in parts:
                    out[name] = parts["tensor"]
                    continue
                kernel = DiscoKernel(edge_index=parts["edge_index"], edge_values=parts["values"].T)
                for key, value in (self.scalars[name] or {}).items():
                    if value is not None:
                        setattr(kernel, key, value)
                if "rows" in parts:
                    transposed = {k[2:]: v for k, v in parts.items() if k.startswith("t_")}
                    kernel.attach_operator(SparseBasisOperator.of_kernel(
                        kernel.edge_index, kernel.edge_values, kernel.total_src, kernel.total_dst,
                        transposed or None, rows=parts["rows"]))
                out[name] = kernel
            self._unpacked = out
        return self._unpacked

    # ------------------------------------------------------------------ files
    def write(self, path: str | os.PathLike) -> Path:
        """Write the bundle to ``path`` (header, then the buffer); not atomic by itself."""
        header = json.dumps({"layout": self.layout, "scalars": self.scalars,
                             "meta": self.meta}).encode()
        start = -(-(len(_MAGIC) + 8 + len(header)) // _ALIGN) * _ALIGN
        path = Path(path)
        with open(path, "wb") as f:
            f.write(_MAGIC)
            f.write(len(header).to_bytes(8, "little"))
            f.write(header)
            f.write(b"\0" * (start - len(_MAGIC) - 8 - len(header)))
            f.write(self.buffer.numpy().tobytes())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True) -> KernelBundle:
        """A bundle written by :meth:`write`; ``mmap``: the buffer maps the file
        (copy-on-write), so loading reads nothing until the kernels are used.

        Raises
        ------
        ValueError
            The file is not a bundle, or is truncated.
        """
        path = Path(path)
        with open(path, "rb") as f:
            if f.read(len(_MAGIC)) != _MAGIC:
                raise ValueError(f"{path} is not a kernel bundle file")
            length = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(length).decode())
        start = -(-(len(_MAGIC) + 8 + length) // _ALIGN) * _ALIGN
        layout = [tuple(entry) for entry in header["layout"]]
        size = 0
        for _, _, dtype_name, shape, offset in layout:
            end = offset + int(np.prod(shape, dtype=np.int64)) * _itemsize(_DTYPES[dtype_name])
            size = max(size, -(-end // _ALIGN) * _ALIGN)
        if path.stat().st_size < start + size:
            raise ValueError(f"{path} is truncated: {path.stat().st_size} bytes, the header "
                             f"describes {start + size}")
        bundle = cls.__new__(cls)
        if mmap and size:
            data = np.memmap(path, dtype=np.uint8, mode="c", offset=start, shape=(size,))
        else:
            with open(path, "rb") as f:
                f.seek(start)
                data = np.frombuffer(bytearray(f.read(size)), dtype=np.uint8)
        bundle.buffer = torch.from_numpy(data)
        bundle.layout = layout
        bundle.scalars = header["scalars"]
        bundle.meta = header.get("meta", {})
        bundle._unpacked = None
        return bundle

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_unpacked"] = None  # views are made again from the buffer
        return state

    def __repr__(self) -> str:
        return f"KernelBundle({sorted(self.scalars)}, {self.nbytes} bytes)"


class BundleFile:
    """A picklable reference to a bundle file: ``unpack()`` maps it where it is used.

    Parameters
    ----------
    path : path
        A file written by :meth:`KernelBundle.write`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        self._bundle: KernelBundle | None = None

    def unpack(self) -> dict[str, Any]:
        """The operators of the file (memory-mapped on first use in this process)."""
        if self._bundle is None:
            self._bundle = KernelBundle.load(self.path)
        return self._bundle.unpack()

    def __getstate__(self) -> dict:
        return {"path": self.path, "_bundle": None}

    def __repr__(self) -> str:
        return f"BundleFile({self.path!r})"


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    return value
