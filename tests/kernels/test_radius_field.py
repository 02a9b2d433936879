"""RadiusField: interpolation, construction from a reference mesh, and the mesh layers it makes
possible on graded meshes (the DFG channel), converging under refinement."""

import numpy as np
import pytest
import torch

from geo_neuralop.data.solvers.cylinder_mesh import cylinder_channel_mesh
from geo_neuralop.geometry import PointCloud, from_mesh
from geo_neuralop.kernels import RadiusField, disco_kernel


def dfg_mesh(vertices: int, seed: int = 0) -> PointCloud:
    mesh = cylinder_channel_mesh(target_vertices=vertices, seed=seed)
    return from_mesh((mesh.points, mesh.triangles), dtype=torch.float64)


def test_multilinear_interpolation_is_exact_on_linear_fields_and_clamps_outside():
    axes = [np.linspace(0.0, 2.0, 5), np.linspace(-1.0, 1.0, 4)]
    nodes = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    field = RadiusField([(0.0, 2.0), (-1.0, 1.0)], 1.0 + 0.5 * nodes[..., 0] + 0.25 * nodes[..., 1])
    pos = np.random.default_rng(0).random((50, 2)) * [2.0, 2.0] - [0.0, 1.0]
    np.testing.assert_allclose(field(pos), 1.0 + 0.5 * pos[:, 0] + 0.25 * pos[:, 1], rtol=1e-14)
    np.testing.assert_allclose(field(np.array([[5.0, -3.0]])), [1.0 + 1.0 - 0.25])
    again = RadiusField.from_dict(field.to_dict())
    assert again == field and hash(again) == hash(field)
    assert RadiusField([(0.0, 1.0)], [1.0, 2.0]) != RadiusField([(0.0, 1.0)], [1.0, 2.5])


def test_bad_fields():
    with pytest.raises(ValueError, match="positive and finite"):
        RadiusField([(0.0, 1.0)], [1.0, 0.0])
    with pytest.raises(ValueError, match="at least 2 nodes"):
        RadiusField([(0.0, 1.0)], [1.0])
    with pytest.raises(ValueError, match=r"domain must hold 2 pairs \(lo, hi\)"):
        RadiusField([(0.0, 1.0)], [[1.0, 1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match=r"pos must have shape \[N, 1\]"):
        RadiusField([(0.0, 1.0)], [1.0, 2.0])(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="keys 'domain' and 'values'"):
        RadiusField.from_dict({"values": [1.0, 2.0]})


def test_a_field_from_the_coarse_dfg_mesh_gives_local_stencils_everywhere():
    """A fixed radius fails on the graded DFG channel: 0.06 leaves the coarse corner without
    neighbours spanning two directions, and 0.2 (enough for the corner) puts hundreds of
    neighbours at the cylinder. The field follows the grading: every point gets a stencil
    of about the same number of neighbours."""
    mesh = dfg_mesh(1200)
    with pytest.raises(ValueError, match="do not span its 2 directions"):
        disco_kernel(mesh, kernel_shape=(3, 4), radius=0.06, normalization="nodal",
                     differential=True)
    wide = torch.bincount(disco_kernel(mesh, kernel_shape=(3, 4), radius=0.2).edge_index[1].long())
    assert int(wide.max()) > 10 * int(wide.min())
    field = RadiusField.from_cloud(mesh, cells=2.5)
    kernel = disco_kernel(mesh, kernel_shape=(3, 4), radius=field, normalization="nodal",
                          differential=True)
    counts = torch.bincount(kernel.edge_index[1].long())
    assert int(counts.min()) >= 8 and int(counts.max()) <= 6 * int(counts.min())
    assert field.max > 8 * field.min  # the radius follows a grading of an order of magnitude


def test_mesh_layers_with_a_field_converge_under_refinement():
    """Fixed field (from the coarsest mesh), smooth input, DISCO layer from meshes of 1.2k,
    4.8k and 19k vertices (the mesh width halves each time) onto one set of query points: the
    outputs converge (differences between successive refinements shrink about 4x), i.e. the
    layer is a discretization of one continuous operator, not of the mesh."""
    field = RadiusField.from_cloud(dfg_mesh(1200), cells=2.5)
    rng = np.random.default_rng(1)
    pts = rng.random((400, 2)) * [2.1, 0.39] + [0.05, 0.01]
    pts = pts[np.linalg.norm(pts - [0.2, 0.2], axis=1) > 0.07]  # away from the cylinder
    query = PointCloud(torch.from_numpy(pts), torch.ones(len(pts), dtype=torch.float64))

    def v(pos):
        x, y = pos[:, 0], pos[:, 1]
        return (torch.sin(4 * x) * torch.cos(9 * y) + x * y)[:, None]

    outs = []
    for n in (1200, 4800, 19200):
        mesh = dfg_mesh(n, seed=2)
        kernel = disco_kernel(mesh, query, kernel_shape=(3, 4), radius=field,
                              normalization="nodal", dtype=torch.float64)
        outs.append(kernel.responses(v(mesh.pos))[:, :, 0])  # [N_query, K]
    d1 = float((outs[1] - outs[0]).norm() / outs[2].norm())
    d2 = float((outs[2] - outs[1]).norm() / outs[2].norm())
    assert d2 < 0.4 * d1 and d2 < 0.01, (d1, d2)  # measured 1.25% and 0.33%: about h^2
