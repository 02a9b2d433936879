"""B-spline KAN layer: partition of unity, agreement with scipy's B-splines, O(h^4) fits."""

import math

import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline

from geo_neuralop.layers import KAN, KANLinear
from geo_neuralop.layers.kan import bspline_basis
from tests.conftest import observed_order


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_partition_of_unity_and_scipy_reference(float64, order):
    layer = KANLinear(1, 1, grid_size=7, spline_order=order, grid_range=(-1.0, 2.0))
    x = torch.linspace(-1.0, 2.0, 301)[:-1]
    basis = layer.basis(x[:, None])[:, 0]  # [300, 7 + order]
    assert basis.shape == (300, 7 + order)
    assert (basis.sum(-1) - 1).abs().max() < 1e-13
    assert (basis >= 0).all()
    knots = layer.knots.numpy()
    for j in range(basis.shape[1]):
        ref = BSpline.basis_element(knots[j:j + order + 2], extrapolate=False)(x.numpy())
        assert np.abs(np.nan_to_num(ref) - basis[:, j].numpy()).max() < 1e-12


def test_outside_the_grid_only_the_base_function_acts(float64):
    layer = KANLinear(2, 3, grid_size=4)
    x = torch.tensor([[3.0, -2.5]])
    assert layer.basis(x).abs().max() == 0
    expected = torch.nn.functional.silu(x) @ layer.base_weight.t()
    torch.testing.assert_close(layer(x), expected)


def test_least_squares_fit_converges_at_fourth_order(float64):
    """The spline part is linear in its coefficients: cubic splines fit sin(3x) with O(h^4)."""
    x = torch.linspace(-1.0, 1.0, 2001)[:-1]
    target = torch.sin(3 * x) + 0.5 * torch.cos(5 * x)
    hs, errors = [], []
    for grid in (4, 8, 16, 32):
        layer = KANLinear(1, 1, grid_size=grid, spline_order=3, base=False)
        design = layer.basis(x[:, None])[:, 0]
        coef = torch.linalg.lstsq(design, target[:, None]).solution
        with torch.no_grad():
            layer.spline_weight.copy_(coef.reshape(1, 1, -1))
        errors.append((layer(x[:, None])[:, 0] - target).abs().max().item())
        hs.append(2.0 / grid)
    assert errors[-1] < 1e-5, errors
    assert observed_order(hs, errors) > 3.5, errors


def test_kan_network_learns_a_1d_function():
    torch.manual_seed(0)
    net = KAN([1, 4, 1], grid_size=6)
    x = torch.linspace(-1, 1, 64)[:, None]
    y = torch.sin(math.pi * x)
    opt = torch.optim.Adam(net.parameters(), lr=2e-2)
    first = None
    for _ in range(100):
        opt.zero_grad()
        loss = (net(x) - y).square().mean()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.02 * first
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, name


def test_bspline_basis_rejects_negative_order():
    with pytest.raises(ValueError, match="order"):
        bspline_basis(torch.zeros(3), torch.arange(5.0), -1)
    with pytest.raises(ValueError, match="grid_range"):
        KANLinear(1, 1, grid_range=(1.0, 1.0))
    with pytest.raises(ValueError, match="features"):
        KANLinear(2, 1)(torch.zeros(4, 3))
