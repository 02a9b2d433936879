"""Surfaces stored with three coordinates: DISCO kernels in their tangent frame
(RELIABILITY.md G28, G29).

A planar mesh in the xz-plane gave atan2(dy, dx) angles (2 of 5 basis functions identically
zero) and its differential kernel blamed the radius; a curved surface mesh could not have a
differential kernel at all. The references are independent: the same mesh stored in 2D, and
the exact directional derivatives of linear functions (``m_k . grad f`` with the basis's
first moments ``m_k`` and the tangential gradient).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from geo_neuralop.geometry import PointCloud, from_mesh, jittered_rectangle_mesh
from geo_neuralop.kernels import disco_kernel
from geo_neuralop.kernels.basis import get_basis
from geo_neuralop.kernels.frames import plane_axes, tangent_frames, vertex_normals
from geo_neuralop.kernels.moments import basis_first_moments
from geo_neuralop.layers import DiscoConv
from tests.conftest import observed_order

SHAPE = (3, 4)


def _mesh():
    return jittered_rectangle_mesh((12, 12), seed=1, dtype=torch.float64)


def _moments() -> np.ndarray:
    return basis_first_moments(get_basis("piecewise_linear", SHAPE), 2).numpy()  # [K, 2]


@pytest.mark.parametrize("differential", [False, True])
def test_a_mesh_in_the_xz_plane_has_the_kernel_of_the_same_mesh_in_the_xy_plane(differential):
    mesh = _mesh()
    x, y = mesh.pos[:, 0], mesh.pos[:, 1]
    n = mesh.num_nodes
    reference = disco_kernel(mesh, kernel_shape=SHAPE, radius=0.2, differential=differential,
                             dtype=torch.float64)
    for pos in (torch.stack([x, torch.zeros(n, dtype=x.dtype), y], 1),  # xz-plane
                torch.stack([x, torch.full((n,), 2.5, dtype=x.dtype), y], 1),  # y = 2.5
                torch.stack([x, y, torch.zeros(n, dtype=x.dtype)], 1),  # xy-plane in 3D
                torch.stack([torch.full((n,), -1.0, dtype=x.dtype), x, y], 1)):  # yz-plane
        cloud = PointCloud(pos, mesh.weights, faces=mesh.faces)
        kernel = disco_kernel(cloud, kernel_shape=SHAPE, radius=0.2, differential=differential,
                              dtype=torch.float64)
        assert torch.equal(kernel.edge_index, reference.edge_index)
        torch.testing.assert_close(kernel.edge_values, reference.edge_values, rtol=0, atol=0)
    # before: 2 of the 5 basis functions were identically zero in the xz-plane
    assert bool((reference.edge_values != 0).any(dim=0).all())


def test_a_tilted_plane_differentiates_linear_functions_exactly():
    """Rotated and shifted out of every coordinate plane, stored in float32: the differential
    kernel of a linear function f = g . x is m_k . (in-plane gradient), to round-off."""
    mesh = _mesh()
    rotation, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    pos = np.column_stack([mesh.pos.numpy(), np.zeros(mesh.num_nodes)]) @ rotation.T + 1.5
    g = np.array([0.3, -1.2, 0.7])
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 2e-4)):
        cloud = PointCloud(torch.tensor(pos, dtype=dtype), mesh.weights.to(dtype),
                           faces=mesh.faces)
        kernel = disco_kernel(cloud, kernel_shape=SHAPE, radius=0.2, differential=True,
                              dtype=torch.float64)
        stored = cloud.pos.double().numpy()
        response = kernel.responses(torch.tensor(stored @ g)[:, None])[:, :, 0].numpy()
        expected = _moments() @ (plane_axes(stored) @ g)
        assert np.abs(response - expected).max() < tol * np.abs(expected).max() * 10


def test_a_curved_surface_differential_kernel_converges_at_first_order():
    """An icosphere stored as a Euclidean triangulated surface (no sphere manifold): each
    point's tangent frame comes from its vertex normal; the differential kernel of f = g . x
    tends to m_k . (tangential gradient in that frame) at first order in the radius."""
    g = np.array([0.3, -1.2, 0.7])
    errors, widths = [], []
    for subdivisions in (2, 3, 4):
        cloud = from_mesh(trimesh.creation.icosphere(subdivisions=subdivisions),
                          dtype=torch.float64)
        h = float(np.sqrt(4 * np.pi / cloud.num_nodes))
        kernel = disco_kernel(cloud, kernel_shape=SHAPE, radius=3 * h, differential=True)
        p = cloud.pos.numpy()
        response = kernel.responses(torch.tensor(p @ g)[:, None])[:, :, 0].numpy()
        e1, e2 = tangent_frames(vertex_normals(p, cloud.faces.numpy()))
        expected = np.stack([e1 @ g, e2 @ g], 1) @ _moments().T
        errors.append(np.sqrt(((response - expected) ** 2).mean() / (expected ** 2).mean()))
        widths.append(h)
    assert errors[-1] < 0.1
    assert observed_order(widths, errors) == pytest.approx(1.0, abs=0.15)


def test_tangent_frames_are_orthonormal_and_tangent():
    cloud = from_mesh(trimesh.creation.icosphere(subdivisions=2), dtype=torch.float64)
    n = vertex_normals(cloud.pos.numpy(), cloud.faces.numpy())
    e1, e2 = tangent_frames(n)
    for a, b in ((e1, n), (e2, n), (e1, e2)):
        assert np.abs(np.sum(a * b, axis=1)).max() < 1e-12
    for v in (e1, e2, n):
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-12)
    # right-handed, outward normals of an outward-oriented sphere mesh
    assert np.all(np.sum(np.cross(e1, e2) * n, axis=1) > 0.999)
    assert np.all(np.sum(n * cloud.pos.numpy(), axis=1) > 0.99)


def test_a_volume_cloud_keeps_the_azimuth():
    """3D points without faces, not in one plane: a volume, as before (angle in xy)."""
    rng = np.random.default_rng(1)
    pos = torch.tensor(rng.random((300, 3)))
    cloud = PointCloud(pos, torch.full((300,), 1 / 300, dtype=torch.float64))
    assert plane_axes(pos.numpy()) is None
    kernel = disco_kernel(cloud, kernel_shape=SHAPE, radius=0.3)
    assert kernel.edge_values.shape[1] == 5


def test_the_layer_on_an_xz_mesh_equals_the_layer_on_the_xy_mesh():
    mesh = _mesh()
    x, y = mesh.pos[:, 0], mesh.pos[:, 1]
    xz = PointCloud(torch.stack([x, torch.zeros_like(x), y], 1), mesh.weights, faces=mesh.faces)
    conv = DiscoConv(2, 3, SHAPE, radius=0.2).double()
    field = torch.randn(mesh.num_nodes, 2, dtype=torch.float64)
    torch.testing.assert_close(conv(field, xz), conv(field, mesh), rtol=0, atol=0)
