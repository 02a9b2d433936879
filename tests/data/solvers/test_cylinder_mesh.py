import math

import numpy as np
import pytest
from scipy.spatial import cKDTree

from geo_neuralop.data.solvers.cylinder_mesh import cylinder_channel_mesh


def _edges(triangles):
    e = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    return np.sort(e, axis=1)


def _boundary_edges(triangles):
    edges, counts = np.unique(_edges(triangles), axis=0, return_counts=True)
    return edges[counts == 1]


def _angles(points, triangles):
    p = points[triangles]  # [T, 3, 2]
    out = []
    for i in range(3):
        a = p[:, (i + 1) % 3] - p[:, i]
        b = p[:, (i + 2) % 3] - p[:, i]
        cos = np.einsum("ti,ti->t", a, b) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        out.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return np.stack(out, 1)


def _signed_areas(points, triangles):
    a, b, c = (points[triangles[:, i]] for i in range(3))
    ab, ac = b - a, c - a
    return 0.5 * (ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0])


@pytest.fixture(scope="module")
def dfg_mesh():
    return cylinder_channel_mesh()


def test_default_mesh_is_the_dfg_channel_with_the_requested_size(dfg_mesh):
    m = dfg_mesh
    assert m.points.dtype == np.float64 and m.triangles.dtype == np.int64
    assert abs(m.n_vertices - 2200) <= 0.05 * 2200
    assert m.points[:, 0].min() == 0.0 and m.points[:, 0].max() == pytest.approx(2.2, abs=1e-15)
    assert m.points[:, 1].min() == 0.0 and m.points[:, 1].max() == pytest.approx(0.41, abs=1e-15)
    # counter-clockwise, non-degenerate triangles covering the channel minus the polygonal disc
    areas = _signed_areas(m.points, m.triangles)
    assert areas.min() > 0
    n_cyl = m.boundary_edges["cylinder"].shape[0]
    polygon = 0.5 * n_cyl * 0.05**2 * math.sin(2 * math.pi / n_cyl)
    assert areas.sum() == pytest.approx(2.2 * 0.41 - polygon, rel=1e-12)
    # one hole: Euler characteristic V - E + F = 0
    n_edges = np.unique(_edges(m.triangles), axis=0).shape[0]
    assert m.n_vertices - n_edges + m.triangles.shape[0] == 0


@pytest.mark.parametrize("target", [600, 3500])
def test_vertex_count_follows_target(target):
    m = cylinder_channel_mesh(target_vertices=target)
    assert abs(m.n_vertices - target) <= 0.05 * target


def test_boundary_markers_cover_exactly_the_mesh_boundary(dfg_mesh):
    m = dfg_mesh
    p = m.points
    named = np.concatenate([np.sort(e, axis=1) for e in m.boundary_edges.values()])
    assert np.unique(named, axis=0).shape[0] == named.shape[0]  # no edge in two sets
    actual = _boundary_edges(m.triangles)
    np.testing.assert_array_equal(np.unique(named, axis=0), actual)
    inlet, outlet = m.boundary_vertices("inlet"), m.boundary_vertices("outlet")
    walls, cyl = m.boundary_vertices("walls"), m.boundary_vertices("cylinder")
    assert np.all(p[inlet, 0] == 0.0) and np.all(p[outlet, 0] == 2.2)
    assert np.all((p[walls, 1] == 0.0) | (p[walls, 1] == 0.41))
    np.testing.assert_allclose(np.hypot(p[cyl, 0] - 0.2, p[cyl, 1] - 0.2), 0.05, rtol=1e-14)
    # inlet spans the whole left side, corners shared with the walls
    assert p[inlet, 1].min() == 0.0 and p[inlet, 1].max() == pytest.approx(0.41)
    markers = m.vertex_markers()
    assert set(np.unique(markers)) == {0, 1, 2, 3, 4}
    assert np.all(markers[cyl] == 4) and markers[inlet].tolist().count(1) == inlet.size - 2


def test_mesh_is_graded_towards_the_cylinder_and_has_good_triangles(dfg_mesh):
    m = dfg_mesh
    e = np.unique(_edges(m.triangles), axis=0)
    length = np.linalg.norm(m.points[e[:, 0]] - m.points[e[:, 1]], axis=1)
    mid = m.points[e].mean(axis=1)
    dist = np.hypot(mid[:, 0] - 0.2, mid[:, 1] - 0.2) - 0.05
    near = length[dist < 0.01].mean()
    far = length[mid[:, 0] > 1.5].mean()
    assert far > 4 * near, (near, far)
    # the cylinder is resolved by at least 40 edges (about 8 degrees each)
    assert m.boundary_edges["cylinder"].shape[0] >= 40
    # edge lengths follow the size function within a factor of 2 (triangle quality meshing)
    ratio = length / m.size_function(mid)
    assert 0.4 < np.median(ratio) < 1.3 and ratio.max() < 2.0
    angles = _angles(m.points, m.triangles)
    assert angles.min() > 20.0  # Triangle's q30 bound, relaxed near input segments


def test_same_seed_same_mesh_other_seed_other_mesh():
    a = cylinder_channel_mesh(target_vertices=800, seed=3)
    b = cylinder_channel_mesh(target_vertices=800, seed=3)
    c = cylinder_channel_mesh(target_vertices=800, seed=4)
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.triangles, b.triangles)
    assert a.points.shape != c.points.shape or not np.array_equal(a.points, c.points)
    assert abs(c.n_vertices - 800) <= 40


def test_other_cylinder_positions_and_radii():
    m = cylinder_channel_mesh(center=(0.5, 0.25), radius=0.03, target_vertices=1500, seed=2)
    cyl = m.boundary_vertices("cylinder")
    np.testing.assert_allclose(np.hypot(m.points[cyl, 0] - 0.5, m.points[cyl, 1] - 0.25), 0.03,
                               rtol=1e-14)
    assert abs(m.n_vertices - 1500) <= 75
    assert _signed_areas(m.points, m.triangles).min() > 0


def test_mirror_symmetric_mesh_is_its_own_reflection():
    m = cylinder_channel_mesh(center=(0.2, 0.205), target_vertices=1000, mirror_symmetric=True)
    reflected = m.points * np.array([1.0, -1.0]) + np.array([0.0, 0.41])
    dist, _ = cKDTree(m.points).query(reflected)
    assert dist.max() < 1e-12
    assert _signed_areas(m.points, m.triangles).min() > 0
    np.testing.assert_array_equal(np.unique(np.concatenate(
        [np.sort(e, axis=1) for e in m.boundary_edges.values()]), axis=0),
        _boundary_edges(m.triangles))
    assert set(m.boundary_edges) == {"inlet", "outlet", "walls", "cylinder"}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"radius": 0.0}, ValueError, "radius"),
        ({"radius": -0.1}, ValueError, "radius"),
        ({"radius": 0.2}, ValueError, "gap"),
        ({"center": (0.2, 0.03)}, ValueError, "walls"),
        ({"center": (2.19, 0.2)}, ValueError, "outlet"),
        ({"center": (0.03, 0.2)}, ValueError, "inlet"),
        ({"center": (float("nan"), 0.2)}, ValueError, "finite"),
        ({"center": "middle"}, TypeError, "center"),
        ({"height": -1.0}, ValueError, "height"),
        ({"target_vertices": 50}, ValueError, "target_vertices"),
        ({"target_vertices": 2200.0}, TypeError, "target_vertices"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"mirror_symmetric": True}, ValueError, "mid-line"),
        ({"tolerance": 0.0}, ValueError, "tolerance"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        cylinder_channel_mesh(**kwargs)


def test_unknown_boundary_name_raises(dfg_mesh):
    with pytest.raises(ValueError, match="unknown boundary 'top'"):
        dfg_mesh.boundary_vertices("top")
