import re

import pytest
import torch
from torch_geometric.data import Batch

from geo_neuralop.geometry import PointCloud, jittered_rectangle_mesh, sphere_grid


def _square():
    pos = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    return pos, torch.full((4,), 0.25), faces


def test_valid_cloud_keeps_attributes_and_integrates():
    pos, w, faces = _square()
    cloud = PointCloud(pos, w, faces=faces, p=torch.arange(4.0), u=torch.ones(4, 2))
    assert cloud.manifold == "euclidean"
    assert cloud.dim == 2
    assert cloud.field_names == ["p", "u"]
    assert cloud.integrate(cloud.p).item() == pytest.approx(1.5)
    torch.testing.assert_close(cloud.integrate(cloud.u), torch.tensor([1.0, 1.0]))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p, w, f: (p.index_put_((torch.tensor([2]),), torch.tensor([float("nan"), 0.0])),
                          w, f), "point index 2"),
        (lambda p, w, f: (p.index_put_((torch.tensor([3]),), torch.tensor([float("inf"), 0.0])),
                          w, f), "point index 3"),
        (lambda p, w, f: (p, w.index_put_((torch.tensor([1]),), torch.tensor(0.0)), f),
         r"weights\[1\]"),
        (lambda p, w, f: (p, w.index_put_((torch.tensor([2]),), torch.tensor(-1.0)), f),
         r"weights\[2\]"),
        (lambda p, w, f: (p, w, torch.tensor([[0, 1, 2], [0, 2, 4]])), "face index 1"),
        (lambda p, w, f: (p, w, torch.tensor([[0, 1, 2], [0, -1, 3]])), "face index 1"),
        (lambda p, w, f: (p, w, torch.tensor([[0, 1, 2], [0, 2, 2]])), "degenerate"),
        (lambda p, w, f: (torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [0.0, 1.0]]), w,
                          torch.tensor([[0, 1, 2]])), "face index 0"),
        (lambda p, w, f: (torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [1.0, 0.0]]), w,
                          None), "point index 3 repeats point index 1"),
    ],
)
def test_bad_input_names_the_offending_index(mutate, message):
    pos, w, faces = mutate(*_square())
    with pytest.raises(ValueError, match=message):
        PointCloud(pos, w, faces=faces)


def test_sphere_points_must_be_unit_vectors():
    pos = torch.nn.functional.normalize(torch.randn(10, 3, dtype=torch.float64), dim=1)
    PointCloud(pos, torch.ones(10), manifold="sphere")
    pos[7] *= 1.0 + 2e-6
    with pytest.raises(ValueError, match="sphere point index 7 is off the unit sphere"):
        PointCloud(pos, torch.ones(10), manifold="sphere")
    pos[7] /= 1.0 + 2e-6
    pos[7] *= 1.0 + 5e-7  # inside the 1e-6 tolerance
    PointCloud(pos, torch.ones(10), manifold="sphere")
    with pytest.raises(ValueError, match="unit vectors in R\\^3"):
        PointCloud(torch.randn(4, 2), torch.ones(4), manifold="sphere")


def test_other_bad_input():
    pos, w, faces = _square()
    with pytest.raises(ValueError, match="manifold must be one of"):
        PointCloud(pos, w, manifold="torus")
    with pytest.raises(ValueError, match=r"weights must have shape \[4\]"):
        PointCloud(pos, w[:3])
    with pytest.raises(ValueError, match="field 'p' has 3 rows but the cloud has 4 points"):
        PointCloud(pos, w, p=torch.zeros(3))
    with pytest.raises(TypeError, match="pos must be floating point"):
        PointCloud(pos.long(), w)
    with pytest.raises(TypeError, match="faces must be an integer tensor"):
        PointCloud(pos, w, faces=faces.float())
    with pytest.raises(ValueError, match="weights is required"):
        PointCloud(pos)
    with pytest.raises(ValueError, match="pos is empty"):
        PointCloud(torch.zeros(0, 2), torch.zeros(0))


def test_equiangular_poles_are_allowed_duplicates_only_for_structured_grids():
    grid = sphere_grid(8, 16, "equiangular")
    with pytest.raises(ValueError, match=re.escape("point index 1 repeats point index 0")):
        PointCloud(grid.pos, grid.weights, manifold="sphere")


def test_batch_of_different_sizes_offsets_faces_and_splits_back():
    clouds = [
        jittered_rectangle_mesh((4, 5), seed=1),
        jittered_rectangle_mesh((7, 3), seed=2),
        jittered_rectangle_mesh((6, 6), seed=3),
    ]
    for k, c in enumerate(clouds):
        c.u = torch.full((c.num_nodes, 2), float(k))
    batch = Batch.from_data_list(clouds)
    sizes = [c.num_nodes for c in clouds]
    assert batch.num_nodes == sum(sizes)
    assert batch.weights.shape == (sum(sizes),)
    offset = 0
    start = 0
    for c in clouds:
        nf = c.faces.shape[0]
        torch.testing.assert_close(batch.faces[start:start + nf], c.faces + offset)
        offset += c.num_nodes
        start += nf
    # Each sample's quadrature still integrates its own domain (area 1).
    per_sample = torch.zeros(3).index_add_(0, batch.batch, batch.weights)
    torch.testing.assert_close(per_sample, torch.ones(3))
    back = batch.to_data_list()
    assert [type(c) for c in back] == [PointCloud] * 3
    for a, b in zip(clouds, back, strict=True):
        torch.testing.assert_close(a.pos, b.pos)
        torch.testing.assert_close(a.weights, b.weights)
        torch.testing.assert_close(a.faces, b.faces)
        torch.testing.assert_close(a.u, b.u)
        assert b.manifold == "euclidean"
