"""``KernelStore``: per-geometry precomputed operators (DISCO kernels, graphs) on disk.

Datasets of many meshes (a cylinder set with a mesh per trajectory) need every
mesh's kernels, and building them in the training step costs as much as the step.
The store keeps them beside the dataset, built once per mesh (typically in
DataLoader workers, see :class:`~geo_neuralop.data.PrecomputeKernels`)::

    <root>/v1/<recipe key>/recipe.json        the kernel parameters, for humans
    <root>/v1/<recipe key>/<geometry key>.pt  one file per geometry

The *recipe* is a plain dict of everything the kernels depend on besides the
geometry (a model's :meth:`~geo_neuralop.models.MeshNO.kernel_recipe`: radii, basis,
latent grid, dtype, and a construction version); the *geometry key* is a digest
of the positions, quadrature weights, faces and grid metadata of a sample. A
change of either gives another file, so stale kernels are never read; the
``v1`` level is the file format's version. Files are written atomically (a
reader sees a whole file or none; concurrent workers that build the same
geometry both write a complete file) and read with ``torch.load(...,
weights_only=True)``: a file that cannot be read or does not hold what its name
says is rebuilt.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.kernels.sparse import DiscoKernel, SparseBasisOperator
from geo_neuralop.utils.atomic import atomic_path
from geo_neuralop.utils.cache import fingerprint

__all__ = ["STORE_FORMAT", "KernelStore", "geometry_key"]

#: Version of the file layout and encoding.
STORE_FORMAT = 1

_GEOMETRY_KEYS = ("grid_shape", "grid", "domain", "periodic")


def geometry_key(cloud: PointCloud) -> str:
    """A digest of everything precomputed operators read from a sample's geometry.

    Positions, quadrature weights, manifold, faces and grid metadata; not the
    fields (``x``, ``y``), so all samples of one mesh share a key.
    """
    faces = getattr(cloud, "faces", None)
    return fingerprint(cloud.pos, cloud.weights, str(getattr(cloud, "manifold", None)),
                       faces if isinstance(faces, torch.Tensor) else None,
                       *(repr(getattr(cloud, key, None)) for key in _GEOMETRY_KEYS))


def recipe_key(recipe: Mapping[str, Any]) -> str:
    """A digest of a plain recipe (JSON with sorted keys)."""
    return fingerprint(_recipe_json(recipe))[:20]


def _recipe_json(recipe: Mapping[str, Any]) -> str:
    if not isinstance(recipe, Mapping):
        raise TypeError(f"recipe must be a mapping of plain values, got {type(recipe).__name__}")
    try:
        return json.dumps(recipe, sort_keys=True)
    except TypeError as error:
        raise TypeError(f"recipe must hold plain values (JSON): {error}") from None


class KernelStore:
    """Precomputed per-geometry operators of one recipe, kept in a folder.

    Parameters
    ----------
    root : path
        Folder of the store, e.g. ``<dataset>/kernels`` (created if missing).
    recipe : mapping
        Plain values that, with a geometry, determine the operators (see the
        module docstring).

    Examples
    --------
    >>> import tempfile
    >>> from geo_neuralop.geometry import jittered_rectangle_mesh
    >>> from geo_neuralop.kernels import disco_kernel
    >>> mesh = jittered_rectangle_mesh((6, 5))
    >>> store = KernelStore(tempfile.mkdtemp(), {"radius": 0.5})
    >>> build = lambda: {"local": disco_kernel(mesh, radius=0.5)}
    >>> a = store.get_or_build(geometry_key(mesh), build)
    >>> b = store.get_or_build(geometry_key(mesh), build)  # read from disk
    >>> store.builds, len(store), torch.equal(a["local"].edge_values, b["local"].edge_values)
    (1, 1, True)
    """

    def __init__(self, root: str | os.PathLike, recipe: Mapping[str, Any]) -> None:
        text = _recipe_json(recipe)
        self.recipe = json.loads(text)
        self.root = Path(root)
        self.folder = self.root / f"v{STORE_FORMAT}" / recipe_key(recipe)
        self.folder.mkdir(parents=True, exist_ok=True)
        card = self.folder / "recipe.json"
        if not card.exists():
            with atomic_path(card) as tmp:
                tmp.write_text(json.dumps(self.recipe, indent=2, sort_keys=True) + "\n")
        self.builds = 0  # operators built (misses) by this instance
        self.loads = 0  # operators read from disk by this instance

    def path(self, key: str) -> Path:
        """The file of geometry ``key``."""
        if not isinstance(key, str) or not key or not key.isalnum():
            raise ValueError(f"a geometry key is a non-empty alphanumeric digest, got {key!r}")
        return self.folder / f"{key}.pt"

    def load(self, key: str) -> dict[str, Any] | None:
        """The operators of geometry ``key``, or None when absent or unreadable."""
        path = self.path(key)
        if not path.exists():
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if (not isinstance(payload, dict) or payload.get("format") != STORE_FORMAT
                    or payload.get("geometry") != key
                    or payload.get("recipe") != _recipe_json(self.recipe)):
                return None
            values = {name: _decode(item) for name, item in payload["operators"].items()}
        except (OSError, RuntimeError, ValueError, KeyError, TypeError, EOFError,
                pickle.UnpicklingError):  # a damaged or foreign file: rebuild it
            return None
        self.loads += 1
        return values

    def save(self, key: str, operators: Mapping[str, Any]) -> Path:
        """Write the operators of geometry ``key`` atomically; returns the file."""
        payload = {"format": STORE_FORMAT, "geometry": key,
                   "recipe": _recipe_json(self.recipe),
                   "operators": {name: _encode(name, value) for name, value in operators.items()}}
        path = self.path(key)
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        return path

    def get_or_build(self, key: str, build: Callable[[], Mapping[str, Any]]) -> dict[str, Any]:
        """The operators of geometry ``key``: read from disk, or built and written."""
        found = self.load(key)
        if found is not None:
            return found
        operators = dict(build())
        self.builds += 1
        self.save(key, operators)
        return operators

    def files(self) -> list[Path]:
        """The operator files of this recipe."""
        return sorted(self.folder.glob("*.pt"))

    def __len__(self) -> int:
        return len(self.files())

    def nbytes(self) -> int:
        """Bytes on disk of this recipe's operator files."""
        return sum(p.stat().st_size for p in self.files())

    def __repr__(self) -> str:
        return f"KernelStore({str(self.folder)!r}, {len(self)} geometries)"


def _encode(name: str, value: Any) -> dict:
    if isinstance(value, DiscoKernel):
        if isinstance(value.num_src_nodes, torch.Tensor):
            raise TypeError(f"operator {name!r} is a batch of kernels; store one per geometry")
        out = {"kind": "disco_kernel", "edge_index": value.edge_index,
               "basis_values": value.edge_values.T.contiguous()}
        # the applied form's transposed pattern, when prepared: loading then sorts nothing
        op = value.__dict__.get("_operators", {}).get((value.edge_values.dtype, "cpu"))
        transposed = None if op is None else op.transposed_state()
        if transposed is not None:
            out["transposed"] = transposed
        for attr in ("num_src_nodes", "num_dst_nodes", "num_nodes", "radius", "normalization",
                     "differential", "manifold", "basis"):
            item = getattr(value, attr, None)
            out[attr] = item
        return out
    if isinstance(value, torch.Tensor):
        return {"kind": "tensor", "value": value}
    raise TypeError(f"operator {name!r} must be a DiscoKernel or a tensor, got "
                    f"{type(value).__name__}")


def _decode(item: dict) -> Any:
    if item["kind"] == "tensor":
        return item["value"]
    if item["kind"] != "disco_kernel":
        raise ValueError(f"unknown operator kind {item['kind']!r}")
    kernel = DiscoKernel(edge_index=item["edge_index"], edge_values=item["basis_values"].T)
    for attr in ("num_src_nodes", "num_dst_nodes", "num_nodes", "radius", "normalization",
                 "differential", "manifold", "basis"):
        if item.get(attr) is not None:
            setattr(kernel, attr, item[attr])
    if "transposed" in item:
        kernel.attach_operator(SparseBasisOperator.of_kernel(
            kernel.edge_index, kernel.edge_values, kernel.total_src, kernel.total_dst,
            item["transposed"]))
    return kernel
