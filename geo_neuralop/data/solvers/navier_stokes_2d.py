"""Incompressible Navier-Stokes in vorticity form on the periodic unit torus (FNO benchmark).

Equations (the setup of Li et al., "Fourier Neural Operator", ICLR 2021)::

    dw/dt + u . grad w = nu laplacian(w) + f,     u = (d psi/dy, -d psi/dx),  -laplacian(psi) = w

on ``[0, 1)^2`` with periodic boundaries. Default forcing
``f = 0.1 (sin(2 pi (x + y)) + cos(2 pi (x + y)))``, initial vorticity a Gaussian
random field ``N(0, 7^{3/2} (-laplacian + 49 I)^{-2.5})``.

Discretization: Fourier pseudo-spectral with the 2/3 rule (modes with
``|k_x|`` or ``|k_y|`` above ``n / 3`` are removed before and after the
product ``u . grad w``), time stepping by the low-storage IMEX Runge-Kutta
scheme of Spalart, Moser & Rogers (1991): three explicit RK3 stages for the
advection and forcing, Crank-Nicolson for the viscous term (exact for the
Taylor-Green decay up to second order in ``dt``). The step is chosen per frame
interval from the current velocity (CFL number 0.5), so trajectories are
deterministic and stable without a hand-tuned ``dt``.

Grid values are stored at ``x_i = i / n`` (``regular_grid(n, periodic=True)``
order: ``field[i, j]`` is the value at ``(x_i, y_j)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: IMEX RK3 (Spalart, Moser & Rogers 1991) coefficients.
_GAMMA = (8.0 / 15.0, 5.0 / 12.0, 3.0 / 4.0)
_ZETA = (0.0, -17.0 / 60.0, -5.0 / 12.0)
_ALPHA = (4.0 / 15.0, 1.0 / 15.0, 1.0 / 6.0)  # explicit part of the viscous term
_BETA = (4.0 / 15.0, 1.0 / 15.0, 1.0 / 6.0)  # implicit part of the viscous term

#: CFL number used when the step is chosen automatically; the limit of RK3 is sqrt(3).
TARGET_CFL = 0.5
MAX_CFL = 1.5
#: Random initial conditions draw Fourier modes |k| < 64 in each direction for every grid.
RANDOM_IC_GRID = 128

FORCINGS = ("fno", "none")


def fno_forcing(n: int, amplitude: float = 0.1) -> np.ndarray:
    """``amplitude (sin(2 pi (x + y)) + cos(2 pi (x + y)))`` on the ``n x n`` grid, ``[n, n]``."""
    x = np.arange(n) / n
    s = 2 * np.pi * (x[:, None] + x[None, :])
    return amplitude * (np.sin(s) + np.cos(s))


def gaussian_random_field(
    rng: np.random.Generator, n: int, alpha: float = 2.5, tau: float = 7.0,
    sigma: float | None = None,
) -> np.ndarray:
    """A periodic Gaussian random field ``N(0, sigma^2 (-laplacian + tau^2)^{-alpha})``, ``[n, n]``.

    The FNO paper's initial vorticity (``alpha = 2.5, tau = 7, sigma = tau^(alpha - 1)``,
    zero mean). Its Fourier coefficients are drawn on a fixed 128 x 128 mode set
    and truncated (or zero-padded) to the modes the grid resolves, so one ``rng``
    state gives the same field at every resolution up to the modes a coarse grid
    cannot hold.

    Parameters
    ----------
    rng : np.random.Generator
    n : int
        Grid points per side.
    alpha, tau : float
        Smoothness and inverse length scale.
    sigma : float, optional
        Amplitude (default ``tau^(alpha - 1)``).

    Returns
    -------
    np.ndarray, shape [n, n], float64
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 4:
        raise ValueError(f"n must be an int >= 4, got {n!r}")
    sigma = tau ** (alpha - 1.0) if sigma is None else sigma
    big = RANDOM_IC_GRID
    noise_hat = np.fft.fft2(rng.standard_normal((big, big))) / big  # E|.|^2 = 1 per mode
    k = np.fft.fftfreq(big, 1.0 / big)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    coef = math.sqrt(2.0) * sigma * (4 * np.pi**2 * k2 + tau**2) ** (-alpha / 2)
    coef[0, 0] = 0.0
    a_big = noise_hat * coef
    keep = min(n, big)
    half = (keep - 1) // 2  # modes -half..half: no Nyquist mode, so the field stays real
    idx = np.r_[0:half + 1, -half:0]
    spec = np.zeros((n, n), dtype=complex)
    spec[np.ix_(idx % n, idx % n)] = a_big[np.ix_(idx % big, idx % big)]
    return np.real(np.fft.ifft2(spec)) * n * n


@dataclass
class NavierStokesTrajectory:
    """Frames of one run. ``vorticity`` is ``[F, n, n]`` (indexed ``[frame, x, y]``)."""

    times: np.ndarray
    vorticity: np.ndarray
    params: dict = field(default_factory=dict)
    steps: int = 0


class NavierStokes2D:
    """Pseudo-spectral vorticity solver on the ``n x n`` periodic unit square.

    Parameters
    ----------
    n : int
        Grid points per side (even).
    viscosity : float
        Kinematic viscosity ``nu`` (the FNO datasets use 1e-3, 1e-4, 1e-5).
    forcing : np.ndarray [n, n], "fno", "none" or None
        Time-independent forcing on the grid; "fno" is :func:`fno_forcing` with
        ``forcing_amplitude``.
    forcing_amplitude : float
    dt : float, optional
        Fixed step. Default: chosen for every frame interval from the current
        velocity so that the CFL number is at most 0.5. A fixed step whose CFL
        number exceeds 1.5 raises RuntimeError.
    dealias : bool
        Apply the 2/3 rule.
    """

    def __init__(self, n: int = 64, viscosity: float = 1e-3, forcing="fno",
                 forcing_amplitude: float = 0.1, dt: float | None = None,
                 dealias: bool = True) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 4 or n % 2:
            raise ValueError(f"n must be an even int >= 4, got {n!r}")
        if not (math.isfinite(viscosity) and viscosity >= 0):
            raise ValueError(f"viscosity must be a non-negative number, got {viscosity!r}")
        if dt is not None and not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be positive, got {dt!r}")
        self.n, self.viscosity, self.dt = n, float(viscosity), dt
        if isinstance(forcing, str) or forcing is None:
            if forcing not in (*FORCINGS, None):
                raise ValueError(f"forcing must be an array or one of {FORCINGS}, got {forcing!r}")
            forcing = fno_forcing(n, forcing_amplitude) if forcing == "fno" else np.zeros((n, n))
        forcing = np.asarray(forcing, dtype=np.float64)
        if forcing.shape != (n, n):
            raise ValueError(f"forcing must have shape ({n}, {n}), got {forcing.shape}")
        self.forcing_hat = np.fft.rfft2(forcing)
        kx = np.fft.fftfreq(n, 1.0 / n)[:, None]
        ky = np.fft.rfftfreq(n, 1.0 / n)[None, :]
        self.ikx, self.iky = 2j * np.pi * kx, 2j * np.pi * ky
        self.k2 = 4 * np.pi**2 * (kx**2 + ky**2)
        self.inv_k2 = np.where(self.k2 > 0, 1.0 / np.where(self.k2 > 0, self.k2, 1.0), 0.0)
        cut = n / 3.0
        self.mask = ((np.abs(kx) < cut) & (np.abs(ky) < cut)) if dealias else np.ones_like(
            self.k2, dtype=bool)
        self.k_max = 2 * np.pi * (cut if dealias else n / 2)

    # --- operators --------------------------------------------------------------------
    def velocity(self, w_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(u, v)`` on the grid, each ``[n, n]``, from the vorticity spectrum (``rfft2``)."""
        psi_hat = w_hat * self.inv_k2
        u = np.fft.irfft2(self.iky * psi_hat, s=(self.n, self.n))
        v = np.fft.irfft2(-self.ikx * psi_hat, s=(self.n, self.n))
        return u, v

    def explicit_term(self, w_hat: np.ndarray) -> np.ndarray:
        """Spectrum of ``-u . grad w + f`` (dealiased)."""
        w_hat = w_hat * self.mask
        u, v = self.velocity(w_hat)
        wx = np.fft.irfft2(self.ikx * w_hat, s=(self.n, self.n))
        wy = np.fft.irfft2(self.iky * w_hat, s=(self.n, self.n))
        return -np.fft.rfft2(u * wx + v * wy) * self.mask + self.forcing_hat

    def tendency(self, w: np.ndarray) -> np.ndarray:
        """``dw/dt = -u . grad w + nu laplacian(w) + f`` on the grid, ``[n, n]``."""
        w_hat = np.fft.rfft2(w)
        return np.fft.irfft2(self.explicit_term(w_hat) - self.viscosity * self.k2 * w_hat,
                             s=(self.n, self.n))

    def cfl(self, w_hat: np.ndarray, dt: float) -> float:
        """``dt (max|u| + max|v|) k_max``: below sqrt(3) for RK3 stability."""
        u, v = self.velocity(w_hat)
        return dt * (np.abs(u).max() + np.abs(v).max()) * self.k_max

    # --- time stepping ----------------------------------------------------------------
    def step(self, w_hat: np.ndarray, dt: float) -> np.ndarray:
        """One IMEX RK3 / Crank-Nicolson step of the spectrum."""
        nu_k2 = self.viscosity * self.k2
        previous = None
        for g, z, a, b in zip(_GAMMA, _ZETA, _ALPHA, _BETA, strict=True):
            current = self.explicit_term(w_hat)
            rhs = (1.0 - a * dt * nu_k2) * w_hat + dt * g * current
            if previous is not None:
                rhs = rhs + dt * z * previous
            w_hat = rhs / (1.0 + b * dt * nu_k2)
            previous = current
        return w_hat

    def run(self, w0: np.ndarray, n_frames: int, frame_interval: float = 1.0,
            params: dict | None = None) -> NavierStokesTrajectory:
        """Integrate from ``w0`` (``[n, n]``), saving ``n_frames`` frames (the first is ``w0``).

        Raises
        ------
        RuntimeError
            If a fixed ``dt`` violates the CFL limit or the solution stops being finite.
        """
        if isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 1:
            raise ValueError(f"n_frames must be a positive int, got {n_frames!r}")
        if not (math.isfinite(frame_interval) and frame_interval > 0):
            raise ValueError(f"frame_interval must be positive, got {frame_interval!r}")
        w0 = np.asarray(w0, dtype=np.float64)
        if w0.shape != (self.n, self.n):
            raise ValueError(f"w0 must have shape ({self.n}, {self.n}), got {w0.shape}")
        w_hat = np.fft.rfft2(w0)
        frames, steps = [w0.astype(np.float32)], 0
        for frame in range(1, n_frames):
            if self.dt is None:
                speed = self.cfl(w_hat, 1.0)
                substeps = max(1, math.ceil(frame_interval * speed / TARGET_CFL))
            else:
                substeps = max(1, round(frame_interval / self.dt))
                if abs(substeps * self.dt - frame_interval) > 1e-9 * frame_interval:
                    raise ValueError(f"frame_interval={frame_interval:g} is not a whole number "
                                     f"of steps dt={self.dt:g}")
                cfl = self.cfl(w_hat, self.dt)
                if cfl > MAX_CFL:
                    raise RuntimeError(
                        f"dt={self.dt:g} is unstable at t={(frame - 1) * frame_interval:g}: "
                        f"CFL number {cfl:.2f} > {MAX_CFL}; reduce dt or leave it unset")
            dt = frame_interval / substeps
            for _ in range(substeps):
                w_hat = self.step(w_hat, dt)
            steps += substeps
            w = np.fft.irfft2(w_hat, s=(self.n, self.n))
            if not np.isfinite(w).all():
                raise RuntimeError(f"Navier-Stokes run blew up by t={frame * frame_interval:g}")
            frames.append(w.astype(np.float32))
        times = frame_interval * np.arange(n_frames, dtype=np.float64)
        return NavierStokesTrajectory(times, np.stack(frames), dict(params or {}), steps)


def navier_stokes_trajectory(
    rng: np.random.Generator,
    resolution: int = 64,
    solver_resolution: int | None = None,
    viscosity: float = 1e-3,
    forcing: str = "fno",
    forcing_amplitude: float = 0.1,
    n_frames: int = 20,
    frame_interval: float = 1.0,
    dt: float | None = None,
) -> NavierStokesTrajectory:
    """One seeded trajectory from a random initial vorticity, sampled on a ``resolution`` grid.

    The solver runs on ``solver_resolution`` points per side (a multiple of
    ``resolution``, default equal) and every ``solver_resolution / resolution``-th
    point is stored, so stored values are point values of the solution.
    """
    solver_resolution = resolution if solver_resolution is None else solver_resolution
    if (isinstance(solver_resolution, bool) or not isinstance(solver_resolution, int)
            or solver_resolution < resolution or solver_resolution % resolution):
        raise ValueError(f"solver_resolution must be a multiple of resolution={resolution}, "
                         f"got {solver_resolution!r}")
    solver = NavierStokes2D(solver_resolution, viscosity, forcing, forcing_amplitude, dt)
    w0 = gaussian_random_field(rng, solver_resolution)
    traj = solver.run(w0, n_frames, frame_interval, params={})
    stride = solver_resolution // resolution
    traj.vorticity = np.ascontiguousarray(traj.vorticity[:, ::stride, ::stride])
    traj.params = {"solver_steps": traj.steps}
    return traj
