"""Transolver: learns a global operator on batches that mix meshes, equals per-mesh runs, runs on
the sphere, rebuilds from its config, and refuses bad inputs."""

import pytest
import torch
from torch_geometric.data import Batch

from geo_neuralop.geometry import jittered_rectangle_mesh, sphere_grid
from geo_neuralop.models import Transolver, get_model


def _samples(count, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(count):
        mesh = jittered_rectangle_mesh((8 + i % 3, 7 + i % 2), seed=seed * 100 + i)
        x, y = mesh.pos.T
        a, b = torch.randn(2, generator=g)
        u = a * torch.sin(3 * x) + b * y
        mean = (mesh.weights * u).sum() / mesh.weights.sum()  # integral average of u
        mesh.x = u[:, None]
        mesh.y = (mean * torch.cos(2 * x) + 0.5 * u)[:, None]
        out.append(mesh)
    return out


def test_learns_an_integral_operator_on_mixed_meshes():
    torch.manual_seed(0)
    train, test = _samples(24, 0), _samples(8, 1)
    model = Transolver(1, 1, pos_dim=2, hidden_channels=32, n_layers=2, heads=4, slices=8)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    @torch.no_grad()
    def rel_error(samples):
        batch = Batch.from_data_list(samples)
        return float((model(batch) - batch.y).norm() / batch.y.norm())

    before = rel_error(test)
    for step in range(150):
        batch = Batch.from_data_list(train[(step % 3) * 8:(step % 3 + 1) * 8])
        opt.zero_grad()
        (model(batch) - batch.y).square().mean().backward()
        opt.step()
    with torch.no_grad():
        after = rel_error(test)
    assert after < 0.2 and after < before / 4, (before, after)
    # one batch of different meshes equals the meshes one by one
    batch = Batch.from_data_list(test[:3])
    parts = model(batch).split([m.num_nodes for m in test[:3]])
    for mesh, part in zip(test[:3], parts, strict=True):
        assert (model(mesh) - part).abs().max() < 1e-5


def test_sphere_config_and_bad_inputs():
    sphere = sphere_grid(8, 16)
    model = get_model("transolver", in_channels=2, out_channels=1, pos_dim=3, hidden_channels=16,
                      n_layers=1, heads=2, slices=4)
    assert model(sphere, x=torch.randn(128, 2)).shape == (128, 1)
    assert get_model("transolver", **model.config).config == model.config
    mesh = jittered_rectangle_mesh((5, 5))
    with pytest.raises(ValueError, match="multiple of heads"):
        Transolver(1, 1, hidden_channels=30, heads=4)
    with pytest.raises(ValueError, match="slices"):
        Transolver(1, 1, slices=0)
    with pytest.raises(ValueError, match="pos_dim"):
        model(mesh, x=torch.randn(25, 2))
    with pytest.raises(ValueError, match="channels"):
        Transolver(1, 1)(mesh, x=torch.randn(25, 3))
    with pytest.raises(TypeError, match="cloud must be a PointCloud"):
        Transolver(1, 1)(torch.randn(25, 2))
