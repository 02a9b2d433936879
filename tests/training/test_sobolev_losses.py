"""Spectral Sobolev H^s losses (negative s: Spectral-Refiner): values on known fields against the
analytic spectral sums (Fourier and cosine modes on grids, scipy's spherical harmonics on the
sphere), the L^2 norm at s = 0, and precise refusals."""

import math

import numpy as np
import pytest
import torch

from geo_neuralop.geometry import GridSpec, PointQuadrature, SphereGridSpec, sphere_grid
from geo_neuralop.training.losses import SobolevLoss, lp_error, sobolev_error, sobolev_integrals
from tests.geometry.sph_harm import real_sph_harm_matrix


def _nodes(spec: GridSpec):
    return torch.meshgrid(*spec.axis_nodes(torch.float64), indexing="ij")


@pytest.mark.parametrize("s", [-1.0, -0.5, -2.0, 0.0, 1.0])
def test_periodic_grid_norm_equals_the_analytic_fourier_sum(float64, s):
    """f = 2 sin(2 pi 3 x / Lx) cos(2 pi 2 y / Ly) + 0.5: |Omega| sum_k (1 + |xi_k|^2)^s |c_k|^2."""
    spec = GridSpec((32, 24), domain=[(0.0, 2.0), (-1.0, 2.0)], periodic=True)
    x, y = _nodes(spec)
    lx, ly = spec.lengths
    f = 2 * torch.sin(2 * math.pi * 3 * x / lx) * torch.cos(2 * math.pi * 2 * (y + 1.0) / ly)
    f = (f + 0.5)[None, None]
    xi2 = (2 * math.pi * 3 / lx) ** 2 + (2 * math.pi * 2 / ly) ** 2
    area = lx * ly
    exact = area * (4 * (1 / 16) * 4 * (1 + xi2) ** s + 0.25)  # four modes |c| = 2/4, mean 1/2
    _, ref = sobolev_integrals(torch.zeros_like(f), f, spec, s)
    assert float(ref) == pytest.approx(exact, rel=1e-12)
    if s == 0.0:  # the rectangle rule's L2 norm
        assert float(ref) == pytest.approx(float((f ** 2).sum()) * area / f.numel(), rel=1e-12)


@pytest.mark.parametrize("s", [-1.0, -0.5])
def test_non_periodic_grid_norm_uses_the_cosine_basis(float64, s):
    """f = cos(pi k x / L) + 3 cos(pi j y / H) on nodes with both ends: the Neumann eigenbasis."""
    spec = GridSpec((17, 21), domain=[(0.0, 1.5), (0.0, 2.0)], periodic=False)
    x, y = _nodes(spec)
    (lx, ly), k, j = spec.lengths, 3, 5
    f = (torch.cos(math.pi * k * x / lx) + 3 * torch.cos(math.pi * j * y / ly))[None, None]
    # ||cos(pi k x / L)||^2 over the box = area / 2
    area = lx * ly
    exact = area / 2 * ((1 + (math.pi * k / lx) ** 2) ** s + 9 * (1 + (math.pi * j / ly) ** 2) ** s)
    _, ref = sobolev_integrals(torch.zeros_like(f), f, spec, s)
    assert float(ref) == pytest.approx(exact, rel=1e-12)


def test_order_zero_equals_the_trapezoid_l2_norm(float64):
    spec = GridSpec((13, 10), domain=[(0.0, 1.0), (0.0, 3.0)], periodic=[False, True])
    pred, target = torch.randn(3, 2, 13, 10), torch.randn(3, 2, 13, 10)
    for relative in (True, False):
        a = sobolev_error(pred, target, spec, s=0.0, relative=relative, reduction="none")
        b = lp_error(pred, target, spec, relative=relative, reduction="none")
        assert (a - b).abs().max() < 1e-12


@pytest.mark.parametrize("grid", ["legendre-gauss", "equiangular"])
def test_sphere_norm_equals_the_spherical_harmonic_sum(float64, grid):
    """f = sum a_lm Y_lm (scipy's real orthonormal harmonics): sum (1 + l (l + 1))^s a_lm^2."""
    rng = np.random.default_rng(0)
    lmax = 6
    coeffs = rng.standard_normal((lmax + 1) ** 2)
    degrees = np.concatenate([[l] * (2 * l + 1) for l in range(lmax + 1)])
    g = sphere_grid(24, 48, grid=grid)
    f = torch.from_numpy(real_sph_harm_matrix(g.pos.numpy(), lmax) @ coeffs).reshape(1, 1, 24, 48)
    spec = SphereGridSpec(24, 48, grid)
    for s in (-1.0, -0.5, 0.0):
        exact = float(np.sum((1.0 + degrees * (degrees + 1.0)) ** s * coeffs ** 2))
        _, ref = sobolev_integrals(torch.zeros_like(f), f, spec, s)
        assert float(ref) == pytest.approx(exact, rel=1e-10), (grid, s)


def test_negative_order_discounts_fine_scale_errors(float64):
    spec = GridSpec((64, 64), periodic=True)
    x, y = _nodes(spec)
    target = torch.sin(2 * math.pi * x)[None, None]
    fine = target + 0.1 * torch.sin(2 * math.pi * 16 * y)[None, None]
    coarse = target + 0.1 * torch.sin(2 * math.pi * y)[None, None]
    l2_fine, l2_coarse = lp_error(fine, target, spec), lp_error(coarse, target, spec)
    assert float(l2_fine) == pytest.approx(float(l2_coarse), rel=1e-12)
    h_fine, h_coarse = (sobolev_error(p, target, spec) for p in (fine, coarse))
    # ratio sqrt((1 + (2 pi)^2) / (1 + (32 pi)^2))
    ratio = math.sqrt((1 + (2 * math.pi) ** 2) / (1 + (32 * math.pi) ** 2))
    assert float(h_fine / h_coarse) == pytest.approx(ratio, rel=1e-10)
    assert float(h_coarse) == pytest.approx(0.1, rel=1e-10)


def test_loss_module_gradients_and_refusals(float64):
    spec = SphereGridSpec(12, 24, "legendre-gauss")
    loss = SobolevLoss(s=-1.0, quadrature=spec)
    pred = torch.randn(2, 3, 12, 24, requires_grad=True)
    value = loss(pred, torch.randn(2, 3, 12, 24))
    value.backward()
    assert value.dim() == 0 and pred.grad.abs().max() > 0
    assert len(loss.transforms) == 1
    with pytest.raises(ValueError, match="quadrature"):
        sobolev_error(torch.randn(5, 1), torch.randn(5, 1), PointQuadrature(torch.ones(5)))
    with pytest.raises(ValueError, match="s must be"):
        SobolevLoss(s=float("nan"))
    with pytest.raises(ValueError, match="shape"):
        sobolev_error(torch.randn(1, 1, 8, 8), torch.randn(1, 1, 8, 8), GridSpec((8, 9)))
