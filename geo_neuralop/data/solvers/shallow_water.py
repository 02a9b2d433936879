"""Shallow water equations on the rotating sphere: seeded trajectories on lat/lon grids.

Around torch-harmonics' pseudo-spectral ``ShallowWaterSolver`` this module adds a
stability-limited time step (:func:`max_stable_dt`, :func:`choose_dt`), seeded initial
conditions that are the same physical state at every resolution (random spherical
harmonics, the Galewsky jet, Williamson case 2), and one Adams-Bashforth integration
through all frames. Stored fields: ``height`` (m), ``vorticity`` and ``divergence``
(1/s). The stability analysis and its measurements are in ``docs/design/shallow_water.md``.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import numpy as np
import torch

EARTH_RADIUS = 6.37122e6  # m
EARTH_OMEGA = 7.292e-5  # rad/s
GRAVITY = 9.80616  # m/s^2
MEAN_DEPTH = 1.0e4  # m

#: Stability limit of third-order Adams-Bashforth on the imaginary axis.
AB3_IMAGINARY_LIMIT = 0.7236
#: Fraction of the stability limit used when the step is chosen automatically.
DT_SAFETY = 0.9
#: Random initial conditions draw coefficients for degrees ``l < RANDOM_IC_DEGREES``
#: whatever the grid, so the same seed gives the same field at every resolution.
RANDOM_IC_DEGREES = 64

INITIAL_CONDITIONS = ("random", "galewsky", "williamson2")
FIELD_NAMES = ("height", "vorticity", "divergence")
FIELD_UNITS = {"height": "m", "vorticity": "1/s", "divergence": "1/s"}
FIELD_DESCRIPTIONS = {
    "height": "fluid depth h = geopotential / g",
    "vorticity": "relative vorticity (curl of the wind)",
    "divergence": "horizontal divergence of the wind",
}


def default_lmax(nlat: int) -> int:
    """Spectral truncation used by default: ``ceil(nlat / 3)`` degrees (torch-harmonics' choice).

    Products of two fields of degree below ``nlat / 3`` are then resolved by the
    grid (the 2/3 dealiasing rule).
    """
    return math.ceil(nlat / 3)


def _check_grid(nlat: int, nlon: int, lmax: int | None) -> int:
    for name, value in (("nlat", nlat), ("nlon", nlon)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 4:
            raise ValueError(f"{name} must be an int >= 4, got {value!r}")
    lmax = default_lmax(nlat) if lmax is None else lmax
    if isinstance(lmax, bool) or not isinstance(lmax, int) or not 2 <= lmax <= nlat:
        raise ValueError(f"lmax must be an int in [2, nlat={nlat}], got {lmax!r}")
    if lmax > nlon // 2 + 1:
        raise ValueError(f"lmax={lmax} exceeds nlon // 2 + 1 = {nlon // 2 + 1}")
    return lmax


def max_stable_dt(
    nlat: int,
    nlon: int | None = None,
    lmax: int | None = None,
    max_wind: float = 0.0,
    radius: float = EARTH_RADIUS,
    gravity: float = GRAVITY,
    mean_depth: float = MEAN_DEPTH,
) -> float:
    """Longest stable time step of the AB3 shallow water solver on a grid, in seconds.

    ``dt_max = 0.7236 R / ((sqrt(g H) + U) sqrt(L (L + 1)))`` with ``L = lmax - 1``
    the largest retained degree and ``U`` the largest wind speed expected.

    Parameters
    ----------
    nlat, nlon : int
        Grid size (``nlon`` defaults to ``2 nlat``; it only bounds ``lmax``).
    lmax : int, optional
        Number of retained degrees (default :func:`default_lmax`).
    max_wind : float
        Largest wind speed in m/s (Doppler shift of the fastest waves).
    radius, gravity, mean_depth : float
        Planet radius (m), gravity (m/s^2) and mean depth (m).

    Returns
    -------
    float
        Seconds.

    Examples
    --------
    >>> round(max_stable_dt(32), -1), round(max_stable_dt(64), -1)
    (1400.0, 680.0)
    """
    nlon = 2 * nlat if nlon is None else nlon
    lmax = _check_grid(nlat, nlon, lmax)
    if not math.isfinite(max_wind) or max_wind < 0:
        raise ValueError(f"max_wind must be a non-negative number of m/s, got {max_wind!r}")
    largest = lmax - 1
    speed = math.sqrt(gravity * mean_depth) + max_wind
    return AB3_IMAGINARY_LIMIT * radius / (speed * math.sqrt(largest * (largest + 1)))


def choose_dt(frame_interval: float, dt_max: float, safety: float = DT_SAFETY) -> float:
    """The longest step ``frame_interval / k`` (k a positive int) not above ``safety * dt_max``."""
    if not (math.isfinite(frame_interval) and frame_interval > 0):
        raise ValueError(f"frame_interval must be a positive number of seconds, got "
                         f"{frame_interval!r}")
    steps = max(1, math.ceil(frame_interval / (safety * dt_max) - 1e-9))
    return frame_interval / steps


def _shallow_water_solver(nlat: int, nlon: int, dt: float, lmax: int, grid: str,
                          radius: float, omega: float, gravity: float, mean_depth: float):
    """torch-harmonics' solver in float64, for 0.8 (nlat, nlon, ...) and 0.9+ (grid descriptor)."""
    from torch_harmonics.examples import ShallowWaterSolver

    kwargs = dict(lmax=lmax, mmax=lmax, radius=radius, omega=omega, gravity=gravity,
                  havg=mean_depth, hamp=120.0)
    params = list(inspect.signature(ShallowWaterSolver.__init__).parameters)
    if "nlat" in params:
        solver = ShallowWaterSolver(nlat, nlon, dt, grid=grid, **kwargs)
    else:  # newer torch-harmonics: the first argument is a grid descriptor
        try:
            from torch_harmonics.grid import as_grid
        except ImportError:  # pragma: no cover - depends on the installed version
            from torch_harmonics import as_grid
        solver = ShallowWaterSolver(as_grid(grid, nlat=nlat, nlon=nlon), dt, **kwargs)
    return solver.to(torch.float64)


@dataclass
class ShallowWaterTrajectory:
    """Frames of one shallow water run on a lat/lon grid.

    Attributes
    ----------
    times : np.ndarray, shape [F]
        Seconds since the initial condition (after any spin-up).
    fields : dict of str to np.ndarray, each [F, nlat, nlon]
        ``height`` (m), ``vorticity`` (1/s), ``divergence`` (1/s).
    nlat, nlon : int
    grid : str
    dt : float
        Solver step (s).
    params : dict
        The initial condition's parameters (plain values).
    """

    times: np.ndarray
    fields: dict[str, np.ndarray]
    nlat: int
    nlon: int
    grid: str
    dt: float
    params: dict = field(default_factory=dict)


class ShallowWaterSimulator:
    """Shallow water runs on one grid with one time step.

    Parameters
    ----------
    nlat, nlon : int
        Grid (``nlon`` defaults to ``2 nlat``).
    grid : {"equiangular", "legendre-gauss"}
        Latitudes (matching :func:`geo_neuralop.geometry.sphere_grid`).
    dt : float, optional
        Solver step in seconds. Default: the longest step that divides
        ``frame_interval`` and stays below 0.9 times :func:`max_stable_dt` for
        ``max_wind``. A given step above :func:`max_stable_dt` raises ValueError.
    frame_interval : float
        Seconds between saved frames (a whole number of steps).
    lmax : int, optional
        Spectral truncation (default ``ceil(nlat / 3)``).
    max_wind : float
        Largest wind speed (m/s) the step must allow for; the default 80 m/s
        covers the Galewsky jet and random initial conditions with
        ``wind_rms`` up to about 20 m/s.
    radius, omega, gravity, mean_depth : float
        Planet constants (Earth by default): m, rad/s, m/s^2, m.

    Raises
    ------
    ValueError
        For a bad grid, a step above the stability limit or one that does not
        divide ``frame_interval``.
    """

    def __init__(
        self,
        nlat: int = 32,
        nlon: int | None = None,
        grid: str = "equiangular",
        dt: float | None = None,
        frame_interval: float = 3600.0,
        lmax: int | None = None,
        max_wind: float = 80.0,
        radius: float = EARTH_RADIUS,
        omega: float = EARTH_OMEGA,
        gravity: float = GRAVITY,
        mean_depth: float = MEAN_DEPTH,
    ) -> None:
        nlon = 2 * nlat if nlon is None else nlon
        self.lmax = _check_grid(nlat, nlon, lmax)
        if grid not in ("equiangular", "legendre-gauss"):
            raise ValueError(f"grid must be 'equiangular' or 'legendre-gauss', got {grid!r}")
        self.nlat, self.nlon, self.grid = nlat, nlon, grid
        self.dt_max = max_stable_dt(nlat, nlon, self.lmax, max_wind, radius, gravity, mean_depth)
        if dt is None:
            dt = choose_dt(frame_interval, self.dt_max)
        else:
            dt = float(dt)
            if not (math.isfinite(dt) and dt > 0):
                raise ValueError(f"dt must be a positive number of seconds, got {dt!r}")
            if dt > self.dt_max:
                raise ValueError(
                    f"dt={dt:g} s is unstable on a {nlat}x{nlon} grid (lmax={self.lmax}): the "
                    f"Adams-Bashforth scheme needs dt <= {self.dt_max:.0f} s for waves of speed "
                    f"sqrt(gH) + {max_wind:g} m/s; use dt <= {self.dt_max:.0f} or leave dt unset "
                    f"to choose {choose_dt(frame_interval, self.dt_max):g} s")
        steps = frame_interval / dt
        if abs(steps - round(steps)) > 1e-6 * steps:
            raise ValueError(f"frame_interval={frame_interval:g} s is not a whole number of "
                             f"steps dt={dt:g} s")
        self.dt = dt
        self.frame_interval = float(frame_interval)
        self.steps_per_frame = int(round(steps))
        self.max_wind = float(max_wind)
        self.solver = _shallow_water_solver(nlat, nlon, dt, self.lmax, grid, radius, omega,
                                            gravity, mean_depth)
        self.radius, self.omega = float(radius), float(omega)
        self.gravity, self.mean_depth = float(gravity), float(mean_depth)

    # --- grid ---------------------------------------------------------------------------
    @property
    def latitudes(self) -> torch.Tensor:
        """``[nlat]`` latitudes in radians, north to south (float64)."""
        return self.solver.lats.reshape(-1).to(torch.float64)

    @property
    def longitudes(self) -> torch.Tensor:
        """``[nlon]`` longitudes ``2 pi j / nlon`` in radians (float64)."""
        return 2.0 * math.pi * torch.arange(self.nlon, dtype=torch.float64) / self.nlon

    # --- transforms -----------------------------------------------------------------------
    def to_grid(self, uspec: torch.Tensor) -> dict[str, torch.Tensor]:
        """Height (m), vorticity and divergence (1/s) on the grid, each ``[nlat, nlon]``."""
        g = self.solver.spec2grid(uspec)
        return {"height": g[0] / self.gravity, "vorticity": g[1], "divergence": g[2]}

    def wind(self, uspec: torch.Tensor) -> torch.Tensor:
        """``[2, nlat, nlon]`` wind (eastward, northward) in m/s."""
        return self.solver.getuv(uspec[1:])

    def tendency(self, uspec: torch.Tensor) -> torch.Tensor:
        """``d uspec / dt`` of the inviscid equations, ``[3, lmax, mmax]`` complex."""
        return self.solver.dudtspec(uspec)

    def imbalance(self, uspec: torch.Tensor) -> float:
        """How far a state is from balance: ``||d delta / dt|| / max(||A||, ||B||)``.

        The divergence tendency is ``A - B`` with ``A = curl((zeta + f) u)`` and
        ``B = laplacian(Phi + |u|^2 / 2)``; in a balanced state the two cancel
        (ratio near 0), in an unbalanced one they are unrelated (ratio near 1).
        Norms are of the spectral coefficients (L2 over the sphere).
        """
        s = self.solver
        g = s.spec2grid(uspec)
        wind = s.getuv(uspec[1:])
        a = s.vrtdivspec(wind * (g[1] + s.coriolis))[0]
        b = s.lap * s.grid2spec(g[0] + 0.5 * (wind**2).sum(0))
        scale = max(float(torch.linalg.vector_norm(a)), float(torch.linalg.vector_norm(b)))
        return float(torch.linalg.vector_norm(a - b)) / scale if scale > 0 else 0.0

    def _spec(self, grid_field: torch.Tensor) -> torch.Tensor:
        return self.solver.grid2spec(grid_field.to(torch.float64))

    def _vrtdiv(self, wind: torch.Tensor) -> torch.Tensor:
        return self.solver.vrtdivspec(wind.to(torch.float64))

    # --- initial conditions ---------------------------------------------------------------
    def random_initial_condition(
        self,
        rng: np.random.Generator,
        height_rms: float = 50.0,
        wind_rms: float = 10.0,
        alpha: float = 2.0,
        tau: float = 8.0,
    ) -> torch.Tensor:
        """A random, unbalanced initial state (spectral ``[3, lmax, mmax]``).

        Height anomaly and vorticity are independent isotropic Gaussian random
        fields whose spherical harmonic coefficients have variance
        ``(l (l + 1) + tau^2)^(-alpha)`` for ``1 <= l < 64``, drawn in a fixed
        order and then truncated to the grid's ``lmax`` (so one seed is one
        physical field at every resolution). Divergence starts at zero. The
        amplitudes are set analytically over all 64 degrees: rms height anomaly
        ``height_rms`` (m) and rms wind ``wind_rms`` (m/s); the mean depth is
        exactly ``mean_depth``.
        """
        for name, value in (("height_rms", height_rms), ("wind_rms", wind_rms),
                            ("alpha", alpha), ("tau", tau)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        big_l = RANDOM_IC_DEGREES
        z = rng.standard_normal((2, big_l, big_l, 2))
        coeffs = (z[..., 0] + 1j * z[..., 1]) / math.sqrt(2.0)
        coeffs[:, :, 0] = z[:, :, 0, 0]  # m = 0 coefficients of a real field are real
        ell = np.arange(big_l, dtype=np.float64)[:, None]
        m = np.arange(big_l)[None, :]
        mask = (m <= ell) & (ell >= 1)
        std = np.where(mask, (ell * (ell + 1) + tau**2) ** (-alpha / 2), 0.0)
        coeffs = coeffs * std
        # mean over the sphere of f^2 for orthonormal harmonics: sum_l sum_m c_m |f_lm|^2 / 4 pi
        c_m = np.where(m == 0, 1.0, 2.0)
        ms_height = (c_m * np.abs(coeffs[0]) ** 2).sum() / (4 * math.pi)
        lap = np.where(ell >= 1, ell * (ell + 1), 1.0)
        ms_wind = (c_m * np.abs(coeffs[1]) ** 2 / lap).sum() / (4 * math.pi)  # times R^2 zeta^2
        height = coeffs[0] * (height_rms / math.sqrt(ms_height))
        vorticity = coeffs[1] * (wind_rms / (self.radius * math.sqrt(ms_wind)))
        lmax, mmax = self.solver.lmax, self.solver.mmax
        uspec = torch.zeros(3, lmax, mmax, dtype=torch.complex128)
        lt, mt = min(lmax, big_l), min(mmax, big_l)
        uspec[0, :lt, :mt] = torch.from_numpy(self.gravity * height[:lt, :mt])
        uspec[1, :lt, :mt] = torch.from_numpy(vorticity[:lt, :mt])
        uspec[0, 0, 0] = math.sqrt(4 * math.pi) * self.gravity * self.mean_depth
        return uspec

    def galewsky_initial_condition(
        self,
        bump_longitude: float = math.pi,
        bump_amplitude: float = 120.0,
        bump_latitude: float = math.pi / 4,
        u_max: float = 80.0,
    ) -> torch.Tensor:
        """The Galewsky et al. (2004) jet in gradient-wind balance plus a height bump.

        A zonal jet of peak speed ``u_max`` between latitudes pi/7 and
        5 pi / 14, with the geopotential that balances it (solved spectrally
        from the divergence equation, so the balanced state has zero
        divergence tendency up to spectral truncation), plus the unbalanced
        perturbation ``A cos(lat) exp(-(3 (lon - lon_b))^2) exp(-15 (lat_b - lat)^2)``
        of amplitude ``A = bump_amplitude`` metres (0 for the steady balanced jet).
        """
        lat = self.latitudes[:, None].expand(self.nlat, self.nlon)
        lon = self.longitudes[None, :].expand(self.nlat, self.nlon)
        phi0, phi1 = math.pi / 7.0, 0.5 * math.pi - math.pi / 7.0
        en = math.exp(-4.0 / (phi1 - phi0) ** 2)
        inside = (lat > phi0) & (lat < phi1)
        product = torch.where(inside, (lat - phi0) * (lat - phi1), -torch.ones_like(lat))
        u = torch.where(inside, (u_max / en) * torch.exp(1.0 / product), torch.zeros_like(lat))
        wind = torch.stack((u, torch.zeros_like(u)))
        return self._balanced_state(wind, self._bump(lat, lon, bump_amplitude, bump_longitude,
                                                     bump_latitude))

    def williamson2_initial_condition(self, u0: float | None = None) -> torch.Tensor:
        """Williamson et al. (1992) test case 2: solid-body zonal flow, an exact steady state.

        ``u = u0 cos(lat)``, ``g h = g H - (R Omega u0 + u0^2 / 2) sin(lat)^2`` with
        ``u0 = 2 pi R / (12 days)`` by default (38.6 m/s on Earth).
        """
        u0 = 2 * math.pi * self.radius / (12 * 86400.0) if u0 is None else float(u0)
        lat = self.latitudes[:, None].expand(self.nlat, self.nlon)
        wind = torch.stack((u0 * torch.cos(lat), torch.zeros_like(lat)))
        phi = self.gravity * self.mean_depth - (
            self.radius * self.omega * u0 + 0.5 * u0**2) * torch.sin(lat) ** 2
        uspec = torch.zeros(3, self.solver.lmax, self.solver.mmax, dtype=torch.complex128)
        uspec[0] = self._spec(phi)
        uspec[1:] = self._vrtdiv(wind)
        return torch.tril(uspec)

    def _bump(self, lat, lon, amplitude, longitude, latitude):
        alpha, beta = 1.0 / 3.0, 1.0 / 15.0
        dlon = torch.remainder(lon - longitude + math.pi, 2 * math.pi) - math.pi
        return amplitude * torch.cos(lat) * torch.exp(-(dlon / alpha) ** 2) * torch.exp(
            -((latitude - lat) ** 2) / beta)

    def _balanced_state(self, wind: torch.Tensor, height_perturbation: torch.Tensor):
        """Spectral state whose geopotential balances ``wind`` (zero divergence tendency)."""
        s = self.solver
        vrtdiv = torch.tril(self._vrtdiv(wind))
        wind = s.getuv(vrtdiv)  # the wind the solver sees (truncated to lmax)
        vrtdiv_grid = s.spec2grid(vrtdiv)
        flux = wind * (vrtdiv_grid[0] + s.coriolis.to(torch.float64))
        flux_spec = self._vrtdiv(flux)
        kinetic = self._spec(0.5 * (wind**2).sum(0))
        phi = s.invlap * flux_spec[0] - kinetic + self._spec(
            self.gravity * (self.mean_depth + height_perturbation))
        uspec = torch.zeros(3, s.lmax, s.mmax, dtype=torch.complex128)
        uspec[0] = phi
        uspec[1:] = vrtdiv
        return torch.tril(uspec)

    # --- time integration -----------------------------------------------------------------
    def run(self, uspec: torch.Tensor, n_frames: int, spin_up: float = 0.0,
            params: dict | None = None) -> ShallowWaterTrajectory:
        """Integrate from ``uspec``, saving ``n_frames`` frames ``frame_interval`` apart.

        Parameters
        ----------
        uspec : torch.Tensor, shape [3, lmax, mmax], complex
            Initial state (geopotential, vorticity, divergence coefficients).
        n_frames : int
            Frames saved, the first at ``t = 0`` (after the spin-up).
        spin_up : float
            Seconds integrated before the first frame (a whole number of steps).
        params : dict, optional
            Stored with the trajectory.

        Raises
        ------
        RuntimeError
            If the state stops being finite or the depth turns negative.
        """
        if isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 1:
            raise ValueError(f"n_frames must be a positive int, got {n_frames!r}")
        if not (math.isfinite(spin_up) and spin_up >= 0):
            raise ValueError(f"spin_up must be a non-negative number of seconds, got {spin_up!r}")
        spin_steps = spin_up / self.dt
        if abs(spin_steps - round(spin_steps)) > 1e-6 * max(spin_steps, 1.0):
            raise ValueError(f"spin_up={spin_up:g} s is not a whole number of steps "
                             f"dt={self.dt:g} s")
        spin_steps = int(round(spin_steps))
        frames = {name: [] for name in FIELD_NAMES}
        state = _AB3State(uspec.to(torch.complex128))

        def save():
            grid = self.to_grid(state.uspec)
            h = grid["height"]
            if not all(torch.isfinite(v).all() for v in grid.values()) or h.min() <= 0:
                raise RuntimeError(
                    f"shallow water run blew up by t = {state.steps * self.dt:g} s (dt = "
                    f"{self.dt:g} s, stability limit {self.dt_max:.0f} s): reduce dt")
            for name in FIELD_NAMES:
                frames[name].append(grid[name].numpy().astype(np.float32))

        with torch.no_grad():
            self._advance(state, spin_steps)
            save()
            for _ in range(n_frames - 1):
                self._advance(state, self.steps_per_frame)
                save()
        times = self.frame_interval * np.arange(n_frames, dtype=np.float64)
        return ShallowWaterTrajectory(
            times=times, fields={k: np.stack(v) for k, v in frames.items()}, nlat=self.nlat,
            nlon=self.nlon, grid=self.grid, dt=self.dt, params=dict(params or {}))

    def _advance(self, state: _AB3State, steps: int) -> None:
        dt, hyperdiff = self.dt, self.solver.hyperdiff
        for _ in range(steps):
            new = self.solver.dudtspec(state.uspec)
            now = new if state.now is None else state.now
            old = now if state.old is None else state.old
            u = state.uspec + dt * ((23.0 / 12.0) * new - (16.0 / 12.0) * now
                                    + (5.0 / 12.0) * old)
            state.uspec = torch.cat((u[:1], hyperdiff * u[1:]))
            state.now, state.old = new, now
            state.steps += 1


class _AB3State:
    """Spectral state and the two previous tendencies of the Adams-Bashforth scheme."""

    def __init__(self, uspec: torch.Tensor) -> None:
        self.uspec = uspec
        self.now: torch.Tensor | None = None
        self.old: torch.Tensor | None = None
        self.steps = 0


def shallow_water_trajectory(
    rng: np.random.Generator,
    simulator: ShallowWaterSimulator,
    initial_condition: str = "random",
    n_frames: int = 25,
    spin_up: float = 0.0,
    height_rms: float = 50.0,
    wind_rms: float = 10.0,
) -> ShallowWaterTrajectory:
    """One seeded trajectory.

    Parameters
    ----------
    rng : np.random.Generator
        The sample's generator (e.g. ``np.random.default_rng([seed, index])``).
    simulator : ShallowWaterSimulator
    initial_condition : {"random", "galewsky", "williamson2"}
        "random": :meth:`ShallowWaterSimulator.random_initial_condition`.
        "galewsky": the Galewsky jet with a bump of random longitude (uniform)
        and amplitude (uniform in 60-180 m). "williamson2": the steady zonal
        flow with a random speed ``u0`` uniform in 20-40 m/s.
    n_frames, spin_up
        See :meth:`ShallowWaterSimulator.run`.
    height_rms, wind_rms : float
        Amplitudes of the random initial condition (m, m/s).
    """
    if initial_condition == "random":
        uspec = simulator.random_initial_condition(rng, height_rms=height_rms, wind_rms=wind_rms)
        params = {"initial_condition": "random"}
    elif initial_condition == "galewsky":
        lon = float(rng.uniform(0.0, 2 * math.pi))
        amp = float(rng.uniform(60.0, 180.0))
        uspec = simulator.galewsky_initial_condition(bump_longitude=lon, bump_amplitude=amp)
        params = {"initial_condition": "galewsky", "bump_longitude": lon, "bump_amplitude": amp}
    elif initial_condition == "williamson2":
        u0 = float(rng.uniform(20.0, 40.0))
        uspec = simulator.williamson2_initial_condition(u0)
        params = {"initial_condition": "williamson2", "u0": u0}
    else:
        raise ValueError(f"initial_condition must be one of {INITIAL_CONDITIONS}, "
                         f"got {initial_condition!r}")
    return simulator.run(uspec, n_frames, spin_up=spin_up, params=params)
