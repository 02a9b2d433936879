"""Triangle meshes (meshio, trimesh, pyvista, arrays) to and from ``PointCloud``.

Vertex quadrature weights are *lumped* (the diagonal of the P1 mass matrix):
each vertex receives one third of the area of every triangle touching it, so
the weights integrate the piecewise-linear interpolant of a function exactly
and smooth functions with second-order accuracy in the mesh width.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from geo_neuralop.geometry.point_cloud import (
    MANIFOLDS,
    STRUCTURAL_KEYS,
    PointCloud,
    validate_faces,
)
from geo_neuralop.geometry.quadrature import lumped_vertex_weights

MESH_KINDS = ("meshio", "trimesh", "pyvista")

__all__ = ["from_mesh", "split_quads", "to_mesh"]


def _twice_areas(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.cross(p[b] - p[a], p[c] - p[a]), axis=1)


def split_quads(points: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """Two triangles per quad ``(v0, v1, v2, v3)``, split along the diagonal inside it.

    A convex quad is split along ``v0-v2``. A non-convex (arrow-head) quad has one
    diagonal outside it: splitting along that one gives overlapping triangles whose
    areas add up to more than the quad's; the diagonal from the reflex vertex is
    chosen instead, recognised as the split of the smaller total area (which equals
    the quad's area).

    Parameters
    ----------
    points : np.ndarray, shape [N, 2] or [N, 3]
    quads : np.ndarray, shape [Q, 4], int

    Returns
    -------
    np.ndarray, shape [2 Q, 3]
        The first triangles of all quads, then the second ones.

    Examples
    --------
    >>> arrow = np.array([[0.0, 0.0], [2.0, 1.0], [0.0, 2.0], [0.5, 1.0]])  # reflex at v3
    >>> split_quads(arrow, np.array([[0, 1, 2, 3]])).tolist()
    [[0, 1, 3], [1, 2, 3]]
    """
    q = np.asarray(quads, dtype=np.int64).reshape(-1, 4)
    p = np.asarray(points, dtype=np.float64)
    if p.shape[1] == 2:
        p = np.pad(p, ((0, 0), (0, 1)))
    along_02 = _twice_areas(p, q[:, 0], q[:, 1], q[:, 2]) + _twice_areas(p, q[:, 0], q[:, 2],
                                                                         q[:, 3])
    along_13 = _twice_areas(p, q[:, 0], q[:, 1], q[:, 3]) + _twice_areas(p, q[:, 1], q[:, 2],
                                                                         q[:, 3])
    use_13 = along_13 < along_02 * (1.0 - 1e-9)
    first = np.where(use_13[:, None], q[:, [0, 1, 3]], q[:, [0, 1, 2]])
    second = np.where(use_13[:, None], q[:, [1, 2, 3]], q[:, [0, 2, 3]])
    return np.concatenate([first, second])


def _mesh_arrays(mesh: Any) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Points, triangles and point data of any supported mesh object."""
    module = type(mesh).__module__.split(".")[0]
    if isinstance(mesh, tuple) and len(mesh) == 2:
        points, faces = mesh
        return np.asarray(points, dtype=np.float64), np.asarray(faces), {}
    if module == "meshio":
        triangles = []
        for block in mesh.cells:
            if block.type == "triangle":
                triangles.append(np.asarray(block.data))
            elif block.type == "quad":
                triangles.append(split_quads(mesh.points, block.data))
            elif block.type in ("vertex", "line"):
                continue
            else:
                raise ValueError(
                    f"mesh has cells of type {block.type!r}; only triangles and quads "
                    "(split into triangles) are supported"
                )
        faces = np.concatenate(triangles) if triangles else np.zeros((0, 3), dtype=np.int64)
        return np.asarray(mesh.points, dtype=np.float64), faces, dict(mesh.point_data)
    if module == "trimesh":
        if not hasattr(mesh, "faces"):
            raise ValueError("a trimesh point cloud has no triangles; pass a trimesh.Trimesh")
        data = {k: np.asarray(v) for k, v in getattr(mesh, "vertex_attributes", {}).items()}
        return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces), data
    if module == "pyvista":
        import pyvista as pv

        data = {k: np.asarray(mesh.point_data[k]) for k in mesh.point_data.keys()}
        if isinstance(mesh, pv.UnstructuredGrid):
            cells = mesh.cells_dict
            other = set(cells) - {pv.CellType.TRIANGLE, pv.CellType.QUAD, pv.CellType.VERTEX,
                                  pv.CellType.LINE}
            if other:
                raise ValueError(
                    f"unstructured grid has cell types {sorted(int(c) for c in other)}; "
                    "only triangles and quads are supported"
                )
            tri = [np.asarray(cells.get(pv.CellType.TRIANGLE, np.zeros((0, 3), int)))]
            if pv.CellType.QUAD in cells:
                tri.append(split_quads(mesh.points, cells[pv.CellType.QUAD]))
            return np.asarray(mesh.points, dtype=np.float64), np.concatenate(tri), data
        if isinstance(mesh, pv.PolyData):
            if not mesh.is_all_triangles:
                mesh = mesh.triangulate()
            faces = np.asarray(mesh.faces).reshape(-1, 4)[:, 1:]
            return np.asarray(mesh.points, dtype=np.float64), faces, data
    raise TypeError(
        "mesh must be a meshio.Mesh, trimesh.Trimesh, pyvista.PolyData, "
        f"pyvista.UnstructuredGrid or a (points, triangles) tuple, got {type(mesh).__name__}"
    )


def from_mesh(
    mesh: Any,
    manifold: str = "euclidean",
    dim: int | None = None,
    fields: Sequence[str] | None = None,
    remove_unreferenced: bool = False,
    dtype: torch.dtype | None = None,
) -> PointCloud:
    """A triangle mesh as a point cloud with lumped vertex quadrature weights.

    Parameters
    ----------
    mesh : meshio.Mesh, trimesh.Trimesh, pyvista.PolyData, pyvista.UnstructuredGrid or tuple
        The mesh; a tuple is ``(points [N, 2|3], triangles [F, 3])``. Quads are
        split into two triangles; vertex and line cells are ignored.
    manifold : {"euclidean", "sphere"}
        ``"sphere"`` for triangulations of the unit sphere: weights then use
        geodesic (spherical) triangle areas.
    dim : {2, 3}, optional
        Coordinates kept. Default: 2 when the points are 2D, or 3D with every
        z equal to 0 (how meshio, gmsh and VTK store planar meshes), else 3.
    fields : sequence of str, optional
        Point-data arrays to copy onto the cloud (default: all of them).
    remove_unreferenced : bool
        Drop vertices that no triangle uses (e.g. gmsh geometry points) and
        renumber; otherwise such a vertex raises ``ValueError``.
    dtype : torch.dtype, optional
        Floating dtype of ``pos`` and ``weights`` (default
        ``torch.get_default_dtype()``).

    Returns
    -------
    PointCloud
        With ``pos``, lumped ``weights``, ``faces`` and the point-data fields.
    """
    if manifold not in MANIFOLDS:
        raise ValueError(f"manifold must be one of {MANIFOLDS}, got {manifold!r}")
    points, faces, point_data = _mesh_arrays(mesh)
    if points.ndim != 2 or points.shape[1] not in (2, 3):
        raise ValueError(f"mesh points must have shape [N, 2] or [N, 3], got {points.shape}")
    faces = np.asarray(faces)
    if faces.size == 0:
        raise ValueError("mesh has no triangles: lumped quadrature weights need triangles")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"triangles must have shape [F, 3], got {faces.shape}")
    if not np.issubdtype(faces.dtype, np.integer):
        raise TypeError(f"triangles must be integers, got dtype {faces.dtype}")
    n = points.shape[0]
    if faces.min() < 0 or faces.max() >= n:
        k = int(np.argmax(((faces < 0) | (faces >= n)).any(axis=1)))
        raise ValueError(
            f"faces index missing vertices: face index {k} = {faces[k].tolist()} "
            f"but the mesh has {n} points"
        )

    if dim is None:
        dim = 2 if points.shape[1] == 2 or not np.any(points[:, 2]) else 3
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim}")
    if dim == 2 and points.shape[1] == 3:
        if np.any(points[:, 2]):
            raise ValueError("dim=2 requested but the mesh has non-zero z coordinates")
        points = points[:, :2]
    elif dim == 3 and points.shape[1] == 2:
        points = np.pad(points, ((0, 0), (0, 1)))
    if manifold == "sphere" and dim != 3:
        raise ValueError("a sphere mesh needs 3D points")

    names = list(point_data) if fields is None else list(fields)
    for name in names:
        if name not in point_data:
            raise ValueError(f"unknown field {name!r}; the mesh has {sorted(point_data)}")
        if name in STRUCTURAL_KEYS:
            raise ValueError(f"point-data name {name!r} clashes with a PointCloud attribute")

    used = np.zeros(n, dtype=bool)
    used[faces.reshape(-1)] = True
    if not used.all():
        if not remove_unreferenced:
            i = int(np.argmax(~used))
            raise ValueError(
                f"vertex index {i} is not used by any triangle (it would get zero weight); "
                "pass remove_unreferenced=True to drop such vertices"
            )
        new_index = np.cumsum(used) - 1
        faces = new_index[faces]
        points = points[used]
        point_data = {k: np.asarray(v)[used] for k, v in point_data.items()}

    # faces first: a collinear triangle is named as such, not as the zero weight it causes
    validate_faces(torch.as_tensor(faces.astype(np.int64)), points)
    weights = lumped_vertex_weights(points, faces, manifold)
    dtype = dtype or torch.get_default_dtype()
    field_tensors = {name: torch.as_tensor(np.asarray(point_data[name])) for name in names}
    for name, value in field_tensors.items():
        if torch.is_floating_point(value):
            field_tensors[name] = value.to(dtype)
    return PointCloud(
        torch.as_tensor(points, dtype=dtype),
        torch.as_tensor(weights, dtype=dtype),
        manifold=manifold,
        faces=torch.as_tensor(faces.astype(np.int64)),
        **field_tensors,
    )


def _field_arrays(
    cloud: PointCloud, fields: Sequence[str] | Mapping[str, Any] | None
) -> dict[str, np.ndarray]:
    n = cloud.num_nodes
    if fields is None:
        fields = cloud.field_names
    if isinstance(fields, Mapping):
        items = list(fields.items())
    else:
        items = []
        for name in fields:
            if name not in cloud.keys():
                raise ValueError(f"unknown field {name!r}; the cloud has {cloud.field_names}")
            items.append((name, cloud[name]))
    out = {}
    for name, value in items:
        arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        if arr.ndim == 0 or arr.shape[0] != n:
            raise ValueError(
                f"field {name!r} has shape {arr.shape}; its first dimension must be the "
                f"number of points ({n})"
            )
        out[name] = arr
    return out


def to_mesh(
    cloud: PointCloud,
    fields: Sequence[str] | Mapping[str, Any] | None = None,
    kind: str = "meshio",
) -> Any:
    """A point cloud as a mesh object with its fields as point data.

    Parameters
    ----------
    cloud : PointCloud
    fields : sequence of str or mapping, optional
        Names of cloud attributes to export, or ``{name: array [N, ...]}`` for
        arrays not stored on the cloud (e.g. predictions). Default: every
        per-point field of the cloud.
    kind : {"meshio", "trimesh", "pyvista"}
        The returned type: ``meshio.Mesh``, ``trimesh.Trimesh``
        (``trimesh.PointCloud`` without faces) or ``pyvista.PolyData``.

    Returns
    -------
    mesh
        Points padded to 3D (z = 0 for planar clouds, as VTK expects), the
        cloud's triangles (vertex cells when it has none) and the point data.
    """
    if kind not in MESH_KINDS:
        raise ValueError(f"kind must be one of {MESH_KINDS}, got {kind!r}")
    data = _field_arrays(cloud, fields)
    points = cloud.pos.detach().cpu().double().numpy()
    if points.shape[1] < 3:
        points = np.pad(points, ((0, 0), (0, 3 - points.shape[1])))
    faces = getattr(cloud, "faces", None)
    faces = None if faces is None else faces.detach().cpu().numpy()
    if kind == "meshio":
        import meshio

        cells = (
            [("triangle", faces)]
            if faces is not None
            else [("vertex", np.arange(len(points))[:, None])]
        )
        return meshio.Mesh(points, cells, point_data=data)
    if kind == "trimesh":
        import trimesh

        if faces is None:
            return trimesh.PointCloud(points)
        mesh = trimesh.Trimesh(points, faces, process=False)
        for name, arr in data.items():
            mesh.vertex_attributes[name] = arr
        return mesh
    import pyvista as pv

    if faces is None:
        mesh = pv.PolyData(points)
    else:
        flat = np.hstack([np.full((len(faces), 1), 3), faces]).reshape(-1)
        mesh = pv.PolyData(points, flat)
    for name, arr in data.items():
        mesh.point_data[name] = arr
    return mesh
