"""Sample transforms: precomputed DISCO kernels attached to each sample, once per geometry."""

from __future__ import annotations

from collections import OrderedDict

from torch_geometric.data import Batch

from geo_neuralop.geometry import PointCloud
from geo_neuralop.geometry.fingerprint import geometry_fingerprint
from geo_neuralop.kernels import disco_kernel

__all__ = ["AttachKernels", "batch_kernels"]


class AttachKernels:
    """A transform that attaches precomputed DISCO kernels to each sample, cached per geometry.

    Parameters
    ----------
    max_cached : int
        Geometries whose kernels are kept (grids have one; each cylinder mesh is one).
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

    def __init__(self, max_cached: int = 256, **kernels: dict) -> None:
        if not kernels:
            raise ValueError("AttachKernels needs at least one name=dict(...) kernel spec")
        for name, spec in kernels.items():
            if not isinstance(spec, dict):
                raise TypeError(f"kernel spec {name!r} must be a dict of disco_kernel "
                                f"arguments, got {type(spec).__name__}")
        self.kernels, self.max_cached = kernels, int(max_cached)
        self._cache: OrderedDict[str, dict] = OrderedDict()

    def __call__(self, sample: PointCloud) -> PointCloud:
        key = geometry_fingerprint(sample)  # grid metadata too: periodic != non-periodic
        if key not in self._cache:
            geometry = PointCloud(sample.pos, sample.weights, manifold=sample.manifold,
                                  allow_duplicates=getattr(sample, "grid", None) == "equiangular",
                                  **{k: getattr(sample, k) for k in ("grid_shape", "domain",
                                                                     "periodic", "grid")
                                     if getattr(sample, k, None) is not None})
            self._cache[key] = {name: disco_kernel(geometry, **spec)
                                for name, spec in self.kernels.items()}
            while len(self._cache) > self.max_cached:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        for name, kernel in self._cache[key].items():
            sample[name] = kernel
        return sample


def batch_kernels(kernels) -> object:
    """Merge the list of kernels of a batch into one block-diagonal ``DiscoKernel``."""
    if not isinstance(kernels, (list, tuple)):
        return kernels
    return Batch.from_data_list(list(kernels))
