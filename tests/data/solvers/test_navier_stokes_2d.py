"""2D Navier-Stokes on the torus: Taylor-Green decay, analytic tendency, conservation."""

import math

import numpy as np
import pytest

from geo_neuralop.data.generate import sample_rng
from geo_neuralop.data.solvers.navier_stokes_2d import (
    NavierStokes2D,
    fno_forcing,
    gaussian_random_field,
    navier_stokes_trajectory,
)
from tests.conftest import observed_order


def _grid(n):
    x = np.arange(n) / n
    return np.meshgrid(x, x, indexing="ij")


def test_taylor_green_decays_exactly_exponentially():
    n, nu = 32, 0.01
    X, Y = _grid(n)
    w0 = np.sin(2 * np.pi * X) * np.sin(2 * np.pi * Y)
    errors, steps = [], [0.1, 0.05, 0.025]
    for dt in steps:
        traj = NavierStokes2D(n, nu, forcing="none", dt=dt).run(w0, 3, frame_interval=1.0)
        exact = w0 * math.exp(-2 * (2 * np.pi) ** 2 * nu * 2.0)
        errors.append(np.abs(traj.vorticity[-1] - exact).max() / np.abs(w0).max())
    assert errors[-1] < 1e-5
    assert observed_order(steps, errors) == pytest.approx(2.0, abs=0.15)  # Crank-Nicolson
    # default (adaptive) step: the same decay
    traj = NavierStokes2D(n, nu, forcing="none").run(w0, 3, frame_interval=1.0)
    assert np.abs(traj.vorticity[-1] - exact).max() < 1e-4


def test_tendency_matches_the_analytic_nonlinear_term():
    """w = A cos(2 pi x) + B cos(4 pi y): u . grad w = -1.5 A B sin(2 pi x) sin(4 pi y)."""
    n, nu, A, B = 32, 0.003, 0.7, 1.3
    X, Y = _grid(n)
    w = A * np.cos(2 * np.pi * X) + B * np.cos(4 * np.pi * Y)
    forcing = fno_forcing(n)
    solver = NavierStokes2D(n, nu, forcing=forcing)
    exact = (1.5 * A * B * np.sin(2 * np.pi * X) * np.sin(4 * np.pi * Y)
             - nu * (4 * np.pi**2 * A * np.cos(2 * np.pi * X)
                     + 16 * np.pi**2 * B * np.cos(4 * np.pi * Y))
             + 0.1 * (np.sin(2 * np.pi * (X + Y)) + np.cos(2 * np.pi * (X + Y))))
    np.testing.assert_allclose(solver.tendency(w), exact, atol=1e-12)
    # the velocity is (d psi/dy, -d psi/dx) with -laplacian(psi) = w
    u, v = solver.velocity(np.fft.rfft2(w))
    np.testing.assert_allclose(u, -B * np.sin(4 * np.pi * Y) / (4 * np.pi), atol=1e-14)
    np.testing.assert_allclose(v, A * np.sin(2 * np.pi * X) / (2 * np.pi), atol=1e-14)


def test_inviscid_unforced_flow_conserves_energy_and_enstrophy():
    n = 32
    solver = NavierStokes2D(n, 0.0, forcing="none", dealias=True)
    w0 = gaussian_random_field(sample_rng(0, 0), n)
    w_hat0 = np.fft.rfft2(w0) * solver.mask  # start inside the dealiased band
    w0 = np.fft.irfft2(w_hat0, s=(n, n))
    traj = solver.run(w0, 3, frame_interval=0.5)

    def invariants(w):
        w_hat = np.fft.rfft2(w)
        u, v = solver.velocity(w_hat)
        return np.mean(u**2 + v**2), np.mean(w**2)

    e0, z0 = invariants(traj.vorticity[0].astype(np.float64))
    e1, z1 = invariants(traj.vorticity[-1].astype(np.float64))
    assert abs(e1 / e0 - 1) < 1e-4 and abs(z1 / z0 - 1) < 1e-4
    assert np.abs(traj.vorticity[-1] - traj.vorticity[0]).max() > 0.01 * np.abs(w0).max()


def test_fixed_step_violating_cfl_is_reported():
    w0 = 50.0 * gaussian_random_field(sample_rng(0, 0), 32)
    with pytest.raises(RuntimeError, match="CFL"):
        NavierStokes2D(32, 1e-3, dt=0.5).run(w0, 2, frame_interval=1.0)
    with pytest.raises(ValueError, match="even"):
        NavierStokes2D(33)
    with pytest.raises(ValueError, match="forcing"):
        NavierStokes2D(32, forcing="kolmogorov")


def test_random_field_statistics_and_reproducibility():
    n = 64
    fields = np.stack([gaussian_random_field(sample_rng(1, i), n) for i in range(40)])
    assert abs(fields.mean()) < 0.05 * fields.std()
    # the variance is the sum of the mode variances 2 sigma^2 (4 pi^2 |k|^2 + tau^2)^-alpha
    k = np.fft.fftfreq(n, 1.0 / n)
    half = (n - 1) // 2
    kk = k[np.abs(k) <= half]
    k2 = kk[:, None] ** 2 + kk[None, :] ** 2
    var = 2 * 7.0**3 * (4 * np.pi**2 * k2 + 49.0) ** (-2.5)
    var[0, 0] = 0
    assert fields.var() == pytest.approx(var.sum(), rel=0.15)
    np.testing.assert_array_equal(gaussian_random_field(sample_rng(1, 0), n), fields[0])
    # one seed, one field at two resolutions (up to the modes the coarse grid holds)
    coarse = gaussian_random_field(sample_rng(1, 0), 32)
    assert np.abs(coarse - fields[0][::2, ::2]).max() < 0.05 * np.abs(fields[0]).max()


def test_trajectory_subsamples_the_solver_grid():
    a = navier_stokes_trajectory(sample_rng(0, 3), resolution=16, solver_resolution=32,
                                 n_frames=3, frame_interval=0.5)
    b = navier_stokes_trajectory(sample_rng(0, 3), resolution=32, n_frames=3,
                                 frame_interval=0.5)
    assert a.vorticity.shape == (3, 16, 16)
    np.testing.assert_array_equal(a.vorticity, b.vorticity[:, ::2, ::2])
    assert a.params["solver_steps"] > 0
