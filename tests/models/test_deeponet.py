"""DeepONet: learns the antiderivative operator of the DeepONet paper to the paper's error, its
quadrature encoder converges at second order under refinement, POD-DeepONet's modes are the SVD's,
batches of different meshes equal separate runs, and bad inputs are refused."""

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from geo_neuralop.geometry import PointCloud, jittered_rectangle_mesh, regular_grid, sphere_grid
from geo_neuralop.models import DeepONet, get_model
from tests.conftest import observed_order


def _grf_antiderivative(n_funcs: int, seed: int, length: float = 0.2):
    """u ~ GP(0, exp(-|x-x'|^2 / (2 l^2))) on [0, 1] and G(u)(y) = int_0^y u, on 100 sensors.

    Sampled on 991 points (sensors every 10th), integrated by the trapezoid rule there.
    """
    x = np.linspace(0.0, 1.0, 991)
    k = np.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / length ** 2)
    chol = np.linalg.cholesky(k + 1e-10 * np.eye(len(x)))
    u = (chol @ np.random.default_rng(seed).standard_normal((len(x), n_funcs))).T
    g = np.concatenate([np.zeros((n_funcs, 1)),
                        np.cumsum(0.5 * (u[:, 1:] + u[:, :-1]) * (x[1] - x[0]), axis=1)], 1)
    return (torch.tensor(u[:, ::10], dtype=torch.float32),
            torch.tensor(g[:, ::10], dtype=torch.float32))


def _batch(grid: PointCloud, values: torch.Tensor) -> Batch:
    clouds = []
    for row in values:
        cloud = grid.clone()
        cloud.x = row[:, None]
        clouds.append(cloud)
    return Batch.from_data_list(clouds)


def _train(model, inputs, targets, grid, iterations, lr=1e-3):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations)
    for _ in range(iterations):
        opt.zero_grad()
        loss = (model(inputs, query=grid) - targets).square().mean()
        loss.backward()
        opt.step()
        sched.step()


def test_learns_the_antiderivative_to_the_papers_error():
    """The paper's setup (GRF l = 0.2, 100 sensors, [100, 40, 40] / [1, 40, 40] ReLU nets, Adam
    1e-3): its reference run logs test MSE 2.9e-4 at step 1000 and 1.0e-4 at step 2000."""
    torch.manual_seed(0)
    grid = regular_grid((100,), [(0.0, 1.0)], dtype=torch.float32)
    u, g = _grf_antiderivative(250, seed=0)
    u_test, g_test = _grf_antiderivative(200, seed=1)
    model = DeepONet(1, 1, pos_dim=1, branch="sensors", n_sensors=100, n_basis=40, width=40,
                     branch_layers=1, trunk_layers=2, activation="relu")
    _train(model, _batch(grid, u), g.reshape(-1, 1), grid, iterations=1000)
    with torch.no_grad():
        mse = float((model(_batch(grid, u_test), query=grid) - g_test.reshape(-1, 1)).square()
                    .mean())
    assert mse < 4e-4, mse  # measured 2.0e-4


def test_pod_deeponet_modes_and_antiderivative():
    torch.manual_seed(0)
    grid = regular_grid((100,), [(0.0, 1.0)], dtype=torch.float32)
    u, g = _grf_antiderivative(250, seed=0)
    model = DeepONet(1, 1, pos_dim=1, branch="sensors", n_sensors=100, trunk="pod",
                     pod_points=100, n_basis=12, width=40, branch_layers=2, activation="relu")
    explained = model.fit_pod(g[:, :, None])
    modes = model.pod_modes[:, :, 0].double()
    assert (modes.T @ modes - torch.eye(12, dtype=torch.float64)).abs().max() < 1e-5
    centred = (g - g.mean(0)).double()
    s = torch.linalg.svdvals(centred)
    assert float(explained) == pytest.approx(float(s[:12].square().sum() / s.square().sum()),
                                             rel=1e-6)
    assert float(explained) > 0.9999  # antiderivatives of smooth GRFs are nearly 12-dimensional
    _train(model, _batch(grid, u), g.reshape(-1, 1), grid, iterations=600)
    u_test, g_test = _grf_antiderivative(100, seed=1)
    with torch.no_grad():
        mse = float((model(_batch(grid, u_test), query=grid) - g_test.reshape(-1, 1)).square()
                    .mean())
    assert mse < 1e-3, mse


def test_integral_encoder_converges_at_second_order_under_refinement(float64):
    """The encoder's integrals sum_i w_i phi_j(x_i) u(x_i) of one smooth u on finer grids."""
    torch.manual_seed(0)
    model = DeepONet(1, 2, pos_dim=2, n_basis=8, width=16).double()

    def coeffs(n):
        grid = regular_grid((n, n), [(0.0, 1.0), (0.0, 2.0)], dtype=torch.float64)
        x, y = grid.pos.T
        u = (torch.sin(3 * x) * torch.cos(2 * y) + x * y)[:, None]
        return model.encode(grid, u).detach()

    ref = coeffs(257)
    sizes = [9, 17, 33, 65]
    errors = [float((coeffs(n) - ref).abs().max()) for n in sizes]
    assert observed_order([1 / (n - 1) for n in sizes], errors) > 1.8, errors


def test_batches_of_different_clouds_equal_separate_runs():
    torch.manual_seed(0)
    model = DeepONet(2, 3, pos_dim=2, n_basis=8, width=16)
    meshes = [jittered_rectangle_mesh((8, 6), seed=1), jittered_rectangle_mesh((11, 9), seed=2),
              jittered_rectangle_mesh((7, 7), seed=3)]
    for m in meshes:
        m.x = torch.randn(m.num_nodes, 2)
    batch = Batch.from_data_list(meshes)
    out = model(batch)
    parts = out.split([m.num_nodes for m in meshes])
    for m, part in zip(meshes, parts, strict=True):
        assert (model(m) - part).abs().max() < 1e-5
    # a query cloud other than the input, and the shared-query form
    query = regular_grid((5, 4))
    shared = model(batch, query=query).reshape(3, 20, 3)
    for i, m in enumerate(meshes):
        assert (model(m, query=query) - shared[i]).abs().max() < 1e-5
    sphere = sphere_grid(6, 12)
    sphere.x = torch.randn(sphere.num_nodes, 1)
    assert DeepONet(1, 1, pos_dim=3)(sphere).shape == (72, 1)


def test_config_round_trip_and_bad_inputs():
    model = get_model("deeponet", in_channels=1, out_channels=1, pos_dim=2)
    assert model.config["branch"] == "integral"
    with pytest.raises(ValueError, match="branch"):
        DeepONet(1, 1, branch="cnn")
    with pytest.raises(ValueError, match="n_sensors"):
        DeepONet(1, 1, branch="sensors")
    with pytest.raises(ValueError, match="pod_points"):
        DeepONet(1, 1, trunk="pod")
    with pytest.raises(ValueError, match="n_basis"):
        DeepONet(1, 1, n_basis=0)
    mesh = jittered_rectangle_mesh((6, 5))
    with pytest.raises(ValueError, match="channels"):
        model(mesh, x=torch.randn(30, 2))
    with pytest.raises(ValueError, match="pos_dim"):
        DeepONet(1, 1, pos_dim=3)(mesh, x=torch.randn(30, 1))
    sensors = DeepONet(1, 1, branch="sensors", n_sensors=20)
    with pytest.raises(ValueError, match="n_sensors=20"):
        sensors(mesh, x=torch.randn(30, 1))
    pod = DeepONet(1, 1, trunk="pod", pod_points=30)
    with pytest.raises(ValueError, match="fit_pod"):
        pod(mesh, x=torch.randn(30, 1))
    with pytest.raises(TypeError, match="cloud must be a PointCloud"):
        model(torch.randn(30, 2), x=torch.randn(30, 1))
