"""Flow past a cylinder in a channel: trajectories of (u, v, p) on graded triangle meshes.

``simulate_cylinder_flow`` meshes the DFG channel (2.2 x 0.41) with a cylinder of
any centre and radius, runs the P2-P1 pressure-correction solver of
``navier_stokes_fem`` through a spin-up until vortex shedding is established, and
records frames of velocity and pressure at the mesh vertices plus the drag and
lift histories. ``shedding_statistics`` measures maximal drag/lift and the
Strouhal number of a periodic signal (used to validate against the DFG 2D-2
benchmark of Schaefer & Turek, 1996).

Reynolds number: ``Re = Ubar D / nu`` with ``D = 2 radius`` and the mean inflow
``Ubar = 2 U_max / 3``. The peak inflow ``U_max`` is fixed (1.5 by default, so
``Ubar = 1``) and the viscosity is chosen from ``Re``: ``nu = Ubar D / Re``. Times
are in seconds, lengths in metres, density 1 (``p`` is the kinematic pressure).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from geo_neuralop.data.solvers.cylinder_mesh import cylinder_channel_mesh
from geo_neuralop.data.solvers.navier_stokes_fem import NavierStokesSolver


@dataclass
class CylinderFlowResult:
    """A simulated trajectory of flow past a cylinder.

    Attributes
    ----------
    points : np.ndarray
        ``[N, 2]`` float64 mesh vertices (m).
    triangles : np.ndarray
        ``[T, 3]`` int64 triangles.
    vertex_markers : np.ndarray
        ``[N]`` int64: 0 interior, 1 inlet, 2 outlet, 3 walls, 4 cylinder.
    times : np.ndarray
        ``[F]`` frame times (s), the first at the end of the spin-up.
    velocity : np.ndarray
        ``[F, N, 2]`` float64 velocity ``(u, v)`` at the vertices (m/s).
    pressure : np.ndarray
        ``[F, N]`` float64 kinematic pressure at the vertices (m^2/s^2), 0 on average
        at the outlet.
    force_times : np.ndarray
        ``[S]`` times (s) of the force samples: every solver step, spin-up included.
    drag, lift : np.ndarray
        ``[S]`` drag and lift coefficients ``2 F / (Ubar^2 D)``.
    attrs : dict
        Parameters and diagnostics (plain JSON-able values): reynolds, nu, u_max,
        u_mean, diameter, center, radius, dt, spin_up, frame_interval, n_frames,
        mesh sizes, solver wall/CPU seconds, courant number, ...
    """

    points: np.ndarray
    triangles: np.ndarray
    vertex_markers: np.ndarray
    times: np.ndarray
    velocity: np.ndarray
    pressure: np.ndarray
    force_times: np.ndarray
    drag: np.ndarray
    lift: np.ndarray
    attrs: dict = field(default_factory=dict)


def _steps(name: str, value: float, dt: float, minimum: int) -> int:
    """``value / dt`` as an integer number of steps (ValueError if not a multiple)."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    steps = value / dt
    n = int(round(steps))
    if abs(steps - n) > 1e-6 * max(1.0, steps):
        raise ValueError(f"{name}={value} must be a multiple of dt={dt} (it is {steps:.6g} dt)")
    if n < minimum:
        raise ValueError(f"{name} must be at least {minimum} step(s) of dt={dt}, got {value}")
    return n


def simulate_cylinder_flow(
    reynolds: float,
    center: tuple[float, float] = (0.2, 0.2),
    radius: float = 0.05,
    n_frames: int = 100,
    frame_interval: float = 0.02,
    spin_up: float = 2.0,
    dt: float = 0.005,
    target_vertices: int = 2200,
    seed: int = 0,
    progress: bool = False,
    u_max: float = 1.5,
    ramp_time: float = 0.25,
    spin_perturbation: float = 0.3,
    length: float = 2.2,
    height: float = 0.41,
) -> CylinderFlowResult:
    """Simulate flow past a cylinder and record frames at the mesh vertices.

    Parameters
    ----------
    reynolds : float
        ``Re = Ubar D / nu`` (``Ubar = 2 u_max / 3``, ``D = 2 radius``), in ``(0, 1000]``;
        vortex shedding starts near 50 in this channel.
    center : (float, float)
        Cylinder centre (m), DFG default (0.2, 0.2).
    radius : float
        Cylinder radius (m), DFG default 0.05.
    n_frames : int
        Number of saved frames, at least 1.
    frame_interval : float
        Time between frames (s), a multiple of ``dt``. Default 0.02 s: about 17
        frames per shedding period at Re = 100 (100 frames span 6 periods).
    spin_up : float
        Simulated time before the first frame (s), a multiple of ``dt``. With the
        default perturbation the lift amplitude is within about 5% of its periodic
        value after 2 s for Re = 60-200 on the default mesh (check ``lift``).
    dt : float
        Time step (s); the Courant number ``dt u_max / h_min`` must stay below
        ``navier_stokes_fem.MAX_COURANT["bdf2"]`` (4).
    target_vertices : int
        Mesh size (vertices), see ``cylinder_channel_mesh``.
    seed : int
        Mesh seed (different seeds give different meshes of the same domain).
    progress : bool
        Show a tqdm progress bar.
    u_max : float
        Peak inflow velocity (m/s).
    ramp_time : float
        Duration of the smooth inflow start (s); 0 starts at full inflow.
    spin_perturbation : float
        Peak tangential speed of a short cylinder rotation during the ramp, as a
        fraction of ``u_max``; it breaks the symmetry so shedding starts sooner. 0
        disables it.
    length, height : float
        Channel size (m).

    Returns
    -------
    CylinderFlowResult

    Raises
    ------
    ValueError
        For invalid parameters (including a too large ``dt`` for the mesh).
    SolverDivergedError
        If the solution blows up (the message names the step).
    """
    if not isinstance(reynolds, int | float) or isinstance(reynolds, bool):
        raise TypeError(f"reynolds must be a number, got {reynolds!r}")
    if not (math.isfinite(reynolds) and 0 < reynolds <= 1000):
        raise ValueError(f"reynolds must be in (0, 1000], got {reynolds}")
    if not isinstance(n_frames, int | np.integer) or isinstance(n_frames, bool) or n_frames < 1:
        raise ValueError(f"n_frames must be a positive int, got {n_frames!r}")
    if not isinstance(dt, int | float) or not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number, got {dt!r}")
    if not isinstance(u_max, int | float) or not (math.isfinite(u_max) and u_max > 0):
        raise ValueError(f"u_max must be a positive number, got {u_max!r}")
    frame_steps = _steps("frame_interval", frame_interval, dt, 1)
    spin_steps = _steps("spin_up", spin_up, dt, 0)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    mesh = cylinder_channel_mesh(center=center, radius=radius, length=length, height=height,
                                 target_vertices=target_vertices, seed=seed)
    u_mean = 2.0 * u_max / 3.0
    diameter = 2.0 * mesh.radius
    nu = u_mean * diameter / reynolds
    solver = NavierStokesSolver(mesh, nu=nu, u_max=u_max, dt=dt, ramp_time=ramp_time,
                                spin_perturbation=spin_perturbation)
    setup_wall = time.perf_counter() - wall0

    n_steps = spin_steps + (n_frames - 1) * frame_steps
    n_vertices = mesh.n_vertices
    velocity = np.empty((n_frames, n_vertices, 2))
    pressure = np.empty((n_frames, n_vertices))
    times = np.empty(n_frames)
    drag = np.empty(n_steps)
    lift = np.empty(n_steps)
    force_times = dt * np.arange(1, n_steps + 1)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_steps, desc=f"cylinder Re={reynolds:g}", unit="step")
    frame = 0

    def record():
        nonlocal frame
        velocity[frame] = solver.vertex_velocity()
        pressure[frame] = solver.vertex_pressure()
        times[frame] = solver.t
        frame += 1

    step_wall = time.perf_counter()
    try:
        if spin_steps == 0:
            record()
        for k in range(1, n_steps + 1):
            solver.step()
            drag[k - 1], lift[k - 1] = solver.forces()
            if k >= spin_steps and (k - spin_steps) % frame_steps == 0:
                record()
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    step_wall = time.perf_counter() - step_wall

    attrs = {
        "reynolds": float(reynolds), "nu": float(nu), "u_max": float(u_max),
        "u_mean": float(u_mean), "diameter": float(diameter),
        "center": [float(c) for c in mesh.center], "radius": float(mesh.radius),
        "length": float(length), "height": float(height), "dt": float(dt),
        "spin_up": float(spin_steps * dt), "frame_interval": float(frame_steps * dt),
        "n_frames": int(n_frames), "n_steps": int(n_steps), "ramp_time": float(ramp_time),
        "spin_perturbation": float(spin_perturbation), "seed": int(seed),
        "target_vertices": int(target_vertices), "n_vertices": int(n_vertices),
        "n_triangles": int(mesh.triangles.shape[0]),
        "n_cylinder_vertices": int(mesh.boundary_edges["cylinder"].shape[0]),
        "n_velocity_dofs": int(2 * solver.n_u), "n_pressure_dofs": int(solver.n_p),
        "h_min": float(solver.h_min), "courant": float(solver.courant),
        "setup_wall_seconds": float(setup_wall),
        "solver_wall_seconds": float(step_wall),
        "ms_per_step": float(1e3 * step_wall / max(n_steps, 1)),
        "cpu_seconds": float(time.process_time() - cpu0),
        "lu_refreshes": int(solver.lu_refreshes),
        "mean_krylov_iterations": float(solver.krylov_iterations / max(n_steps, 1)),
        "final_divergence_l2": float(solver.divergence_l2()),
        "scheme": "P2-P1 Taylor-Hood, incremental pressure correction (standard form), "
                  "BDF2 with convection linearised about 2 u^n - u^(n-1)",
        "units": "SI, density 1 (kinematic pressure)",
    }
    return CylinderFlowResult(
        points=mesh.points, triangles=mesh.triangles, vertex_markers=mesh.vertex_markers(),
        times=times, velocity=velocity, pressure=pressure, force_times=force_times,
        drag=drag, lift=lift, attrs=attrs,
    )


def _peak(y: np.ndarray) -> float:
    """Maximum of a sampled smooth signal, refined by a parabola through the top 3 samples."""
    i = int(np.argmax(y))
    if i == 0 or i == y.size - 1:
        return float(y[i])
    a, b, c = y[i - 1], y[i], y[i + 1]
    den = a - 2.0 * b + c
    return float(b - 0.125 * (a - c) ** 2 / den) if den < 0 else float(b)


def shedding_statistics(
    times: np.ndarray,
    drag: np.ndarray,
    lift: np.ndarray,
    u_mean: float,
    diameter: float,
    t_start: float | None = None,
) -> dict[str, float]:
    """Peak drag/lift and Strouhal number of a periodic force signal.

    Parameters
    ----------
    times : np.ndarray
        ``[S]`` increasing sample times (s).
    drag, lift : np.ndarray
        ``[S]`` force coefficients.
    u_mean : float
        Mean inflow velocity (m/s).
    diameter : float
        Cylinder diameter (m).
    t_start : float, optional
        Use samples with ``times >= t_start`` (default: all).

    Returns
    -------
    dict
        ``drag_max``, ``drag_min``, ``drag_mean``, ``lift_max``, ``lift_min`` (peaks
        refined by parabolic interpolation), ``period`` (s, mean spacing of the
        upward zero crossings of the lift about its mean), ``strouhal = D / (period
        Ubar)`` and ``n_periods``.

    Raises
    ------
    ValueError
        If the lift has fewer than two full periods in the window.
    """
    times, drag, lift = (np.asarray(a, dtype=np.float64) for a in (times, drag, lift))
    if not (times.shape == drag.shape == lift.shape) or times.ndim != 1:
        raise ValueError(f"times, drag and lift must be 1D of equal length, got {times.shape}, "
                         f"{drag.shape}, {lift.shape}")
    if t_start is not None:
        keep = times >= t_start
        times, drag, lift = times[keep], drag[keep], lift[keep]
    x = lift - lift.mean()
    up = np.nonzero((x[:-1] < 0) & (x[1:] >= 0))[0]
    if up.size < 3:
        raise ValueError(
            f"the lift has {max(up.size - 1, 0)} full period(s) in the window; need at least 2 "
            "(is the flow shedding vortices, and is the window long enough?)"
        )
    crossings = times[up] - x[up] * (times[up + 1] - times[up]) / (x[up + 1] - x[up])
    # whole periods only, for the peaks too
    first, last = crossings[0], crossings[-1]
    window = (times >= first) & (times <= last)
    period = float(np.diff(crossings).mean())
    return {
        "drag_max": _peak(drag[window]), "drag_min": -_peak(-drag[window]),
        "drag_mean": float(drag[window].mean()),
        "lift_max": _peak(lift[window]), "lift_min": -_peak(-lift[window]),
        "period": period, "strouhal": float(diameter / (period * u_mean)),
        "n_periods": int(up.size - 1),
    }


def to_point_cloud(result: CylinderFlowResult, frame: int, dtype=None):
    """One frame of a trajectory as a ``PointCloud`` (lumped quadrature weights).

    Parameters
    ----------
    result : CylinderFlowResult
    frame : int
        Frame index in ``[-F, F)``.
    dtype : torch.dtype, optional
        Floating dtype of positions, weights and fields.

    Returns
    -------
    PointCloud
        ``pos [N, 2]``, ``weights [N]``, ``faces [T, 3]``, fields ``u [N, 2]`` (velocity,
        m/s), ``p [N]`` (kinematic pressure), ``marker [N]`` (int64 boundary codes) and
        ``time`` (float, s).
    """
    import torch

    from geo_neuralop.geometry import from_mesh

    if not isinstance(result, CylinderFlowResult):
        raise TypeError(f"result must be a CylinderFlowResult, got {type(result).__name__}")
    n = result.times.shape[0]
    if not isinstance(frame, int | np.integer) or isinstance(frame, bool):
        raise TypeError(f"frame must be an int, got {frame!r}")
    if not -n <= frame < n:
        raise ValueError(f"frame {frame} out of range for {n} frames")
    cloud = from_mesh((result.points, result.triangles), dtype=dtype)
    dtype = cloud.pos.dtype
    cloud.u = torch.as_tensor(result.velocity[frame], dtype=dtype)
    cloud.p = torch.as_tensor(result.pressure[frame], dtype=dtype)
    cloud.marker = torch.as_tensor(result.vertex_markers)
    cloud.time = float(result.times[frame])
    return cloud
