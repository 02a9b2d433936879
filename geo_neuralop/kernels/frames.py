"""Local frames of DISCO kernels: polar coordinates of a source point around its destination.

Planar and 3D clouds use the offset ``x_src - x_dst`` (minimum image in periodic
boxes); on the sphere the destination is rotated to the north pole
(torch-harmonics' YZY convention) and the geodesic polar coordinates are taken.

Surfaces stored with three coordinates get a frame of their own tangent plane
(:func:`surface_frame`): a planar cloud in any plane (the xz-plane, a tilted plane)
is expressed in two in-plane coordinates (:func:`plane_axes`), so it gives the same
kernel as the same mesh stored in the xy-plane; a curved triangulated surface gets a
tangent frame per point from its vertex normals (:func:`tangent_frames`). Only a 3D
cloud without faces whose points do not lie in one plane is treated as a volume (the
angle is the azimuth in the xy-plane).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.kernels.neighbors import periodic_offsets

__all__ = [
    "PLANE_TOLERANCE",
    "SurfaceFrame",
    "local_polar",
    "periodic_box",
    "plane_axes",
    "sphere_frame_angles",
    "surface_frame",
    "tangent_frames",
    "vertex_normals",
]

#: Points lie in one plane when the smallest singular value of their centred coordinates is
#: below this fraction of the largest (float32 storage of a tilted plane leaves ~1e-7).
PLANE_TOLERANCE = 1e-5


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


def plane_axes(pos: np.ndarray, tolerance: float = PLANE_TOLERANCE) -> np.ndarray | None:
    """Orthonormal in-plane axes ``[2, 3]`` of 3D points lying in one plane, else None.

    The axes are the coordinate axes projected onto the plane, in the order x, y, z
    (the first whose projection is long enough, then the next one made orthogonal to
    it): points in the xy-plane get ``(x, y)``, in the xz-plane ``(x, z)``, in the
    yz-plane ``(y, z)``. So a planar mesh stored in any plane gives the in-plane
    coordinates ``pos @ axes.T`` it would have in the xy-plane (exactly, for
    axis-aligned planes).

    Parameters
    ----------
    pos : np.ndarray, shape [N, 3]
    tolerance : float
        Relative flatness below which the points count as planar.

    Examples
    --------
    >>> xz = np.array([[0.0, 2.0, 0.0], [1.0, 2.0, 0.0], [0.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    >>> plane_axes(xz).round(12).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] < 3:
        return None
    centred = pos - pos.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    if singular[0] == 0 or singular[2] > tolerance * singular[0] or \
            singular[1] <= tolerance * singular[0]:
        return None  # a volume, or points on one line
    normal = vt[2]
    axes: list[np.ndarray] = []
    for axis in np.eye(3):
        v = axis - (axis @ normal) * normal
        for e in axes:
            v = v - (v @ e) * e
        length = float(np.linalg.norm(v))
        if length > 0.5:  # some axis always projects to at least 1 / sqrt(2)
            axes.append(v / length)
        if len(axes) == 2:
            break
    return np.stack(axes)


def vertex_normals(pos: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit normals ``[N, 3]`` of a triangulated surface: area-weighted face normals summed at
    each vertex (their orientation follows the faces' winding)."""
    a, b, c = pos[faces[:, 0]], pos[faces[:, 1]], pos[faces[:, 2]]
    face_normals = np.cross(b - a, c - a)  # length: twice the area
    normals = np.zeros_like(pos)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    if (length == 0).any():
        i = int(np.argmax(length[:, 0] == 0))
        raise ValueError(f"point index {i} has no surface normal (its triangles cancel out or "
                         f"it is not in any triangle); a tangent frame needs one")
    return normals / length


def tangent_frames(normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tangent axes ``(e1, e2)``, each ``[N, 3]``, with ``e2 = n x e1``.

    ``e1`` is the coordinate axis least aligned with the normals on average, projected
    onto each tangent plane; where a normal is within 15 degrees of that axis, the next
    least aligned axis is projected instead. No frame field is continuous on a closed
    surface (the hairy-ball theorem): the kernel's orientation turns by 90 degrees
    across those places, as torch-harmonics' frames do at the poles.
    """
    order = np.argsort(np.abs(normals).mean(axis=0), kind="stable")
    first, second = np.eye(3)[order[0]], np.eye(3)[order[1]]
    close = np.abs(normals @ first) > np.cos(np.radians(15.0))
    axis = np.where(close[:, None], second, first)
    e1 = axis - np.sum(axis * normals, axis=1, keepdims=True) * normals
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    return e1, np.cross(normals, e1)


@dataclass
class SurfaceFrame:
    """How a 3D cloud is seen by the kernels: in-plane coordinates, or tangent frames.

    Attributes
    ----------
    kind : {"plane", "surface"}
        "plane": use ``pos @ axes.T`` (2D) as the positions. "surface": keep 3D
        positions and measure angles in the tangent frame ``(e1, e2)`` of each
        destination point.
    axes : np.ndarray [2, 3], optional
        In-plane axes ("plane").
    e1, e2 : np.ndarray [N, 3], optional
        Tangent axes per point ("surface").
    """

    kind: str
    axes: np.ndarray | None = None
    e1: np.ndarray | None = None
    e2: np.ndarray | None = None


def surface_frame(clouds: Sequence[PointCloud]) -> SurfaceFrame | None:
    """The frame of 3D Euclidean clouds that are a surface: one plane, or triangulated.

    Parameters
    ----------
    clouds : sequence of PointCloud
        The source and destination clouds (the last one gives the per-point frames
        of a curved surface).

    Returns
    -------
    SurfaceFrame or None
        None for clouds that are not 3D Euclidean, or a 3D cloud that is neither
        planar nor triangulated (a volume).
    """
    if any(c.manifold != "euclidean" or c.pos.shape[1] != 3 for c in clouds):
        return None
    pos = np.concatenate([c.pos.detach().cpu().double().numpy() for c in clouds])
    axes = plane_axes(pos)
    if axes is not None:
        return SurfaceFrame("plane", axes=axes)
    dst = clouds[-1]
    faces = getattr(dst, "faces", None)
    if faces is None or faces.numel() == 0:
        return None
    normals = vertex_normals(dst.pos.detach().cpu().double().numpy(),
                             faces.detach().cpu().numpy())
    e1, e2 = tangent_frames(normals)
    return SurfaceFrame("surface", e1=e1, e2=e2)


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
    dst_frame : pair of np.ndarray, optional
        Sphere: frame angles ``(colatitude, longitude)`` ``[E]`` of the destinations
        (default from ``dst_pos``). Euclidean 3D surfaces: tangent axes ``(e1, e2)``
        ``[E, 3]`` of the destinations; ``phi`` is then the angle of the offset in
        that frame and ``r`` the length of the offset.

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
        if dst_frame is not None:
            e1, e2 = dst_frame
            phi = np.arctan2(np.sum(offset * e2, axis=1), np.sum(offset * e1, axis=1))
        elif offset.shape[1] == 1:
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
