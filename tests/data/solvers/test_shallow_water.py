"""Shallow water on the sphere: stability limit, reproducibility, conservation, balance."""

import math

import numpy as np
import pytest
import torch

from geo_neuralop.data.generate import sample_rng
from geo_neuralop.data.solvers.shallow_water import (
    ShallowWaterSimulator,
    choose_dt,
    max_stable_dt,
    shallow_water_trajectory,
)
from geo_neuralop.geometry import sphere_grid


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def sim32():
    return ShallowWaterSimulator(32)


def _mean_over_sphere(field, nlat, nlon):
    w = sphere_grid(nlat, nlon, dtype=torch.float64).weights.reshape(nlat, nlon).numpy()
    return (np.asarray(field, dtype=np.float64) * w).sum(axis=(-2, -1)) / (4 * math.pi)


def test_stability_limit_scales_with_resolution_and_matches_measurements():
    # measured with torch-harmonics' random initial conditions (almost no wind): stable at
    # 1400 s and unstable at 1500 s on 32x64, stable at 600 s and unstable at 700 s on 64x128
    assert 1400 < max_stable_dt(32) < 1500
    assert 600 < max_stable_dt(64) < 700
    assert 300 < max_stable_dt(128) < 600
    # halving the grid spacing roughly halves the step
    assert max_stable_dt(64) / max_stable_dt(128) == pytest.approx(2.0, rel=0.05)
    assert max_stable_dt(32, max_wind=80.0) < max_stable_dt(32)
    # the automatic step divides the frame interval and stays below the limit
    for nlat in (32, 64, 128):
        sim_dt = choose_dt(3600.0, max_stable_dt(nlat, max_wind=80.0))
        assert 3600.0 / sim_dt == pytest.approx(round(3600.0 / sim_dt))
        assert sim_dt <= 0.9 * max_stable_dt(nlat, max_wind=80.0)


def test_unstable_or_inconsistent_dt_is_rejected():
    with pytest.raises(ValueError, match=r"dt=1800 s is unstable on a 32x64 grid"):
        ShallowWaterSimulator(32, dt=1800.0)
    with pytest.raises(ValueError, match="unstable"):
        ShallowWaterSimulator(64, dt=900.0, max_wind=0.0)
    with pytest.raises(ValueError, match="not a whole number of steps"):
        ShallowWaterSimulator(32, dt=700.0, frame_interval=3600.0)
    with pytest.raises(ValueError, match="nlat"):
        ShallowWaterSimulator(2)


def test_bound_separates_stable_from_unstable_steps_of_torch_harmonics_solver():
    """The independent reference: torch-harmonics' own time stepping just below and above."""
    from torch_harmonics.examples import ShallowWaterSolver

    def blows_up(dt, days):
        solver = ShallowWaterSolver(32, 64, dt, lmax=11, mmax=11).double()
        torch.manual_seed(0)
        u = solver.random_initial_condition(mach=0.2)
        for _ in range(int(days * 86400 / dt) // 20):
            u = solver.timestep(u, 20)
            if not torch.isfinite(u).all() or u.abs().max() > 1e10:
                return True
        return False

    limit = max_stable_dt(32)
    assert not blows_up(0.99 * limit, days=4)
    assert blows_up(1.3 * limit, days=4)


def test_default_step_is_stable_on_32x64_for_six_days(sim32):
    assert sim32.dt == 900.0  # hourly frames, winds up to 80 m/s
    sim10 = ShallowWaterSimulator(32, dt=sim32.dt, frame_interval=86400.0)
    traj = sim10.run(sim10.random_initial_condition(sample_rng(0, 0), wind_rms=15.0),
                     n_frames=7)
    h = traj.fields["height"]
    assert np.isfinite(h).all()
    assert np.abs(h - 1e4).max() < 1000.0  # anomalies stay O(100 m)
    gal = sim10.run(sim10.galewsky_initial_condition(), n_frames=4)
    assert np.isfinite(gal.fields["vorticity"]).all()
    assert np.abs(gal.fields["height"] - 1e4).max() < 2000.0


def test_samples_are_reproducible_from_their_index(sim32):
    a = shallow_water_trajectory(sample_rng(7, 3), sim32, n_frames=3)
    b = shallow_water_trajectory(sample_rng(7, 3), sim32, n_frames=3)
    c = shallow_water_trajectory(sample_rng(7, 4), sim32, n_frames=3)
    for name in a.fields:
        np.testing.assert_array_equal(a.fields[name], b.fields[name])
    assert np.abs(a.fields["vorticity"] - c.fields["vorticity"]).max() > 1e-6
    ga = shallow_water_trajectory(sample_rng(1, 2), sim32, "galewsky", n_frames=2)
    gb = shallow_water_trajectory(sample_rng(1, 2), sim32, "galewsky", n_frames=2)
    assert ga.params == gb.params and ga.params["initial_condition"] == "galewsky"
    np.testing.assert_array_equal(ga.fields["height"], gb.fields["height"])


def test_random_initial_condition_amplitudes_and_resolution_independence():
    sim64 = ShallowWaterSimulator(64)
    u64 = sim64.random_initial_condition(sample_rng(0, 5), height_rms=50.0, wind_rms=10.0)
    grid = sim64.to_grid(u64)
    wind = sim64.wind(u64)
    assert _mean_over_sphere(grid["height"], 64, 128) == pytest.approx(1e4, rel=1e-13)
    rms_wind = math.sqrt(_mean_over_sphere((wind**2).sum(0), 64, 128))
    rms_h = math.sqrt(_mean_over_sphere((grid["height"] - 1e4) ** 2, 64, 128))
    assert rms_wind == pytest.approx(10.0, rel=0.03)  # degrees above lmax carry ~1%
    assert rms_h == pytest.approx(50.0, rel=0.1)
    # one seed, one physical field: the 32x64 coefficients are those of 64x128, truncated
    sim32 = ShallowWaterSimulator(32)
    u32 = sim32.random_initial_condition(sample_rng(0, 5))
    torch.testing.assert_close(u32, torch.tril(u64[:, :11, :11]), rtol=0, atol=0)


def test_mass_is_conserved(sim32):
    traj = shallow_water_trajectory(sample_rng(0, 1), sim32, n_frames=13, wind_rms=15.0)
    mass = _mean_over_sphere(traj.fields["height"], 32, 64)
    assert np.abs(mass / mass[0] - 1).max() < 1e-8  # float32 storage of h ~ 1e4 m
    assert np.abs(traj.fields["height"][-1] - traj.fields["height"][0]).max() > 1.0  # it moves


def test_williamson2_steady_state_is_preserved():
    """Williamson et al. (1992) case 2 is an exact steady solution of the equations."""
    sim = ShallowWaterSimulator(32, frame_interval=6 * 3600.0)
    traj = sim.run(sim.williamson2_initial_condition(), n_frames=5)  # one day
    h, zeta = traj.fields["height"], traj.fields["vorticity"]
    assert np.abs(h[-1] - h[0]).max() < 1e-2  # metres, out of ~2 km variation
    assert np.ptp(h[0]) > 1000.0
    assert np.abs(zeta[-1] - zeta[0]).max() < 1e-6 * np.abs(zeta[0]).max()


def test_galewsky_initial_condition_is_balanced(sim32):
    balanced = sim32.galewsky_initial_condition(bump_amplitude=0.0)
    perturbed = sim32.galewsky_initial_condition()
    random = sim32.random_initial_condition(sample_rng(0, 0))
    assert sim32.imbalance(balanced) < 1e-10
    assert sim32.imbalance(perturbed) < 0.1
    assert sim32.imbalance(random) > 0.5
    # the divergence tendency of the jet (bump included) is an order of magnitude smaller
    # than that of a random state with 8 times weaker winds
    tend = [float(sim32.tendency(u)[2].abs().max()) for u in (perturbed, random)]
    assert tend[0] < 0.2 * tend[1]
    # the balanced jet stays nearly divergence-free for a day; a random state does not
    sim = ShallowWaterSimulator(32, dt=900.0, frame_interval=86400.0)

    def divergence_ratio(uspec):
        traj = sim.run(uspec, n_frames=2)
        return np.abs(traj.fields["divergence"][-1]).max() / np.abs(
            traj.fields["vorticity"][-1]).max()

    assert divergence_ratio(balanced) < 0.02
    assert divergence_ratio(random) > 0.1


def test_fields_are_on_the_sphere_grid_of_geometry(sim32):
    # the solver's latitudes are those of sphere_grid (north to south)
    cloud = sphere_grid(32, 64, "equiangular", dtype=torch.float64)
    lat = torch.asin(cloud.pos[:, 2].clamp(-1, 1)).reshape(32, 64)[:, 0]
    torch.testing.assert_close(lat, sim32.latitudes, atol=1e-12, rtol=0)
    # a zonal wind u0 cos(lat) has vorticity 2 u0 sin(lat) / R
    u = sim32.williamson2_initial_condition(u0=20.0)
    zeta = sim32.to_grid(u)["vorticity"]
    expected = 2 * 20.0 * torch.sin(sim32.latitudes)[:, None] / sim32.radius
    torch.testing.assert_close(zeta, expected.expand(32, 64), atol=1e-12, rtol=0)
