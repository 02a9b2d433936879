"""``KernelStore``: per-geometry precomputed operators (DISCO kernels, graphs) on disk.

Datasets of many meshes (a cylinder set with a mesh per trajectory) need every
mesh's kernels, and building them in the training step costs as much as the step.
The store keeps them beside the dataset, built once per mesh (typically in
DataLoader workers, see :class:`~geo_neuralop.data.PrecomputeKernels`)::

    <root>/v2/<recipe key>/recipe.json        the kernel parameters, for humans
    <root>/v2/<recipe key>/<geometry key>.kb  one file per geometry

The *recipe* is a plain dict of everything the kernels depend on besides the
geometry (a model's :meth:`~geo_neuralop.models.MeshNO.kernel_recipe`: radii, basis,
latent grid, dtype, and a construction version); the *geometry key* is a digest
of the positions, quadrature weights, faces and grid metadata of a sample. A
change of either gives another file, so stale kernels are never read; the
``v2`` level is the file format's version. A file is a
:class:`~geo_neuralop.kernels.KernelBundle` (a JSON header, then the kernels, their
applied forms and any tensors in one buffer), written atomically (a reader sees a
whole file or none; concurrent workers that build the same geometry both write a
complete file) and memory-mapped when read: the training process can map the
files itself (:meth:`KernelStore.reference`), so the kernels never pass between
processes. A file that cannot be read or does not hold what its header says (its
geometry, recipe and format) is rebuilt.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from geo_neuralop.geometry.fingerprint import geometry_fingerprint
from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.kernels.bundle import BundleFile, KernelBundle
from geo_neuralop.utils.atomic import atomic_path
from geo_neuralop.utils.cache import fingerprint

__all__ = ["STORE_FORMAT", "KernelStore", "geometry_key"]

#: Version of the file layout and encoding (2: kernel bundle files).
STORE_FORMAT = 2



def geometry_key(cloud: PointCloud) -> str:
    """A digest of everything precomputed operators read from a sample's geometry.

    Positions, quadrature weights, manifold, faces and grid metadata; not the
    fields (``x``, ``y``), so all samples of one mesh share a key.
    """
    faces = getattr(cloud, "faces", None)
    # grid metadata as geometry_fingerprint reads it (tuples and lists alike: a PyG batch
    # may turn one into the other), so a sample and its batched copy share a key
    return fingerprint(geometry_fingerprint(cloud),
                       faces if isinstance(faces, torch.Tensor) else None)


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
        self.builds = 0  # operators built (misses) by this instance
        self.loads = 0  # operators read from disk by this instance

    def path(self, key: str) -> Path:
        """The file of geometry ``key``."""
        if not isinstance(key, str) or not key or not key.isalnum():
            raise ValueError(f"a geometry key is a non-empty alphanumeric digest, got {key!r}")
        return self.folder / f"{key}.kb"

    def _meta(self, key: str) -> dict:
        return {"format": STORE_FORMAT, "geometry": key, "recipe": _recipe_json(self.recipe)}

    def bundle(self, key: str) -> KernelBundle | None:
        """The memory-mapped bundle of geometry ``key``, or None when absent, unreadable or
        not this recipe's."""
        path = self.path(key)
        if not path.exists():
            return None
        try:
            bundle = KernelBundle.load(path)
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None  # a damaged or foreign file: rebuild it
        return bundle if bundle.meta == self._meta(key) else None

    def load(self, key: str) -> dict[str, Any] | None:
        """The operators of geometry ``key`` (views of the mapped file, applied forms
        attached), or None when absent or unreadable."""
        bundle = self.bundle(key)
        if bundle is None:
            return None
        self.loads += 1
        return bundle.unpack()

    def _create(self) -> None:
        """The store's folder and its recipe card, made at the first write (so a store that
        is never written leaves nothing behind, e.g. in a run folder not yet claimed)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        card = self.folder / "recipe.json"
        if not card.exists():
            with atomic_path(card) as tmp:
                tmp.write_text(json.dumps(self.recipe, indent=2, sort_keys=True) + "\n")

    def save(self, key: str, operators: Mapping[str, Any]) -> Path:
        """Write the operators of geometry ``key`` atomically; returns the file."""
        bundle = KernelBundle(operators, meta=self._meta(key))
        path = self.path(key)
        self._create()
        with atomic_path(path) as tmp:
            bundle.write(tmp)
        return path

    def ensure(self, key: str, build: Callable[[], Mapping[str, Any]]) -> Path:
        """The file of geometry ``key``, built and written first when it is missing or
        unreadable."""
        if self.bundle(key) is None:
            self.save(key, dict(build()))
            self.builds += 1
        return self.path(key)

    def reference(self, key: str) -> BundleFile:
        """A picklable reference to geometry ``key``'s file (see :class:`BundleFile`)."""
        return BundleFile(self.path(key))

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
        return sorted(self.folder.glob("*.kb"))

    def __len__(self) -> int:
        return len(self.files())

    def nbytes(self) -> int:
        """Bytes on disk of this recipe's operator files."""
        return sum(p.stat().st_size for p in self.files())

    def __repr__(self) -> str:
        return f"KernelStore({str(self.folder)!r}, {len(self)} geometries)"
