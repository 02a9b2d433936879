"""The dataset generators: parameters, checks and one trajectory per sample index.

``GENERATORS`` maps a name to a :class:`GeneratorSpec`: ``cylinder`` (flow past a
cylinder on unstructured meshes, our FEM solver), ``swe`` (shallow water on the sphere,
torch-harmonics), ``darcy`` and ``ns2d`` (FNO benchmarks on regular grids). Sample ``i``
of a dataset is computed from ``numpy.random.SeedSequence([seed, i])`` alone
(:func:`sample_rng`), so any process makes the same file.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from geo_neuralop.data.storage import Trajectory, grid_description
from geo_neuralop.utils.checks import is_int, is_number

__all__ = ["GENERATORS", "GeneratorSpec", "resolve_parameters", "sample_rng"]


@dataclass(frozen=True)
class GeneratorSpec:
    """What a generator needs from the driver.

    Attributes
    ----------
    name : str
    description : str
    defaults : dict
        Every parameter with its default (None: the solver's own default).
    make : callable
        ``make(index, rng, params) -> Trajectory``; ``rng`` is
        ``np.random.default_rng(SeedSequence([seed, index]))``.
    check : callable
        ``check(params) -> params``: validates (raising ValueError) and fills defaults
        that depend on other parameters, before any worker starts.
    task : dict
        ``{"kind": "rollout" | "static", "inputs": [...], "targets": [...]}`` and
        optionally ``"conditioning": [...]`` (per-sample scalar parameters).
    fields : dict
        ``{name: {"units": ..., "description": ...}}``.
    """

    name: str
    description: str
    defaults: dict
    make: Callable[[int, np.random.Generator, dict], Trajectory]
    check: Callable[[dict], dict]
    task: dict
    fields: dict


def _plain(value):
    """JSON-able copy of a value (numpy scalars and small arrays to Python)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else None
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _range(params: dict, key: str, positive: bool = False) -> tuple[float, float]:
    value = params[key]
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)):
        raise ValueError(f"{key} must be a pair [low, high] of numbers, got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if hi < lo or (positive and lo <= 0):
        raise ValueError(f"{key} = {value!r} must satisfy {'0 < ' if positive else ''}low <= high")
    return lo, hi


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi)) if hi > lo else float(lo)


# shallow water -------------------------------------------------------------------------
_SWE_DEFAULTS = {
    "nlat": 32, "nlon": None, "grid": "equiangular", "initial_condition": "random",
    "n_frames": 25, "frame_interval": 3600.0, "dt": None, "spin_up": 0.0, "lmax": None,
    "max_wind": 80.0, "height_rms": 50.0, "wind_rms": 10.0,
}


_SIMULATORS: dict = {}


def _swe_simulator(params: dict):
    from geo_neuralop.data.solvers.shallow_water import ShallowWaterSimulator

    key = json.dumps({k: params[k] for k in ("nlat", "nlon", "grid", "dt", "frame_interval",
                                             "lmax", "max_wind")}, sort_keys=True)
    if key not in _SIMULATORS:
        _SIMULATORS.clear()
        _SIMULATORS[key] = ShallowWaterSimulator(
            nlat=params["nlat"], nlon=params["nlon"], grid=params["grid"], dt=params["dt"],
            frame_interval=params["frame_interval"], lmax=params["lmax"],
            max_wind=params["max_wind"])
    return _SIMULATORS[key]


def _swe_check(params: dict) -> dict:
    from geo_neuralop.data.solvers.shallow_water import INITIAL_CONDITIONS

    if params["initial_condition"] not in INITIAL_CONDITIONS:
        raise ValueError(f"initial_condition must be one of {INITIAL_CONDITIONS}, got "
                         f"{params['initial_condition']!r}")
    if params["nlon"] is None:
        params["nlon"] = 2 * params["nlat"]
    sim = _swe_simulator(params)  # validates the grid and the time step
    params["lmax"], params["dt"] = sim.lmax, sim.dt
    if isinstance(params["n_frames"], bool) or not isinstance(params["n_frames"], int) or \
            params["n_frames"] < 1:
        raise ValueError(f"n_frames must be a positive int, got {params['n_frames']!r}")
    return params


def _swe_make(index: int, rng: np.random.Generator, params: dict) -> Trajectory:
    from geo_neuralop.data.solvers.shallow_water import (
        FIELD_DESCRIPTIONS,
        FIELD_UNITS,
        shallow_water_trajectory,
    )
    from geo_neuralop.geometry import sphere_grid

    sim = _swe_simulator(params)
    traj = shallow_water_trajectory(rng, sim, params["initial_condition"], params["n_frames"],
                                    params["spin_up"], params["height_rms"], params["wind_rms"])
    cloud = sphere_grid(traj.nlat, traj.nlon, traj.grid, dtype=torch.float64)
    n = traj.nlat * traj.nlon
    return Trajectory(
        pos=cloud.pos.numpy(), weights=cloud.weights.numpy(), manifold="sphere",
        times=traj.times, fields={k: v.reshape(-1, n) for k, v in traj.fields.items()},
        grid=grid_description(cloud), params=_plain(traj.params), units=dict(FIELD_UNITS),
        descriptions=dict(FIELD_DESCRIPTIONS))


# Darcy -----------------------------------------------------------------------------------
_DARCY_DEFAULTS = {"resolution": 64, "solver_resolution": None, "alpha": 2.0, "tau": 3.0,
                   "high": 12.0, "low": 3.0, "forcing": 1.0}


_DARCY_FIELDS = {
    "permeability": {"units": "", "description": "piecewise-constant permeability a (input)"},
    "pressure": {"units": "", "description": "solution u of -div(a grad u) = f, u = 0 on the "
                                             "boundary (target)"},
}


def _darcy_check(params: dict) -> dict:
    from geo_neuralop.data.solvers.darcy import check_grid_size, check_resolutions, darcy_sample

    params["resolution"] = check_grid_size(params["resolution"], "resolution")
    if params["solver_resolution"] is None:
        params["solver_resolution"] = params["resolution"]
    params["solver_resolution"] = check_grid_size(params["solver_resolution"],
                                                  "solver_resolution")
    check_resolutions(params["resolution"], params["solver_resolution"])
    darcy_sample(np.random.default_rng(0), 5, 5, params["alpha"], params["tau"],
                 params["high"], params["low"], params["forcing"])
    return params


def _darcy_make(index: int, rng: np.random.Generator, params: dict) -> Trajectory:
    from geo_neuralop.data.solvers.darcy import darcy_sample
    from geo_neuralop.geometry import regular_grid

    s = darcy_sample(rng, params["resolution"], params["solver_resolution"], params["alpha"],
                     params["tau"], params["high"], params["low"], params["forcing"])
    n = params["resolution"]
    cloud = regular_grid((n, n), dtype=torch.float64)
    return Trajectory(
        pos=cloud.pos.numpy(), weights=cloud.weights.numpy(), manifold="euclidean",
        times=np.zeros(1), fields={"permeability": s.permeability.reshape(1, -1),
                                   "pressure": s.pressure.reshape(1, -1)},
        grid=grid_description(cloud), params=_plain(s.params),
        units={k: v["units"] for k, v in _DARCY_FIELDS.items()},
        descriptions={k: v["description"] for k, v in _DARCY_FIELDS.items()})


# Navier-Stokes on the torus --------------------------------------------------------------
_NS_DEFAULTS = {"resolution": 64, "solver_resolution": None, "viscosity": 1e-3,
                "forcing": "fno", "forcing_amplitude": 0.1, "n_frames": 20,
                "frame_interval": 1.0, "dt": None}


_NS_FIELDS = {"vorticity": {"units": "1/time", "description": "vorticity w = dv/dx - du/dy "
                                                              "on the periodic unit square"}}


def _ns_check(params: dict) -> dict:
    from geo_neuralop.data.solvers.navier_stokes_2d import NavierStokes2D

    if params["solver_resolution"] is None:
        params["solver_resolution"] = params["resolution"]
    NavierStokes2D(params["solver_resolution"], params["viscosity"], params["forcing"],
                   params["forcing_amplitude"], params["dt"])
    if params["solver_resolution"] % params["resolution"]:
        raise ValueError(f"solver_resolution must be a multiple of resolution, got "
                         f"{params['solver_resolution']} and {params['resolution']}")
    return params


def _ns_make(index: int, rng: np.random.Generator, params: dict) -> Trajectory:
    from geo_neuralop.data.solvers.navier_stokes_2d import navier_stokes_trajectory
    from geo_neuralop.geometry import regular_grid

    traj = navier_stokes_trajectory(
        rng, params["resolution"], params["solver_resolution"], params["viscosity"],
        params["forcing"], params["forcing_amplitude"], params["n_frames"],
        params["frame_interval"], params["dt"])
    n = params["resolution"]
    cloud = regular_grid((n, n), periodic=True, dtype=torch.float64)
    return Trajectory(
        pos=cloud.pos.numpy(), weights=cloud.weights.numpy(), manifold="euclidean",
        times=traj.times, fields={"vorticity": traj.vorticity.reshape(len(traj.times), -1)},
        grid=grid_description(cloud), params=_plain(traj.params),
        units={"vorticity": _NS_FIELDS["vorticity"]["units"]},
        descriptions={"vorticity": _NS_FIELDS["vorticity"]["description"]})


# flow past a cylinder --------------------------------------------------------------------
_CYLINDER_DEFAULTS = {
    "reynolds_range": [60.0, 200.0], "center_x_range": [0.15, 0.25],
    "center_y_range": [0.18, 0.23], "radius_range": [0.04, 0.06],
    "n_frames": None, "frame_interval": None, "spin_up": None, "dt": None,
    "target_vertices": None,
}


_CYLINDER_PASS = ("n_frames", "frame_interval", "spin_up", "dt", "target_vertices")


_CYLINDER_FIELDS = {
    "u": {"units": "m/s", "description": "streamwise velocity"},
    "v": {"units": "m/s", "description": "cross-stream velocity"},
    "p": {"units": "m^2/s^2", "description": "kinematic pressure (0 on average at the outlet)"},
}


def _cylinder_simulator():
    from geo_neuralop.data.solvers import cylinder_flow

    return cylinder_flow.simulate_cylinder_flow


def _cylinder_check(params: dict) -> dict:
    simulate = _cylinder_simulator()
    for key in ("reynolds_range", "center_x_range", "center_y_range", "radius_range"):
        params[key] = list(_range(params, key, positive=key in ("reynolds_range",
                                                                 "radius_range")))
    signature = inspect.signature(simulate).parameters
    for key in _CYLINDER_PASS:  # record the solver's defaults in the card
        if params[key] is None and key in signature and \
                signature[key].default is not inspect.Parameter.empty:
            params[key] = signature[key].default
    return params


def _cylinder_make(index: int, rng: np.random.Generator, params: dict) -> Trajectory:
    from geo_neuralop.geometry.quadrature import lumped_vertex_weights

    simulate = _cylinder_simulator()
    reynolds = _uniform(rng, *params["reynolds_range"])
    center = (_uniform(rng, *params["center_x_range"]), _uniform(rng, *params["center_y_range"]))
    radius = _uniform(rng, *params["radius_range"])
    mesh_seed = int(rng.integers(0, 2**31 - 1))
    kwargs = {k: params[k] for k in _CYLINDER_PASS if params[k] is not None}
    result = simulate(reynolds=reynolds, center=center, radius=radius, seed=mesh_seed,
                      progress=False, **kwargs)
    points = np.asarray(result.points, dtype=np.float64)
    faces = np.asarray(result.triangles, dtype=np.int64)
    velocity = np.asarray(result.velocity)
    static = {}
    markers = getattr(result, "vertex_markers", None)
    if markers is not None:
        static["node_type"] = np.asarray(markers, dtype=np.int64)
    sample_params = {"reynolds": reynolds, "center": list(center), "radius": radius,
                     "mesh_seed": mesh_seed}
    sample_params["solver"] = _plain(dict(getattr(result, "attrs", {}) or {}))
    return Trajectory(
        pos=points, weights=lumped_vertex_weights(points, faces), manifold="euclidean",
        times=np.asarray(result.times, dtype=np.float64),
        fields={"u": velocity[..., 0], "v": velocity[..., 1],
                "p": np.asarray(result.pressure)},
        faces=faces, static=static,
        series={"force_times": np.asarray(result.force_times), "drag": np.asarray(result.drag),
                "lift": np.asarray(result.lift)},
        params=sample_params, units={k: v["units"] for k, v in _CYLINDER_FIELDS.items()},
        descriptions={k: v["description"] for k, v in _CYLINDER_FIELDS.items()})


GENERATORS: dict[str, GeneratorSpec] = {
    "cylinder": GeneratorSpec(
        "cylinder", "Flow past a cylinder in the DFG channel (2.2 x 0.41): P2-P1 FEM "
        "trajectories of (u, v, p) at the vertices of graded triangle meshes; per sample a "
        "Reynolds number, cylinder centre and radius drawn uniformly from the given ranges.",
        _CYLINDER_DEFAULTS, _cylinder_make, _cylinder_check,
        {"kind": "rollout", "inputs": ["u", "v", "p"], "targets": ["u", "v", "p"],
         "conditioning": ["reynolds"]},
        _CYLINDER_FIELDS),
    "swe": GeneratorSpec(
        "swe", "Shallow water equations on the rotating sphere (torch-harmonics' spectral "
        "solver, AB3 with hyperdiffusion): trajectories of height, vorticity and divergence "
        "on a lat/lon grid.",
        _SWE_DEFAULTS, _swe_make, _swe_check,
        {"kind": "rollout", "inputs": ["height", "vorticity", "divergence"],
         "targets": ["height", "vorticity", "divergence"]},
        {"height": {"units": "m", "description": "fluid depth h = geopotential / g"},
         "vorticity": {"units": "1/s", "description": "relative vorticity"},
         "divergence": {"units": "1/s", "description": "horizontal divergence"}}),
    "darcy": GeneratorSpec(
        "darcy", "Darcy flow -div(a grad u) = 1 on the unit square, u = 0 on the boundary, "
        "thresholded Gaussian random permeability (12 / 3), finite-volume solve (FNO "
        "benchmark).",
        _DARCY_DEFAULTS, _darcy_make, _darcy_check,
        {"kind": "static", "inputs": ["permeability"], "targets": ["pressure"]},
        _DARCY_FIELDS),
    "ns2d": GeneratorSpec(
        "ns2d", "2D incompressible Navier-Stokes in vorticity form on the periodic unit "
        "square, pseudo-spectral with 2/3 dealiasing, IMEX RK3/Crank-Nicolson, FNO forcing "
        "and random initial vorticity.",
        _NS_DEFAULTS, _ns_make, _ns_check,
        {"kind": "rollout", "inputs": ["vorticity"], "targets": ["vorticity"]}, _NS_FIELDS),
}


def _check_parameter_types(generator: str, defaults: dict, params: dict) -> None:
    """A value of another kind than its default (a string for a number, ...) is refused
    naming the parameter, before any folder or worker is made."""
    for key, value in params.items():
        default = defaults[key]
        if default is None or value is None:
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
            kind = "true or false"
        elif isinstance(default, int):
            ok = is_int(value)
            kind = "an integer"
        elif isinstance(default, float):
            ok = is_number(value)
            kind = "a number"
        elif isinstance(default, (list, tuple)):
            ok = isinstance(value, (list, tuple))
            kind = "a list, e.g. [80, 160]"
        else:
            ok = isinstance(value, type(default))
            kind = f"a {type(default).__name__}"
        if not ok:
            raise ValueError(f"generator {generator!r} parameter {key} must be {kind}, got "
                             f"{value!r}")


def resolve_parameters(generator: str, params: dict | None = None) -> dict:
    """Merge ``params`` into the generator's defaults and validate them.

    Raises
    ------
    ValueError
        For an unknown generator or parameter name, a value of the wrong kind
        (naming the parameter), or invalid values.
    """
    if generator not in GENERATORS:
        raise ValueError(f"unknown generator {generator!r}; choose one of {sorted(GENERATORS)}")
    spec = GENERATORS[generator]
    params = _plain(dict(params or {}))
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        raise ValueError(f"generator {generator!r} has no parameter(s) {unknown}; accepted: "
                         f"{sorted(spec.defaults)}")
    _check_parameter_types(generator, spec.defaults, params)
    merged = {**json.loads(json.dumps(spec.defaults)), **params}
    for key, default in spec.defaults.items():  # ints stay ints, floats accept ints
        value = merged[key]
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            merged[key] = float(value)
    return _plain(spec.check(merged))


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of sample ``index``: ``default_rng(SeedSequence([seed, index]))``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
