"""First moments of the basis functions against analytic values and a fine extrapolation."""

import math

import pytest
import torch

from geo_neuralop.kernels import basis_first_moments, get_basis
from geo_neuralop.kernels.moments import _moments_cached


def test_zernike_degree_one_moments_equal_the_analytic_value():
    """psi = rho cos(phi): int psi y / int |psi| = (pi/4) / (4/3) = 3 pi / 16 along x."""
    moments = basis_first_moments(get_basis("zernike", (3,)), 2)
    torch.testing.assert_close(moments[2], torch.tensor([3 * math.pi / 16, 0.0],
                                                        dtype=torch.float64), rtol=0, atol=1e-9)
    torch.testing.assert_close(moments[1].abs(), torch.tensor([0.0, 3 * math.pi / 16],
                                                              dtype=torch.float64),
                               rtol=0, atol=1e-9)
    torch.testing.assert_close(moments[0], torch.zeros(2, dtype=torch.float64), rtol=0,
                               atol=1e-12)  # the constant has no direction


@pytest.mark.parametrize("name,shape", [("piecewise_linear", (3, 4)), ("morlet", (3, 3))])
def test_extrapolated_moments_beat_the_plain_midpoint_rule_at_twice_the_points(name, shape):
    """One Richardson step at 512 points is closer to a fine extrapolation than
    the plain midpoint rule at 1024 points (the default before); the reference is the
    extrapolation from 1024 and 2048 points."""
    basis = get_basis(name, shape)
    reference = (4 * _moments_cached(basis, 2, 2048) - _moments_cached(basis, 2, 1024)) / 3
    scale = reference.abs().max()
    extrapolated = (basis_first_moments(basis, 2) - reference).abs().max() / scale
    plain = (_moments_cached(basis, 2, 1024) - reference).abs().max() / scale
    assert extrapolated < 5e-7 and extrapolated < plain / 3, (float(extrapolated), float(plain))


def test_invalid_resolution():
    basis = get_basis("piecewise_linear", (3, 4))
    with pytest.raises(ValueError, match="resolution must be an even int >= 4, got 3"):
        basis_first_moments(basis, 2, resolution=3)
