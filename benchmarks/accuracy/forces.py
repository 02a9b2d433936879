"""Drag and lift coefficients of a cylinder from velocity and pressure at mesh vertices.

The force of the fluid on the body is the surface integral of the traction

    F = ∮ (-p n + ν (∇u + ∇uᵀ) n) ds,     C_D, C_L = 2 F / (Ū² D),

over the cylinder's boundary edges, ``n`` the unit normal pointing out of the body
(kinematic pressure, density 1). Fields are the P1 (piecewise-linear) interpolants
of the vertex values: the pressure is integrated exactly along each straight edge
(trapezoid rule) and the velocity gradient is that of the triangle owning the
edge. The solver itself uses a volume integral with its P2 velocity, so applying
this post-processing to the true vertex fields does not reproduce the solver's
coefficients exactly; a study reports that floor beside the error of the
predicted fields (both with this same post-processing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CYLINDER_MARKER", "CylinderBoundary", "cylinder_boundary", "force_coefficients",
           "force_errors"]

#: ``vertex_markers`` code of the cylinder wall (see ``CylinderMesh.vertex_markers``).
CYLINDER_MARKER = 4


@dataclass
class CylinderBoundary:
    """The cylinder's boundary edges of a triangle mesh.

    Attributes
    ----------
    edges : np.ndarray, int64 [E, 2]
        Vertex indices of each boundary edge.
    triangles : np.ndarray, int64 [E, 3]
        The triangle owning each edge.
    normals : np.ndarray [E, 2]
        Unit normals pointing out of the body (into the fluid).
    lengths : np.ndarray [E]
        Edge lengths (m).
    gradients : np.ndarray [E, 2, 3]
        ``∇f = gradients[e] @ f[triangles[e]]`` for a P1 function with vertex values ``f``.
    """

    edges: np.ndarray
    triangles: np.ndarray
    normals: np.ndarray
    lengths: np.ndarray
    gradients: np.ndarray


def cylinder_boundary(points: np.ndarray, faces: np.ndarray, markers: np.ndarray,
                      center: tuple[float, float], marker: int = CYLINDER_MARKER
                      ) -> CylinderBoundary:
    """The boundary edges of the triangle mesh whose two vertices carry ``marker``.

    Parameters
    ----------
    points : np.ndarray [N, 2]
        Vertex coordinates (m).
    faces : np.ndarray [T, 3]
        Triangles.
    markers : np.ndarray [N]
        Vertex markers (the cylinder's vertices carry ``marker``).
    center : (float, float)
        A point inside the body; normals are oriented away from it.

    Raises
    ------
    ValueError
        For bad shapes or when no edge qualifies.
    """
    points = np.asarray(points, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    markers = np.asarray(markers).reshape(-1)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape [N, 2], got {points.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape [T, 3], got {faces.shape}")
    if markers.shape[0] != points.shape[0]:
        raise ValueError(f"markers must have one entry per point ({points.shape[0]}), got "
                         f"{markers.shape[0]}")
    local = np.array([[0, 1], [1, 2], [2, 0]])
    all_edges = faces[:, local].reshape(-1, 2)  # [3T, 2]
    owner = np.repeat(np.arange(faces.shape[0]), 3)
    key = np.sort(all_edges, axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    boundary = counts[inverse.reshape(-1)] == 1
    on_body = (markers[all_edges[:, 0]] == marker) & (markers[all_edges[:, 1]] == marker)
    keep = boundary & on_body
    if not keep.any():
        raise ValueError(f"no boundary edge has both vertices marked {marker}")
    edges, owner = all_edges[keep], owner[keep]
    a, b = points[edges[:, 0]], points[edges[:, 1]]
    tangent = b - a
    lengths = np.linalg.norm(tangent, axis=1)
    normals = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1) / lengths[:, None]
    outward = np.einsum("ei,ei->e", normals, 0.5 * (a + b) - np.asarray(center, dtype=float))
    normals *= np.sign(outward)[:, None]
    tri = faces[owner]
    x = points[tri]  # [E, 3, 2]
    jac = np.stack([x[:, 1] - x[:, 0], x[:, 2] - x[:, 0]], axis=1)  # [E, 2 (edge), 2 (xy)]
    inv = np.linalg.inv(jac)  # columns: gradients of the barycentric coordinates 1, 2
    grad_l12 = np.transpose(inv, (0, 2, 1))  # [E, 2 (lambda 1, 2), 2 (xy)]
    grad = np.concatenate([-grad_l12.sum(1, keepdims=True), grad_l12], axis=1)  # [E, 3, 2]
    return CylinderBoundary(edges, tri, normals, lengths, np.transpose(grad, (0, 2, 1)))


def force_coefficients(boundary: CylinderBoundary, u: np.ndarray, v: np.ndarray,
                       p: np.ndarray, nu: float, u_mean: float, diameter: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Drag and lift coefficients of frames of vertex fields.

    Parameters
    ----------
    boundary : CylinderBoundary
    u, v, p : np.ndarray [F, N] or [N]
        Velocity components (m/s) and kinematic pressure (m²/s²) at the vertices.
    nu : float
        Kinematic viscosity (m²/s).
    u_mean, diameter : float
        Reference velocity Ū (m/s) and cylinder diameter D (m) of the coefficients.

    Returns
    -------
    (np.ndarray, np.ndarray)
        ``C_D [F]`` and ``C_L [F]`` (scalars' shape ``[1]`` for ``[N]`` inputs).
    """
    u, v, p = (np.atleast_2d(np.asarray(f, dtype=np.float64)) for f in (u, v, p))
    if not u.shape == v.shape == p.shape:
        raise ValueError(f"u, v and p must have equal shapes, got {u.shape}, {v.shape}, "
                         f"{p.shape}")
    for name, value in (("nu", nu), ("u_mean", u_mean), ("diameter", diameter)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    b = boundary
    n, ds = b.normals, b.lengths
    p_edge = 0.5 * (p[:, b.edges[:, 0]] + p[:, b.edges[:, 1]])  # [F, E]
    grad_u = np.einsum("eij,fej->fei", b.gradients, u[:, b.triangles])  # [F, E, 2]
    grad_v = np.einsum("eij,fej->fei", b.gradients, v[:, b.triangles])
    # strain-rate tensor S = grad U + grad U^T, rows (du/dx, du/dy), (dv/dx, dv/dy)
    s_xx, s_yy = 2 * grad_u[..., 0], 2 * grad_v[..., 1]
    s_xy = grad_u[..., 1] + grad_v[..., 0]
    tx = -p_edge * n[:, 0] + nu * (s_xx * n[:, 0] + s_xy * n[:, 1])
    ty = -p_edge * n[:, 1] + nu * (s_xy * n[:, 0] + s_yy * n[:, 1])
    scale = 2.0 / (u_mean**2 * diameter)
    return scale * (tx * ds).sum(1), scale * (ty * ds).sum(1)


def force_errors(pred: tuple[np.ndarray, np.ndarray], true: tuple[np.ndarray, np.ndarray]
                 ) -> dict[str, float]:
    """Errors of predicted coefficient histories against reference ones.

    Returns
    -------
    dict
        ``drag_rel``: mean ``|C_D - C_D*|`` over mean ``|C_D*|``; ``lift_rel``:
        RMS of ``C_L - C_L*`` over the RMS of ``C_L*``; ``drag_mean_rel``: error of
        the time-mean drag relative to it; ``lift_amplitude_rel``: error of
        ``max - min`` of the lift relative to it.
    """
    cd, cl = (np.asarray(a, dtype=np.float64) for a in pred)
    cd0, cl0 = (np.asarray(a, dtype=np.float64) for a in true)
    amp0 = float(cl0.max() - cl0.min())
    return {
        "drag_rel": float(np.abs(cd - cd0).mean() / max(np.abs(cd0).mean(), 1e-12)),
        "lift_rel": float(np.sqrt(((cl - cl0) ** 2).mean())
                          / max(np.sqrt((cl0**2).mean()), 1e-12)),
        "drag_mean_rel": float(abs(cd.mean() - cd0.mean()) / max(abs(cd0.mean()), 1e-12)),
        "lift_amplitude_rel": float(abs((cl.max() - cl.min()) - amp0) / max(amp0, 1e-12)),
    }
