"""Darcy flow: manufactured-solution convergence, exact layered flux, FNO-style samples."""

import numpy as np
import pytest

from geo_neuralop.data.generate import sample_rng
from geo_neuralop.data.solvers.darcy import (
    darcy_sample,
    neumann_random_field,
    solve_darcy,
    threshold_permeability,
)
from tests.conftest import observed_order

PI = np.pi


def _manufactured(n):
    """u = sin(pi x) sin(2 pi y) exp(x), a = 2 + sin(pi x + 0.5) cos(pi y), f = -div(a grad u)."""
    x = np.linspace(0.0, 1.0, n)
    X, Y = np.meshgrid(x, x, indexing="ij")
    ex, sx, cx = np.exp(X), np.sin(PI * X), np.cos(PI * X)
    s2y, c2y = np.sin(2 * PI * Y), np.cos(2 * PI * Y)
    u = sx * s2y * ex
    ux = (PI * cx + sx) * ex * s2y
    uxx = (-PI**2 * sx + 2 * PI * cx + sx) * ex * s2y
    uy = 2 * PI * sx * ex * c2y
    uyy = -4 * PI**2 * u
    a = 2 + np.sin(PI * X + 0.5) * np.cos(PI * Y)
    ax = PI * np.cos(PI * X + 0.5) * np.cos(PI * Y)
    ay = -PI * np.sin(PI * X + 0.5) * np.sin(PI * Y)
    f = -(ax * ux + a * uxx + ay * uy + a * uyy)
    return a, f, u


def test_second_order_convergence_on_a_manufactured_solution():
    sizes, errors = [17, 33, 65], []
    for n in sizes:
        a, f, u = _manufactured(n)
        uh = solve_darcy(a, f, 0.0)
        errors.append(np.abs(uh - u).max())
    h = [1.0 / (n - 1) for n in sizes]
    assert observed_order(h, errors) == pytest.approx(2.0, abs=0.1)
    assert errors[-1] < 2e-3


def test_nonzero_dirichlet_data():
    n = 33
    x = np.linspace(0.0, 1.0, n)
    X, Y = np.meshgrid(x, x, indexing="ij")
    exact = np.exp(X) * np.cos(Y)  # harmonic: -laplacian = 0 with a = 1
    uh = solve_darcy(np.ones((n, n)), 0.0, boundary=exact)
    assert np.abs(uh - exact).max() < 1e-4
    np.testing.assert_array_equal(uh[0], exact[0])


def test_layered_medium_flux_is_exact():
    """a = 1 left of x = 1/2, 10 right of it, u = 0 at x = 0 and 1 at x = 1: piecewise linear u.

    With the jump between two nodes the harmonic face mean gives the exact flux, so the
    discrete solution equals the exact one at the nodes.
    """
    n = 20  # x = 1/2 lies halfway between nodes 9 and 10
    x = np.linspace(0.0, 1.0, n)
    a1, a2 = 1.0, 10.0
    a = np.where(x[:, None] < 0.5, a1, a2) * np.ones((1, n))
    flux = 1.0 / (0.5 / a1 + 0.5 / a2)
    exact_1d = np.where(x < 0.5, flux * x / a1, 1.0 - flux * (1.0 - x) / a2)
    exact = exact_1d[:, None] * np.ones((1, n))
    uh = solve_darcy(a, 0.0, boundary=exact)
    assert np.abs(uh - exact).max() < 1e-10


def test_bad_permeability_is_rejected():
    a = np.ones((5, 5))
    a[2, 3] = -1.0
    with pytest.raises(ValueError, match=r"a\[2, 3\] = -1.0"):
        solve_darcy(a)
    with pytest.raises(ValueError, match="square"):
        solve_darcy(np.ones((4, 5)))


def test_fno_sample_properties():
    s = darcy_sample(sample_rng(0, 0), resolution=33)
    assert set(np.unique(s.permeability)) == {3.0, 12.0}
    u = s.pressure
    assert np.all(u[0] == 0) and np.all(u[-1] == 0) and np.all(u[:, 0] == 0)
    assert u[1:-1, 1:-1].min() > 0  # maximum principle: f = 1 > 0, u = 0 on the boundary
    # bounds from the constant-coefficient problems: u(a=12) <= u <= u(a=3)
    lo = solve_darcy(np.full((33, 33), 12.0), 1.0)
    hi = solve_darcy(np.full((33, 33), 3.0), 1.0)
    assert u.max() < hi.max() and u.max() > lo.max()


def test_samples_are_reproducible_and_consistent_across_resolutions():
    a = darcy_sample(sample_rng(3, 1), 33)
    b = darcy_sample(sample_rng(3, 1), 33)
    np.testing.assert_array_equal(a.pressure, b.pressure)
    fine = darcy_sample(sample_rng(3, 1), 129)
    sub = darcy_sample(sample_rng(3, 1), 33, solver_resolution=129)
    np.testing.assert_array_equal(sub.permeability, fine.permeability[::4, ::4])
    np.testing.assert_array_equal(sub.pressure, fine.pressure[::4, ::4])
    # the coarse solve approaches the fine one (same permeability field, sampled)
    psi = neumann_random_field(sample_rng(3, 1), 33)
    np.testing.assert_array_equal(threshold_permeability(psi), a.permeability)
    err = np.abs(a.pressure - fine.pressure[::4, ::4]).max()
    assert err < 0.1 * np.abs(fine.pressure).max()
    with pytest.raises(ValueError, match="solver_resolution"):
        darcy_sample(sample_rng(0, 0), 33, solver_resolution=100)
