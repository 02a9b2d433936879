"""``geometry_fingerprint``: a digest of everything a precomputed operator reads from a cloud.

Kernels built from a cloud carry the fingerprints of their source and destination
clouds, so a kernel meant for one mesh is never applied to another mesh that merely
has the same number of points (the layers check it where the cloud is known).
"""

from __future__ import annotations

from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.utils.cache import fingerprint

__all__ = ["GEOMETRY_KEYS", "geometry_fingerprint"]

#: Grid metadata that changes what a kernel is (periodic boxes, sphere grid kinds).
GEOMETRY_KEYS = ("grid_shape", "grid", "domain", "periodic")


def geometry_fingerprint(cloud: PointCloud) -> str:
    """A 32-hex-digit digest of the positions, weights, manifold and grid metadata.

    Examples
    --------
    >>> from geo_neuralop.geometry import regular_grid
    >>> a = geometry_fingerprint(regular_grid((4, 4)))
    >>> a == geometry_fingerprint(regular_grid((4, 4)))
    True
    >>> a == geometry_fingerprint(regular_grid((4, 4), periodic=True))
    False
    """
    return fingerprint(cloud.pos, cloud.weights, cloud.manifold,
                       *(repr(_plain(getattr(cloud, key, None))) for key in GEOMETRY_KEYS))


def _plain(value):
    """Tuples and lists alike (a PyG batch may turn one into the other)."""
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    return value
