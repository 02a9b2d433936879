"""The Legendre tables of the spherical transforms against scipy and torch-harmonics."""

import math

import numpy as np
import pytest
import torch
from scipy.special import sph_harm_y

from geo_neuralop.geometry.legendre import associated_legendre_table, sphere_grid_legendre
from geo_neuralop.geometry.quadrature import colatitude_nodes_and_weights


def test_table_equals_scipy_orthonormal_spherical_harmonics_with_condon_shortley_phase():
    """P[m, l, k] = Y_l^m(theta_k, phi = 0) of scipy (orthonormal, phase (-1)^m)."""
    theta = np.linspace(0.0, math.pi, 23)
    table = associated_legendre_table(12, 15, theta, dtype=torch.float64).numpy()
    reference = np.zeros_like(table)
    for m in range(12):
        for degree in range(m, 15):
            reference[m, degree] = sph_harm_y(degree, m, theta, 0.0).real
    np.testing.assert_allclose(table, reference, rtol=0, atol=1e-13)
    assert not table[np.tril_indices(12, -1, 15)].any()  # zero where m > l


@pytest.mark.parametrize("grid", ["equiangular", "legendre-gauss"])
def test_table_and_weights_equal_torch_harmonics_transforms(grid):
    """The synthesis table is torch-harmonics' InverseRealSHT.pct and table * weights its
    RealSHT.weights times 2 pi (the factor its forward applies after the FFT)."""
    from torch_harmonics import InverseRealSHT, RealSHT

    nlat, degrees = 65, 33
    nlon = 2 * nlat
    sht = RealSHT(nlat, nlon, lmax=degrees, mmax=degrees, grid=grid, norm="ortho",
                  csphase=True)
    isht = InverseRealSHT(nlat, nlon, lmax=degrees, mmax=degrees, grid=grid, norm="ortho",
                          csphase=True)
    table, weights = sphere_grid_legendre(nlat, grid, degrees, degrees, dtype=torch.float64)
    torch.testing.assert_close(table, isht.pct.double(), rtol=0, atol=1e-12)
    torch.testing.assert_close(table * weights, sht.weights.double() * 2 * math.pi, rtol=0,
                               atol=1e-12)


def test_gauss_quadrature_makes_the_columns_orthonormal_at_high_degree():
    """sum_k P[m, l, k] P[m, l', k] w_k 2 pi = delta (exact for l + l' < 2 nlat) up to
    l = 399: the recurrence stays accurate where factorial formulas overflow."""
    nlat, degrees = 400, 400
    table, weights = sphere_grid_legendre(nlat, "legendre-gauss", degrees, degrees,
                                          dtype=torch.float64)
    for m in (0, 1, 57, 200, 399):
        rows = table[m, m:]
        gram = (rows * weights) @ rows.T
        error = float((gram - torch.eye(gram.shape[0], dtype=gram.dtype)).abs().max())
        assert error < 1e-10, (m, error)


def test_float32_table_is_the_rounded_float64_table_and_orders_can_be_fewer():
    theta, _ = colatitude_nodes_and_weights(33, "equiangular")
    full = associated_legendre_table(20, 20, theta, dtype=torch.float64)
    low = associated_legendre_table(7, 20, theta)
    assert low.dtype == torch.float32 and low.shape == (7, 20, 33)
    torch.testing.assert_close(low, full[:7].float(), rtol=0, atol=0)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="mmax must be a positive int, got 0"):
        associated_legendre_table(0, 3, np.zeros(4))
    with pytest.raises(ValueError, match="lmax must be a positive int, got 2.5"):
        associated_legendre_table(2, 2.5, np.zeros(4))
    with pytest.raises(ValueError, match="colatitudes must be 1-D"):
        associated_legendre_table(2, 2, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="grid must be one of"):
        sphere_grid_legendre(9, "healpix", 3, 3)
