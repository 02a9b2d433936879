"""geo_neuralop: neural operators on meshes and spheres.

Subpackages: :mod:`geo_neuralop.geometry` (point clouds with quadrature weights),
:mod:`geo_neuralop.kernels` (basis functions, neighbour search, sparse DISCO kernels),
:mod:`geo_neuralop.layers`, :mod:`geo_neuralop.models`, :mod:`geo_neuralop.data`,
:mod:`geo_neuralop.training`, :mod:`geo_neuralop.viz`. :func:`geo_neuralop.predict` runs a
trained model on new inputs (:mod:`geo_neuralop.training.prediction`).
"""

from geo_neuralop._version import __version__
from geo_neuralop.geometry import (
    PointCloud,
    fibonacci_sphere,
    from_mesh,
    icosphere,
    regular_grid,
    sphere_grid,
    to_mesh,
)

__all__ = [
    "PointCloud",
    "__version__",
    "fibonacci_sphere",
    "from_mesh",
    "icosphere",
    "predict",
    "regular_grid",
    "sphere_grid",
    "to_mesh",
]


def __getattr__(name: str):
    """``geo_neuralop.predict``, imported on first use (it needs the training floor)."""
    if name == "predict":
        from geo_neuralop.training.prediction import predict

        return predict
    raise AttributeError(f"module 'geo_neuralop' has no attribute {name!r}")
