"""Sample transforms that attach per-geometry precomputed operators to each sample.

:class:`PrecomputeKernels` runs a model's kernel construction (e.g.
:meth:`~geo_neuralop.models.MeshNO.build_kernels`) once per geometry, in the
process that loads the sample (DataLoader workers), optionally through a
:class:`~geo_neuralop.data.KernelStore` on disk, so the training step receives
ready kernels. :class:`AttachKernels` does the same for plain
:func:`~geo_neuralop.kernels.disco_kernel` arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch_geometric.data import Batch

from geo_neuralop.data.kernel_store import KernelStore, geometry_key
from geo_neuralop.geometry import PointCloud
from geo_neuralop.kernels import DiscoKernel, KernelBundle, disco_kernel
from geo_neuralop.utils.cache import BoundedCache

__all__ = ["AttachKernels", "PrecomputeKernels", "batch_kernels", "geometry_of"]

_METADATA = ("grid_shape", "domain", "periodic", "grid")


def geometry_of(sample: PointCloud) -> PointCloud:
    """The geometry of a sample alone: positions, weights, manifold, faces, grid metadata."""
    extra = {k: getattr(sample, k) for k in _METADATA if getattr(sample, k, None) is not None}
    faces = getattr(sample, "faces", None)
    if faces is not None:
        extra["faces"] = faces
    return PointCloud(sample.pos, sample.weights, manifold=sample.manifold,
                      allow_duplicates=getattr(sample, "grid", None) == "equiangular", **extra)


class PrecomputeKernels:
    """A transform that attaches precomputed per-geometry operators to each sample.

    Parameters
    ----------
    build : callable
        ``build(geometry) -> {name: operator}`` (DiscoKernels or tensors), e.g. a
        model's ``build_kernels``; it receives the sample's geometry only. The
        kernels' applied form (:meth:`~geo_neuralop.kernels.DiscoKernel.prepare_operator`)
        is made here too, so the training step only wraps it.
    recipe : mapping, optional
        Plain values the operators depend on besides the geometry (a model's
        ``kernel_recipe()``); needed with ``store``.
    store : KernelStore or path, optional
        Keep the operators on disk (a path makes ``KernelStore(path, recipe)``):
        each geometry is built once for all epochs, runs and workers.
    max_cached : int
        Geometries whose operators the transform keeps in memory (per process).
    bundle : bool
        Attach the DISCO kernels as one object, ``sample.kernel_bundle``, rather than
        one attribute per kernel: with a store, a :class:`~geo_neuralop.kernels.
        BundleFile` (the training process memory-maps the store's file: nothing is
        copied between processes), otherwise a :class:`~geo_neuralop.kernels.
        KernelBundle` (one shared-memory segment instead of one per tensor).
        Models that take precomputed kernels (MeshNO) read either.

    Examples
    --------
    >>> import tempfile, torch
    >>> from geo_neuralop.geometry import jittered_rectangle_mesh
    >>> from geo_neuralop.models import MeshNO
    >>> model = MeshNO(1, 1, latent_shape=(8, 8), hidden_channels=4, n_layers=1)
    >>> transform = PrecomputeKernels(model.build_kernels, model.kernel_recipe(),
    ...                               store=tempfile.mkdtemp())
    >>> sample = transform(jittered_rectangle_mesh((10, 6)))
    >>> sample.x = torch.randn(sample.num_nodes, 1)
    >>> model(sample).shape  # the attached kernels are used, none is built
    torch.Size([60, 1])
    """

    def __init__(self, build: Callable[[PointCloud], Mapping[str, Any]],
                 recipe: Mapping[str, Any] | None = None,
                 store: KernelStore | str | Any | None = None, max_cached: int = 16,
                 bundle: bool = True) -> None:
        if not callable(build):
            raise TypeError(f"build must be callable, got {type(build).__name__}")
        if store is not None and not isinstance(store, KernelStore):
            if recipe is None:
                raise ValueError("a kernel store needs the recipe the operators depend on")
            store = KernelStore(store, recipe)
        self.build, self.recipe, self.store, self.bundle = build, recipe, store, bool(bundle)
        self.cache: BoundedCache[dict] = BoundedCache(max_cached)

    def operators(self, sample: PointCloud) -> dict[str, Any]:
        """What is attached to ``sample`` (memory, then disk, then built)."""
        key = geometry_key(sample)

        def build() -> dict[str, Any]:
            operators = dict(self.build(geometry_of(sample)))
            for value in operators.values():  # ready to apply: nothing is sorted in the step
                if isinstance(value, DiscoKernel):
                    value.prepare_operator()
            return operators

        def make() -> dict[str, Any]:
            if self.store is not None:
                self.store.ensure(key, build)
                operators = self.store.load(key)
                if operators is None:
                    raise OSError(f"kernel store file {self.store.path(key)} could not be read "
                                  f"back after writing it")
            else:
                operators = build()
            for value in operators.values():  # (files written without the applied form)
                if isinstance(value, DiscoKernel):
                    value.prepare_operator()
            if not self.bundle:
                return operators
            out = {k: v for k, v in operators.items() if not isinstance(v, DiscoKernel)}
            kernels = {k: v for k, v in operators.items() if isinstance(v, DiscoKernel)}
            if kernels:  # the training process maps the store's file itself
                out["kernel_bundle"] = self.store.reference(key) if self.store is not None \
                    else KernelBundle(kernels)
            return out

        return self.cache.get_or_build(key, make)

    def __call__(self, sample: PointCloud) -> PointCloud:
        for name, value in self.operators(sample).items():
            sample[name] = value
        return sample


class AttachKernels(PrecomputeKernels):
    """A transform that attaches DISCO kernels of given arguments to each sample.

    Parameters
    ----------
    max_cached : int
        Geometries whose kernels are kept (grids have one; each cylinder mesh is one).
    store : KernelStore or path, optional
        Keep the kernels on disk (see :class:`PrecomputeKernels`).
    **kernels : dict
        ``name=dict(**disco_kernel arguments)``: each sample gets
        ``sample.<name> = disco_kernel(sample_geometry, **arguments)``. A batch made
        by PyG's ``DataLoader`` holds a list of kernels under that name;
        :func:`batch_kernels` merges it into one block-diagonal kernel. Give them to
        a layer together with the clouds, ``conv(x, batch, kernel=batch.<name>)``:
        each kernel carries the fingerprint of its cloud and is checked against it.

    Examples
    --------
    >>> from geo_neuralop.geometry import regular_grid
    >>> transform = AttachKernels(local=dict(radius=0.3, kernel_shape=3))
    >>> sample = transform(regular_grid((8, 8)))
    >>> sample.local.kernel_size  # isotropic piecewise-linear: 2 rings
    2
    """

    def __init__(self, max_cached: int = 256, store: KernelStore | str | Any | None = None,
                 **kernels: dict) -> None:
        if not kernels:
            raise ValueError("AttachKernels needs at least one name=dict(...) kernel spec")
        for name, spec in kernels.items():
            if not isinstance(spec, dict):
                raise TypeError(f"kernel spec {name!r} must be a dict of disco_kernel "
                                f"arguments, got {type(spec).__name__}")
        self.kernels = kernels
        recipe = {"disco_kernel": {name: {k: repr(v) for k, v in spec.items()}
                                   for name, spec in kernels.items()}}
        super().__init__(self._build, recipe, store, max_cached, bundle=False)

    def _build(self, geometry: PointCloud) -> dict[str, Any]:
        return {name: disco_kernel(geometry, **spec) for name, spec in self.kernels.items()}


def batch_kernels(kernels) -> object:
    """Merge the list of kernels of a batch into one block-diagonal ``DiscoKernel``."""
    if not isinstance(kernels, (list, tuple)):
        return kernels
    return Batch.from_data_list(list(kernels))
