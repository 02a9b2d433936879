"""Quadrature-weighted L2/H1 errors against closed-form integrals, with convergence rates."""

import math

import pytest
import torch
from torch_geometric.data import Batch

from geo_neuralop.geometry import (
    GridQuadrature,
    GridSpec,
    PointQuadrature,
    SphereGridSpec,
    icosphere,
    jittered_rectangle_mesh,
    regular_grid,
    sphere_grid,
)
from geo_neuralop.geometry.quadrature import grid_quadrature_weights, sphere_quadrature_weights
from geo_neuralop.training import H1Loss, LpLoss, error_metrics, h1_error, lp_error
from tests.conftest import observed_order

S2 = math.sin(2.0)
E2 = (math.e**2 - 1) / 2  # int_0^1 e^{2y} dy


def _grid_fields(n, domain=((0.0, 1.0), (0.0, 2.0)), periodic=False):
    g = regular_grid((n, n), domain=domain, periodic=periodic)
    x, y = (c.reshape(n, n) for c in g.pos.T)
    return g, x, y


# --------------------------------------------------------------------------------------
# L2 on grids
# --------------------------------------------------------------------------------------


def test_relative_l2_of_sin_plus_eps_cos_on_a_grid_converges_to_the_integral(float64):
    # target sin(x), error eps cos(x) on [0,1] x [0,2]:
    # rel = eps sqrt(int cos^2 / int sin^2) = eps sqrt((2 + sin 2) / (2 - sin 2))
    eps = 0.1
    exact_rel = eps * math.sqrt((2 + S2) / (2 - S2))
    exact_abs = eps * math.sqrt(2 * (0.5 + S2 / 4))
    hs, errs = [], []
    for n in (9, 17, 33, 65):
        _, x, _ = _grid_fields(n)
        target = torch.sin(x)[None, None]
        pred = target + eps * torch.cos(x)[None, None]
        dom = [(0.0, 1.0), (0.0, 2.0)]
        rel = lp_error(pred, target, GridSpec((n, n), dom))
        hs.append(1.0 / (n - 1))
        errs.append(abs(rel.item() - exact_rel))
        assert lp_error(pred, target, GridSpec((n, n), dom), relative=False).item() == \
            pytest.approx(exact_abs, rel=0.02)
    assert errs[-1] < 1e-5
    assert observed_order(hs, errs) == pytest.approx(2.0, abs=0.15)


def test_explicit_weights_per_channel_totals_and_reductions(float64):
    n = 33
    g, x, y = _grid_fields(n)
    dom = [(0.0, 1.0), (0.0, 2.0)]
    target = torch.stack([torch.sin(x), y**2])[None]  # [1, 2, n, n]
    err = torch.stack([0.1 * torch.cos(x), 0.2 * torch.ones_like(y)])[None]
    pred = target + err
    w = g.weights.reshape(n, n)
    torch.testing.assert_close(w, grid_quadrature_weights((n, n), dom))
    w = GridQuadrature(GridSpec((n, n), dom), weights=w)
    per = lp_error(pred, target, w, per_channel=True)
    assert per.shape == (2,)
    # channel 1 exactly (trapezoid is exact for constants; y^4 is not): rel = 0.2 sqrt(2 / int y^4)
    assert per[1].item() == pytest.approx(0.2 * math.sqrt(2 / (32 / 5)), rel=2e-3)
    # total = sqrt(sum of squared channel error norms) / sqrt(sum of squared target norms)
    e2 = lp_error(pred, target, w, per_channel=True, relative=False) ** 2
    t2 = lp_error(torch.zeros_like(target), target, w, per_channel=True, relative=False) ** 2
    total = lp_error(pred, target, w)
    assert total.item() == pytest.approx(math.sqrt(e2.sum() / t2.sum()), rel=1e-12)
    # batch of 3 samples with different error sizes: mean/sum/none
    preds = torch.cat([target + s * err for s in (1.0, 2.0, 3.0)])
    targets = target.expand(3, -1, -1, -1)
    none = lp_error(preds, targets, w, reduction="none")
    torch.testing.assert_close(none, total * torch.tensor([1.0, 2.0, 3.0]))
    assert lp_error(preds, targets, w, reduction="sum").item() == pytest.approx(6 * total.item())
    assert lp_error(preds, targets, w).item() == pytest.approx(2 * total.item())
    # per-sample weights [B, *spatial] give the same result
    per_sample = GridQuadrature(GridSpec((n, n), dom),
                                weights=g.weights.reshape(n, n).expand(3, n, n))
    same = lp_error(preds, targets, per_sample, reduction="none")
    torch.testing.assert_close(same, none)


def test_periodic_grid_and_l1_norm(float64):
    n = 64
    x = torch.linspace(0, 2 * math.pi, n + 1)[:-1]
    target = torch.sin(x)[None, None]
    pred = target + 0.3 * torch.cos(x)[None, None]
    dom = (0.0, 2 * math.pi)
    circle = GridSpec((n,), dom, periodic=True)
    # periodic rule is exact for trigonometric polynomials: rel = 0.3, abs = 0.3 sqrt(pi)
    assert lp_error(pred, target, circle).item() == pytest.approx(0.3, 1e-13)
    assert lp_error(pred, target, circle, relative=False).item() == \
        pytest.approx(0.3 * math.sqrt(math.pi), rel=1e-13)
    # L1: int |cos| = int |sin| = 4 on the circle (kinks, so only close)
    big = 4096
    xb = torch.linspace(0, 2 * math.pi, big + 1)[:-1]
    t1, p1 = torch.sin(xb)[None, None], (torch.sin(xb) + 0.3 * torch.cos(xb))[None, None]
    assert lp_error(p1, t1, GridSpec((big,), dom, periodic=True), p=1,
                    relative=False).item() == pytest.approx(1.2, rel=1e-5)
    assert lp_error(p1, t1, GridSpec((big,), periodic=True), p=1).item() == \
        pytest.approx(0.3, rel=1e-5)


# --------------------------------------------------------------------------------------
# L2 on unstructured meshes and PyG batches
# --------------------------------------------------------------------------------------


def test_relative_l2_on_jittered_meshes_converges(float64):
    eps = 0.1
    exact = eps * math.sqrt((2 + S2) / (2 - S2))
    hs, errs = [], []
    for n in (9, 17, 33, 65):
        mesh = jittered_rectangle_mesh((n, 2 * n - 1), domain=((0.0, 1.0), (0.0, 2.0)), seed=n)
        x = mesh.pos[:, 0]
        target = torch.stack([torch.sin(x)], dim=1)  # [N, 1]
        pred = target + eps * torch.cos(x)[:, None]
        hs.append(1.0 / (n - 1))
        errs.append(abs(lp_error(pred, target, mesh).item() - exact))
    assert errs[-1] < 2e-4
    assert observed_order(hs, errs) > 1.7


def test_pyg_batch_gives_the_mean_of_per_graph_relative_errors(float64):
    clouds, singles = [], []
    for n, eps in ((9, 0.1), (23, 0.3)):
        mesh = jittered_rectangle_mesh((n, n), seed=n)
        x = mesh.pos[:, 0]
        target = torch.stack([torch.sin(x), 1 + x], dim=1)
        pred = target + eps * torch.stack([torch.cos(x), torch.ones_like(x)], dim=1)
        mesh.y, mesh.pred = target, pred
        clouds.append(mesh)
        singles.append(lp_error(pred, target, mesh))
    batch = Batch.from_data_list(clouds)
    loss = LpLoss()
    value = loss(batch.pred, batch.y, batch)
    assert value.item() == pytest.approx(0.5 * (singles[0] + singles[1]).item(), rel=1e-12)
    # the coarse mesh's error must not be diluted by the fine mesh's points
    none = LpLoss(reduction="none")(batch.pred, batch.y,
                                    PointQuadrature(batch.weights, batch.batch, num_graphs=2))
    torch.testing.assert_close(none, torch.stack(singles))
    assert none[1] / none[0] == pytest.approx(3.0, rel=0.05)
    # uniform weights 1/N_g per graph
    counts = torch.bincount(batch.batch).to(batch.pred.dtype)
    uniform = lp_error(batch.pred, batch.y,
                       PointQuadrature(1.0 / counts[batch.batch], batch.batch),
                       reduction="none")
    for g, cloud in enumerate(clouds):
        n = cloud.num_nodes
        assert uniform[g].item() == pytest.approx(
            lp_error(cloud.pred, cloud.y, PointQuadrature(torch.full((n,), 1.0 / n))).item(),
            rel=1e-12)
    # there is no default quadrature any more
    with pytest.raises(ValueError, match="needs a quadrature"):
        loss(batch.pred, batch.y)


# --------------------------------------------------------------------------------------
# L2 on the sphere
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("grid", ["legendre-gauss", "equiangular"])
def test_sphere_grid_relative_l2_is_exact_for_low_degree_polynomials(float64, grid):
    # target 1 + z, error eps x y: int (1+z)^2 = 16 pi / 3, int x^2 y^2 = 4 pi / 15
    eps = 0.2
    g = sphere_grid(12, 24, grid=grid)
    x, y, z = (c.reshape(1, 1, 12, 24) for c in g.pos.T)
    target, pred = 1 + z, 1 + z + eps * x * y
    exact = eps * math.sqrt((4 * math.pi / 15) / (16 * math.pi / 3))
    spec = SphereGridSpec(12, 24, grid)
    assert lp_error(pred, target, spec).item() == pytest.approx(exact, rel=1e-12)
    w = g.weights.reshape(12, 24)
    torch.testing.assert_close(w, sphere_quadrature_weights(12, 24, grid))
    assert lp_error(pred, target, GridQuadrature(spec, weights=w),
                    relative=False).item() == pytest.approx(
        eps * math.sqrt(4 * math.pi / 15), rel=1e-12)


def _sphere_moment(a, b, c):
    """int_{S^2} x^(2a) y^(2b) z^(2c) dOmega = 2 G(a+1/2) G(b+1/2) G(c+1/2) / G(a+b+c+3/2)."""
    g = math.gamma
    return 2 * g(a + 0.5) * g(b + 0.5) * g(c + 0.5) / g(a + b + c + 1.5)


def test_icosphere_point_cloud_l2_converges(float64):
    # target 1 + z + x^3, error eps (x y^2 z^3 + y^4); odd cross terms integrate to zero
    eps = 0.2
    ref = _sphere_moment(0, 0, 0) + _sphere_moment(0, 0, 1) + _sphere_moment(3, 0, 0)
    err = _sphere_moment(1, 2, 3) + _sphere_moment(0, 4, 0)
    exact = eps * math.sqrt(err / ref)
    errs, hs = [], []
    for level in (2, 3, 4, 5):
        s = icosphere(level)
        x, y, z = s.pos.T
        target = 1 + z + x**3
        pred = target + eps * (x * y**2 * z**3 + y**4)
        errs.append(abs(lp_error(pred[:, None], target[:, None], s).item() - exact))
        hs.append(2.0**-level)
    assert errs[-1] < 1e-4 * exact
    assert observed_order(hs, errs) > 1.8


# --------------------------------------------------------------------------------------
# H1
# --------------------------------------------------------------------------------------


def test_h1_by_finite_differences_converges_at_second_order(float64):
    # target sin(x) e^y, error eps cos(x) e^y on [0,1]^2 (non-periodic):
    # ||f||^2 = (1/2 - sin2/4) E2, ||grad f||^2 = E2, ||e||^2 = eps^2 (1/2 + sin2/4) E2,
    # ||grad e||^2 = eps^2 E2
    eps = 0.1
    exact_h1 = eps * math.sqrt((6 + S2) / (6 - S2))
    exact_abs = eps * math.sqrt((1.5 + S2 / 4) * E2)
    hs, errs, errs_semi = [], [], []
    for n in (17, 33, 65, 129):
        _, x, y = _grid_fields(n, domain=((0.0, 1.0), (0.0, 1.0)))
        target = (torch.sin(x) * torch.exp(y))[None, None]
        pred = target + eps * (torch.cos(x) * torch.exp(y))[None, None]
        hs.append(1.0 / (n - 1))
        unit = GridSpec((n, n))
        errs.append(abs(h1_error(pred, target, unit).item() - exact_h1))
        errs_semi.append(abs(h1_error(pred, target, unit, seminorm=True).item() - eps))
        assert h1_error(pred, target, unit, relative=False).item() == pytest.approx(exact_abs,
                                                                                  rel=5e-3)
    assert observed_order(hs, errs) == pytest.approx(2.0, abs=0.2)
    assert observed_order(hs, errs_semi) == pytest.approx(2.0, abs=0.2)
    assert errs[-1] < 1e-5


def test_h1_on_a_periodic_grid_converges(float64):
    # f = sin x cos 2y, e = eps cos x sin y on [0, 2pi]^2: rel H1 = eps sqrt(3 pi^2 / 6 pi^2)
    eps = 0.05
    errs, hs = [], []
    for n in (16, 32, 64, 128):
        _, x, y = _grid_fields(n, domain=(0.0, 2 * math.pi), periodic=True)
        target = (torch.sin(x) * torch.cos(2 * y))[None, None]
        pred = target + eps * (torch.cos(x) * torch.sin(y))[None, None]
        loss = H1Loss(quadrature=GridSpec((n, n), (0.0, 2 * math.pi), periodic=True))
        hs.append(2 * math.pi / n)
        errs.append(abs(loss(pred, target).item() - eps / math.sqrt(2)))
    assert observed_order(hs, errs) == pytest.approx(2.0, abs=0.1)


def test_h1_with_given_gradient_fields_on_a_mesh(float64):
    eps = 0.1
    exact = eps * math.sqrt((6 + S2) / (6 - S2))
    errs = []
    for n in (9, 17, 33):
        mesh = jittered_rectangle_mesh((n, n), seed=1)
        x, y = mesh.pos.T
        f = torch.sin(x) * torch.exp(y)
        e = eps * torch.cos(x) * torch.exp(y)
        grad_f = torch.stack([torch.cos(x), torch.sin(x)], -1) * torch.exp(y)[:, None]
        grad_e = eps * torch.stack([-torch.sin(x), torch.cos(x)], -1) * torch.exp(y)[:, None]
        value = h1_error((f + e)[:, None], f[:, None], mesh,
                         pred_grad=(grad_f + grad_e)[:, None], target_grad=grad_f[:, None])
        errs.append(abs(value.item() - exact))
    assert errs[2] < errs[1] < errs[0]
    assert errs[2] < 1e-4
    with pytest.raises(ValueError, match="pred_grad"):
        h1_error(f[:, None], f[:, None], mesh)


@pytest.mark.parametrize("grid", ["legendre-gauss", "equiangular"])
def test_sphere_h1_from_spherical_harmonics(float64, grid):
    # target z (l=1), error eps x y (l=2): ||grad Y_l||^2 = l (l+1) ||Y_l||^2
    # rel H1 = eps sqrt((4pi/15 + 8pi/5) / (4pi/3 + 8pi/3)) = eps sqrt(7/15); seminorm eps sqrt(3/5)
    eps = 0.1
    nlat, nlon = 16, 32
    g = sphere_grid(nlat, nlon, grid=grid)
    x, y, z = (c.reshape(1, 1, nlat, nlon) for c in g.pos.T)
    target, pred = z, z + eps * x * y
    spec = SphereGridSpec(nlat, nlon, grid)
    assert h1_error(pred, target, spec).item() == pytest.approx(
        eps * math.sqrt(7 / 15), rel=1e-9)
    assert h1_error(pred, target, spec, seminorm=True).item() == pytest.approx(
        eps * math.sqrt(3 / 5), rel=1e-9)
    assert h1_error(pred, target, spec, relative=False, seminorm=True).item() == \
        pytest.approx(eps * math.sqrt(8 * math.pi / 5), rel=1e-9)


def test_sphere_h1_of_a_smooth_field_converges_on_equiangular_grids(float64):
    # f = exp(z): ||grad f||^2 = int (1 - z^2) e^{2z} = 2 pi int_{-1}^{1} (1 - t^2) e^{2t} dt
    exact = 2 * math.pi * (math.e**2 + 3 * math.e**-2) / 4
    errs = []
    for nlat in (9, 17, 33):
        g = sphere_grid(nlat, 2 * nlat, grid="equiangular")
        z = g.pos[:, 2].reshape(1, 1, nlat, 2 * nlat)
        f = torch.exp(z)
        value = h1_error(f, torch.zeros_like(f), SphereGridSpec(nlat, 2 * nlat, "equiangular"),
                         relative=False, seminorm=True).item() ** 2
        errs.append(abs(value - exact))
    assert errs[2] < errs[1] < errs[0]
    assert errs[2] < 1e-8 * exact


def test_error_metrics_names_and_consistency_with_losses(float64):
    n = 33
    _, x, y = _grid_fields(n)
    target = torch.stack([torch.sin(x), torch.cos(y)])[None].repeat(2, 1, 1, 1)
    pred = target + 0.1 * torch.randn_like(target)
    unit = GridSpec((n, n))
    m = error_metrics(pred, target, unit, channel_names=["u", "v"])
    assert set(m) == {f"{k}{c}" for k in ("rel_l2", "abs_l2", "rel_h1", "abs_h1")
                      for c in ("", "/u", "/v")}
    torch.testing.assert_close(m["rel_l2"], lp_error(pred, target, unit, reduction="none"))
    torch.testing.assert_close(
        m["rel_h1/v"], h1_error(pred, target, unit, reduction="none", per_channel=True)[:, 1])
    points = error_metrics(pred[0].reshape(2, -1).T, target[0].reshape(2, -1).T,
                           PointQuadrature(torch.full((n * n,), 1.0 / (n * n))))
    assert "rel_h1" not in points and points["rel_l2"].shape == (1,)
    # too few points for finite differences: H1 is left out unless asked for
    thin_grid = GridSpec((2, n))
    thin = error_metrics(pred[:, :, :2], target[:, :, :2], thin_grid)
    assert "rel_h1" not in thin and "rel_l2" in thin
    with pytest.raises(ValueError, match="at least 3 points"):
        error_metrics(pred[:, :, :2], target[:, :, :2], thin_grid, h1=True)


def test_losses_are_differentiable_and_safe_under_low_precision(float64):
    torch.manual_seed(0)
    pred = torch.randn(7, 2, requires_grad=True)
    target = torch.randn(7, 2)
    w = torch.rand(7) + 0.1
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    assert torch.autograd.gradcheck(
        lambda p: lp_error(p, target, PointQuadrature(w, batch)), (pred,))
    grid_pred = torch.randn(2, 1, 6, 5, requires_grad=True)
    grid_target = torch.randn(2, 1, 6, 5)
    grid = GridSpec((6, 5))
    assert torch.autograd.gradcheck(lambda p: h1_error(p, grid_target, grid), (grid_pred,))
    # bf16 inputs are summed in float32
    ref = lp_error(grid_pred.detach(), grid_target, grid)
    low = lp_error(grid_pred.detach().bfloat16(), grid_target.bfloat16(), grid)
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(ref.item(), rel=2e-2)


def test_bad_arguments_are_reported():
    y = torch.ones(5, 2)
    five = PointQuadrature(torch.ones(5))
    with pytest.raises(ValueError, match="shape"):
        lp_error(torch.ones(5, 3), y, five)
    with pytest.raises(ValueError, match=r"pred must have shape \[4\]"):
        lp_error(y, y, PointQuadrature(torch.ones(4)))
    with pytest.raises(ValueError, match="weights must be a tensor of shape"):
        PointQuadrature(torch.ones(5, 1))
    with pytest.raises(ValueError, match="p must be"):
        LpLoss(p=0.5)
    with pytest.raises(ValueError, match="reduction"):
        LpLoss(reduction="avg")
    with pytest.raises(TypeError, match="quadrature must be"):
        lp_error(y, y, "mesh")
    with pytest.raises(TypeError, match="quadrature must be"):
        lp_error(y, y, torch.ones(5))  # a bare weights tensor is not a quadrature
    with pytest.raises(ValueError, match="needs a quadrature"):
        LpLoss()(y, y)
    with pytest.raises(ValueError, match="grid must be one of"):
        H1Loss(quadrature=SphereGridSpec(8, 16, "healpix"))
    with pytest.raises(ValueError, match="batch must have shape"):
        PointQuadrature(torch.ones(5), batch=torch.zeros(3, dtype=torch.long))
    g = torch.ones(1, 1, 2, 8)
    with pytest.raises(ValueError, match="at least 3 points"):
        h1_error(g, g, GridSpec((2, 8)))
    with pytest.raises(ValueError, match="grid weights"):
        GridQuadrature(GridSpec((2, 8)), weights=torch.ones(3, 8))
    with pytest.raises(TypeError, match="tensors"):
        lp_error([1.0], torch.ones(1), PointQuadrature(torch.ones(1)))
    with pytest.raises(ValueError, match="given together"):
        h1_error(y, y, five, pred_grad=torch.ones(5, 2, 2))
