"""Local frames of DISCO kernels: polar coordinates of a source point around its destination.

Planar and 3D clouds use the offset ``x_src - x_dst`` (minimum image in periodic
boxes); on the sphere the destination is rotated to the north pole
(torch-harmonics' YZY convention) and the geodesic polar coordinates are taken.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.kernels.neighbors import periodic_offsets

__all__ = ["local_polar", "periodic_box", "sphere_frame_angles"]


def sphere_frame_angles(cloud: PointCloud) -> tuple[np.ndarray, np.ndarray]:
    """Colatitude and longitude (radians) of each sphere point, defining its local frame.

    For clouds made by :func:`~geo_neuralop.geometry.sphere_grid` the grid's nominal
    longitudes are used, so the repeated pole points of an equiangular grid keep
    their own frame orientation (as in torch-harmonics, where the kernel of every
    longitude is a rotated copy of the kernel at longitude 0).
    """
    pos = cloud.pos.detach().cpu().double().numpy()
    colat = np.arctan2(np.linalg.norm(pos[:, :2], axis=1), pos[:, 2])
    lon = np.arctan2(pos[:, 1], pos[:, 0])
    shape = getattr(cloud, "grid_shape", None)
    if getattr(cloud, "grid", None) is not None and shape is not None and len(shape) == 2:
        nlat, nlon = shape
        lon = np.tile(2.0 * np.pi * np.arange(nlon) / nlon, nlat)
    return colat, lon


def local_polar(
    src_pos: np.ndarray,
    dst_pos: np.ndarray,
    manifold: str,
    box: Sequence[tuple[float, float] | None] | None = None,
    dst_frame: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Polar coordinates ``(r, phi)`` of each source point in its destination's frame.

    Parameters
    ----------
    src_pos, dst_pos : np.ndarray, shape [E, d]
        Paired positions (one row per edge).
    manifold : {"euclidean", "sphere"}
        Euclidean: offset ``x_src - x_dst`` (minimum image in periodic boxes),
        ``r = |offset|`` and ``phi = atan2(offset_y, offset_x)`` (in 1D ``phi``
        is 0 or pi; in 3D it is the azimuth). Sphere: the destination is
        rotated to the north pole (torch-harmonics' YZY convention), ``r`` is
        the geodesic angle and ``phi`` the longitude of the rotated source.
    box : periodic box per axis, optional
    dst_frame : (colatitude, longitude) per edge, optional
        Frame angles of the destinations on the sphere; default from ``dst_pos``.

    Returns
    -------
    r, phi : np.ndarray, shape [E]
        ``r`` in length units (radians on the sphere), ``phi`` in [0, 2 pi).
    """
    if manifold == "sphere":
        if dst_frame is None:
            colat = np.arctan2(np.linalg.norm(dst_pos[:, :2], axis=1), dst_pos[:, 2])
            lon = np.arctan2(dst_pos[:, 1], dst_pos[:, 0])
        else:
            colat, lon = dst_frame
        ct, st, cp, sp = np.cos(colat), np.sin(colat), np.cos(lon), np.sin(lon)
        vx, vy, vz = src_pos[:, 0], src_pos[:, 1], src_pos[:, 2]
        u = cp * vx + sp * vy
        x = ct * u - st * vz
        y = -sp * vx + cp * vy
        z = st * u + ct * vz
        r = np.arctan2(np.hypot(x, y), z)
        phi = np.arctan2(y, x)
    else:
        offset = periodic_offsets(src_pos - dst_pos, box)
        r = np.linalg.norm(offset, axis=1)
        if offset.shape[1] == 1:
            phi = np.where(offset[:, 0] < 0, np.pi, 0.0)
        else:
            phi = np.arctan2(offset[:, 1], offset[:, 0])
    phi = np.where(phi < 0.0, phi + 2.0 * np.pi, phi)
    phi = np.where(phi >= 2.0 * np.pi, 0.0, phi)
    return r, phi


def periodic_box(cloud: PointCloud) -> list[tuple[float, float] | None] | None:
    """The periodic box of a periodic ``regular_grid`` cloud (None for non-periodic clouds)."""
    periodic = getattr(cloud, "periodic", None)
    domain = getattr(cloud, "domain", None)
    if periodic is None or domain is None or not any(periodic):
        return None
    return [tuple(d) if p else None for d, p in zip(domain, periodic, strict=True)]
