"""Dataset generation: parallel, resumable, one atomic file per trajectory.

``generate_dataset("swe", "datasets/swe_small", n_samples=20, seed=0, workers=2)``
writes ``datasets/swe_small/`` (layout in :mod:`geo_neuralop.data.storage`):

1. ``generation.json`` records the generator, its parameters (defaults filled in),
   the seed and the sample count. A later call with the same settings resumes:
   finished trajectories (files under their final name) are skipped, leftover
   temporary files of an interrupted write are removed, and only the missing
   samples are computed. Different settings are refused, never written over.
2. Each sample ``i`` is computed from ``numpy.random.SeedSequence([seed, i])``
   alone, in a worker process (one torch thread each) with a tqdm progress bar,
   and written to a temporary file that is renamed when complete.
3. When every sample exists, the per-field normalizer is fitted on the training
   split, and the dataset card (with checksums of every file) is written last. A
   complete dataset is verified byte for byte (SHA-256) when generation is run again.

One process generates into a folder at a time (an exclusive lock; a second one is
refused naming the first one's pid), and a folder that holds anything but a dataset
of ours is never written into; ``overwrite`` deletes only the old dataset's files that
its card or manifest lists and whose contents prove they are ours.

Several machines: ``generate_dataset(..., shard=(I, N))`` (``geo-neuralop generate ...
--shard I/N``) makes only the samples ``i % N == I`` (shards share the folder and run
at the same time), and ``finalize=True`` (``--finalize``) checks that every sample is
present and readable and writes the normalizer and the card. Sample files hold no
time stamps, so the dataset is byte-identical to one made by a single process.

Generators (``GENERATORS``): ``cylinder`` (flow past a cylinder on unstructured
meshes, our FEM solver), ``swe`` (shallow water on the sphere, torch-harmonics),
``darcy`` and ``ns2d`` (FNO benchmarks on regular grids).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from geo_neuralop.data.dataset_card import (
    code_version,
    compute_splits,
    file_entries,
    make_card,
    read_card,
    split_indices,
    verify_dataset,
    write_card,
)
from geo_neuralop.data.normalizers import FieldNormalizer
from geo_neuralop.data.storage import (
    CARD_NAME,
    MANIFEST_NAME,
    NORMALIZER_NAME,
    SAMPLES_DIR,
    TIMINGS_DIR,
    DatasetError,
    Trajectory,
    grid_description,
    is_sample_file,
    is_sample_vtu,
    params_hash,
    read_header,
    read_timing,
    read_trajectory,
    remove_stale_temporaries,
    sample_indices,
    sample_name,
    sample_path,
    timing_path,
    write_mesh_vtu,
    write_timing,
    write_trajectory,
)
from geo_neuralop.utils import atomic_path
from geo_neuralop.utils.checks import is_int, is_number
from geo_neuralop.utils.folders import LOCK_NAME, folder_entries, locked
from geo_neuralop.utils.paths import PathOutsideFolderError, confined_file

MANIFEST_FORMAT = "geo_neuralop.generation"


# --- generators -------------------------------------------------------------------------
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


# --- the driver ---------------------------------------------------------------------------
def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of sample ``index``: ``default_rng(SeedSequence([seed, index]))``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


#: Seconds between two checks of a worker that the generating process is still alive.
PARENT_POLL_SECONDS = 0.5


def _exit_with_parent(parent_pid: int) -> None:
    """In a worker: end this process as soon as the process that started the pool is gone.

    A ``kill -9`` of ``geo-neuralop generate`` cannot tell its workers; without this,
    they (and the forkserver that made them) would go on computing the queued samples
    and then wait forever.
    """
    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_SECONDS)
            if not _alive(parent_pid):
                os._exit(1)

    threading.Thread(target=watch, name="geo_neuralop-parent-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a pid reused by another user's process
        return True
    return True


def _worker_init(parent_pid: int | None = None) -> None:
    torch.set_num_threads(1)
    if parent_pid is not None:
        _exit_with_parent(parent_pid)


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _one_thread_environment() -> Iterator[None]:
    """One BLAS/OpenMP thread in the worker processes started inside (unless the user set it)."""
    added = [name for name in _THREAD_VARIABLES if name not in os.environ]
    for name in added:
        os.environ[name] = "1"
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _process_context():
    """Fresh worker processes (never a fork of a process that already runs torch threads).

    "forkserver" where available: one server process imports geo_neuralop once and
    forks the workers from it; "spawn" elsewhere.
    """
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["geo_neuralop.data.generate"])
        return context
    return multiprocessing.get_context("spawn")


def generate_sample(generator: str, index: int, seed: int, params: dict,
                    root: str | os.PathLike, dataset_hash: str) -> tuple[int, float, float, int]:
    """Compute sample ``index`` and write it atomically; return (index, wall s, CPU s, bytes).

    The sample file depends only on ``(generator, params, seed, index)``; the timing is
    written beside it (:func:`~geo_neuralop.data.storage.write_timing`), before the
    sample file, whose appearance marks the sample as done.
    """
    spec = GENERATORS[generator]
    wall, cpu = time.perf_counter(), time.process_time()
    traj = spec.make(index, sample_rng(seed, index), params)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    path = sample_path(root, index)
    if traj.faces is not None:  # meshes: a VTU beside the data (written before the h5 file)
        write_mesh_vtu(path.with_suffix(".vtu"), traj)
    write_timing(root, index, wall, cpu)
    write_trajectory(path, traj, generator, index, seed, dataset_hash)
    return index, wall, cpu, path.stat().st_size


def _manifest(generator: str, params: dict, seed: int, n_samples: int, splits: dict) -> dict:
    return {"format": MANIFEST_FORMAT, "generator": generator, "parameters": params,
            "seed": int(seed), "n_samples": int(n_samples), "splits": splits,
            "dataset_hash": params_hash({"generator": generator, "parameters": params,
                                         "seed": int(seed)})}


def _differences(old: dict, new: dict) -> list[str]:
    out = []
    for key in ("generator", "seed", "n_samples", "parameters", "splits"):
        if old.get(key) != new.get(key):
            if key == "parameters" and isinstance(old.get(key), dict):
                keys = sorted(set(old[key]) | set(new[key]))
                changed = [k for k in keys if old[key].get(k) != new[key].get(k)]
                out.append(f"parameters {changed}")
            else:
                out.append(f"{key} ({old.get(key)!r} -> {new.get(key)!r})")
    return out


def _ignored(name: str) -> bool:
    """Lock files, which a refused or running generation may leave in a folder."""
    return name == LOCK_NAME or (name.startswith(".geo_neuralop") and name.endswith(".lock"))


def _foreign_entries(root: Path) -> list[str]:
    return [name for name in folder_entries(root, ignore=()) if not _ignored(name)]


def read_manifest(root: str | os.PathLike) -> dict:
    """The generation manifest (``generation.json``) of an unfinished dataset.

    Raises
    ------
    DatasetError
        When it is not a JSON object with ``"format": "geo_neuralop.generation"`` (a
        file of someone else's, which is never taken for ours), naming the file.
    """
    path = Path(root) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path} is not a geo_neuralop generation manifest (not readable "
                           f"JSON: {error}); refusing to write into {root}: choose another "
                           f"--out") from error
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or not is_int(
            data.get("n_samples")):
        kind = type(data).__name__ if not isinstance(data, dict) else \
            f"format {data.get('format')!r}"
        raise DatasetError(f"{path} is not a geo_neuralop generation manifest ({kind}); "
                           f"refusing to write into {root}: choose another --out")
    return data


def _existing_dataset(root: Path) -> dict | None:
    """The card, else the manifest, of the dataset in ``root``; None when it holds neither."""
    if (root / CARD_NAME).exists():
        return read_card(root)
    if (root / MANIFEST_NAME).exists():
        return read_manifest(root)
    return None


def _check_not_foreign(root: Path) -> None:
    """Refuse (before writing anything, even a lock file) a folder holding no dataset of ours."""
    if root.exists() and not root.is_dir():
        raise DatasetError(f"--out {root} exists and is not a folder")
    if not root.is_dir():
        return
    if _existing_dataset(root) is None:
        foreign = _foreign_entries(root)
        if foreign:
            raise DatasetError(
                f"{root} is not empty and holds no geo_neuralop dataset ({foreign[:5]}); "
                f"refusing to write into it: choose another --out")


def _listed_files(root: Path, existing: dict) -> list[str]:
    """Relative paths the old dataset's card (or manifest) names as its own."""
    if existing.get("format") == MANIFEST_FORMAT:
        names = []
        for i in range(int(existing["n_samples"])):
            names += [f"{SAMPLES_DIR}/{sample_name(i)}",
                      f"{SAMPLES_DIR}/{Path(sample_name(i)).with_suffix('.vtu').name}"]
        return names + [NORMALIZER_NAME]
    return [str(rel) for rel in existing["files"]]


def _remove_our_files(root: Path, existing: dict) -> list[Path]:
    """Delete the old dataset's files: only those its card or manifest lists whose names and
    contents prove they are ours (sample files by their format attribute, VTU files by
    their point data, the normalizer by its format key), then the card and manifest."""
    removed = []
    indices = []
    for rel in _listed_files(root, existing):
        try:
            path = confined_file(root, rel, "listed file", must_exist=False)
        except PathOutsideFolderError:
            continue  # never follow a name out of the folder
        if path is None:
            continue
        rel_path = Path(rel)
        ours = False
        if rel_path.parent.as_posix() == SAMPLES_DIR and rel_path.suffix == ".h5":
            ours = is_sample_file(root / rel)
            if ours:
                indices.append(int(rel_path.stem.split("_")[1]))
        elif rel_path.parent.as_posix() == SAMPLES_DIR and rel_path.suffix == ".vtu":
            ours = is_sample_vtu(root / rel)
        elif rel == NORMALIZER_NAME:
            ours = _is_our_normalizer(path)
        if ours:
            (root / rel).unlink()
            removed.append(root / rel)
    for i in indices:
        timing = timing_path(root, i)
        if timing.is_file() and not timing.is_symlink():
            timing.unlink()
    removed += remove_stale_temporaries(root)
    for name in (CARD_NAME, MANIFEST_NAME):  # validated as ours by _existing_dataset
        path = root / name
        if path.is_file() and not path.is_symlink():
            path.unlink()
            removed.append(path)
    for folder in (SAMPLES_DIR, TIMINGS_DIR):
        with contextlib.suppress(OSError):
            (root / folder).rmdir()  # only when empty
    return removed


def _is_our_normalizer(path: Path) -> bool:
    try:
        FieldNormalizer.load(path)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def _prepare_folder(root: Path, manifest: dict, overwrite: bool,
                    log: Callable[[str], None]) -> bool:
    """Check the output folder (the caller holds its lock); return True when the dataset is
    already complete."""
    root.mkdir(parents=True, exist_ok=True)
    existing = _existing_dataset(root)
    if existing is None:
        foreign = _foreign_entries(root)
        if foreign:
            raise DatasetError(
                f"{root} is not empty and holds no geo_neuralop dataset ({foreign[:5]}); "
                f"refusing to write into it: choose another --out")
        return False
    differences = _differences(existing, manifest)
    if differences:
        unfinished_empty = not (root / CARD_NAME).exists() and not sample_indices(root)
        if unfinished_empty:  # an earlier run failed before its first sample: nothing to lose
            log(f"{root}: the earlier generation here made no sample; starting over with the "
                f"new settings ({'; '.join(differences)})")
            _remove_our_files(root, existing)
            return False
        if not overwrite:
            raise DatasetError(
                f"{root} already holds a different dataset: {'; '.join(differences)} differ. "
                f"Choose another --out, or pass --overwrite to delete the old dataset's files")
        _remove_our_files(root, existing)
        return False
    return (root / CARD_NAME).exists()


def _check_existing(root: Path, generator: str, dataset_hash: str, n_samples: int) -> list[int]:
    """Indices still to compute; raises for a finished file that is damaged or foreign."""
    present = set(sample_indices(root))
    bad = []
    for i in sorted(present):
        if i >= n_samples:
            bad.append(f"{SAMPLES_DIR}/sample_{i:06d}.h5 (index beyond n_samples={n_samples})")
            continue
        try:
            header = read_header(sample_path(root, i))
        except DatasetError as error:
            bad.append(str(error))
            continue
        if (header.generator, header.index, header.dataset_params_hash) != (
                generator, i, dataset_hash):
            bad.append(f"{header.path} was made with other settings")
    if bad:
        raise DatasetError(
            f"{len(bad)} existing sample file(s) cannot be reused: {'; '.join(bad[:5])}. Delete "
            f"them (or the folder) to regenerate; nothing is overwritten automatically")
    return [i for i in range(n_samples) if i not in present]


def parse_shard(text: str | tuple[int, int]) -> tuple[int, int]:
    """``"I/N"`` (or ``(I, N)``) as ``(I, N)`` with ``0 <= I < N``.

    Shard ``I`` of ``N`` makes the samples whose index ``i`` has ``i % N == I``.

    Examples
    --------
    >>> parse_shard("2/4"), parse_shard((0, 1))
    ((2, 4), (0, 1))
    """
    if isinstance(text, str):
        first, sep, second = text.partition("/")
        try:
            shard = (int(first), int(second)) if sep else None
        except ValueError:
            shard = None
        if shard is None:
            raise ValueError(f"shard must be I/N with integers 0 <= I < N (e.g. 0/4), got "
                             f"{text!r}")
    else:
        try:
            shard = tuple(text)  # type: ignore[assignment]
        except TypeError:
            shard = None
        if shard is None or len(shard) != 2 or not all(is_int(v) for v in shard):
            raise ValueError(f"shard must be (I, N) with integers 0 <= I < N, got {text!r}")
        shard = (int(shard[0]), int(shard[1]))
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard must be I/N with 0 <= I < N, got {index}/{count}")
    return index, count


def generate_dataset(
    generator: str,
    out: str | os.PathLike,
    n_samples: int,
    seed: int = 0,
    workers: int = 1,
    params: dict | None = None,
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    shard: str | tuple[int, int] | None = None,
    finalize: bool = False,
) -> Path | None:
    """Generate (or resume, or confirm) a dataset; return the card's path.

    Parameters
    ----------
    generator : {"cylinder", "swe", "darcy", "ns2d"}
    out : path
        Dataset folder (created). Must be empty, absent, or hold this same dataset.
    n_samples : int
        Number of trajectories (samples).
    seed : int
        Dataset seed; sample ``i`` depends only on ``(seed, i)`` and the parameters.
    workers : int
        Processes (1 runs in this process).
    params : dict, optional
        Generator parameters (see ``GENERATORS[generator].defaults``).
    split_fractions : (train, val, test)
        Contiguous index ranges, see :func:`~geo_neuralop.data.dataset_card.compute_splits`.
    overwrite : bool
        If ``out`` holds a *different* geo_neuralop dataset, delete its files
        (card, manifest, normalizer, and the sample files its card or manifest lists
        whose contents prove they are ours; nothing else) instead of refusing.
    progress : bool
        Show a tqdm progress bar.
    log : callable, optional
        Receives one-line status messages (None for silence).
    shard : "I/N" or (I, N), optional
        Make only the samples ``i`` with ``i % N == I`` (several machines, e.g. a SLURM
        array, fill one folder); the card is not written. Shards of one dataset run at
        the same time on one (shared) folder.
    finalize : bool
        Compute nothing: check that every sample is present and readable (refusing,
        naming the missing or damaged ones) and write the normalizer and the card. A
        run without ``shard`` does the same after computing what is missing.

    Returns
    -------
    Path or None
        The card's path; None for a shard (the card comes with ``finalize``).

    Raises
    ------
    ValueError
        Bad arguments or parameters (``DatasetError`` for folder problems: a foreign or
        different dataset, damaged files, missing samples at ``finalize``).
    FolderBusyError
        Another process generates into ``out`` (naming its pid).
    RuntimeError
        A sample failed (finished samples are kept; run again to resume).
    """
    log = log or (lambda message: None)
    if not is_int(seed) or int(seed) < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not is_int(workers) or int(workers) < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    if not is_int(n_samples) or int(n_samples) < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    seed, workers, n_samples = int(seed), int(workers), int(n_samples)
    shard = None if shard is None else parse_shard(shard)
    if shard is not None and finalize:
        raise ValueError("finalize=True writes the card of the whole dataset; it takes no shard")
    splits = compute_splits(n_samples, tuple(split_fractions))
    params = resolve_parameters(generator, params)
    root = Path(out)
    manifest = _manifest(generator, params, seed, n_samples, splits)
    _check_not_foreign(root)
    # shards share the folder, each holding its own shard; a whole run or finalize excludes all
    with locked(root, shared=shard is not None, what="dataset folder"), (
            locked(root, name=f".geo_neuralop-shard-{shard[0]}-of-{shard[1]}.lock",
                   what=f"shard {shard[0]}/{shard[1]} of dataset folder")
            if shard is not None else contextlib.nullcontext()):
        return _generate_locked(generator, root, manifest, workers, overwrite, progress, log,
                                shard, finalize)


def _generate_locked(generator: str, root: Path, manifest: dict, workers: int, overwrite: bool,
                     progress: bool, log: Callable[[str], None], shard: tuple[int, int] | None,
                     finalize: bool) -> Path | None:
    n_samples, seed, params = manifest["n_samples"], manifest["seed"], manifest["parameters"]
    if _prepare_folder(root, manifest, overwrite, log):
        verify_dataset(root, checksums=True)  # every byte, not only the sizes
        log(f"{root}: dataset already complete ({n_samples} samples, checksums verified); "
            f"nothing to do")
        return root / CARD_NAME
    with atomic_path(root / MANIFEST_NAME) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    (root / SAMPLES_DIR).mkdir(exist_ok=True)
    mine = None if shard is None else [i for i in range(n_samples) if i % shard[1] == shard[0]]
    if not finalize:
        removed = remove_stale_temporaries(root, mine)
        if removed:
            log(f"removed {len(removed)} temporary file(s) of an interrupted run")
    todo = _check_existing(root, generator, manifest["dataset_hash"], n_samples)
    if finalize:
        if todo:
            raise DatasetError(
                f"{root}: cannot finalize, {len(todo)} of {n_samples} samples are missing "
                f"(indices {_ranges(todo)}); run the shards that make them (shard I/N makes "
                f"the indices i with i % N == I), or run without --finalize to make them here")
        todo_here: list[int] = []
    else:
        todo_here = todo if mine is None else [i for i in todo if i % shard[1] == shard[0]]
        if len(todo_here) < (n_samples if mine is None else len(mine)):
            done = (n_samples if mine is None else len(mine)) - len(todo_here)
            what = "samples" if mine is None else f"samples of shard {shard[0]}/{shard[1]}"
            log(f"{root}: resuming, {done} of {n_samples if mine is None else len(mine)} "
                f"{what} already done")
    _run(generator, todo_here, seed, params, root, manifest["dataset_hash"], workers, progress)
    if shard is not None:
        left = [i for i in todo if i not in set(todo_here)]
        if left:
            log(f"{root}: shard {shard[0]}/{shard[1]} done; {len(left)} samples of other shards "
                f"are still missing; when every shard is done, run the same command with "
                f"--finalize (instead of --shard) to write the card")
        else:
            log(f"{root}: shard {shard[0]}/{shard[1]} done; every sample is present: run the "
                f"same command with --finalize (instead of --shard) to write the card")
        return None
    card = finalize_dataset(root, manifest)
    for stale in root.glob(".geo_neuralop-shard-*.lock"):  # no shard runs: we hold the folder
        with contextlib.suppress(OSError):
            stale.unlink()
    stats = card["statistics"]
    wall = stats["wall_seconds_per_sample"]
    per_sample = f", {wall['mean']:.2f} s per sample" if wall else ""
    log(f"{root}: {n_samples} samples, {stats['bytes_total'] / 1e6:.1f} MB{per_sample}")
    return root / CARD_NAME


def _ranges(indices: list[int]) -> str:
    """``0-3, 7, 9-10`` (the first 10 runs)."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    text = ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in runs[:10])
    return text + (", ..." if len(runs) > 10 else "")


def _run(generator, todo, seed, params, root, dataset_hash, workers, progress) -> None:
    if not todo:
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc=f"generate {generator}", unit="sample",
               disable=not progress)
    try:
        if workers == 1 or len(todo) == 1:
            with _single_thread():
                for i in todo:
                    try:
                        _, wall, _, _ = generate_sample(generator, i, seed, params, root,
                                                        dataset_hash)
                    except Exception as error:
                        raise RuntimeError(
                            f"sample {i} of {generator!r} failed: {error}; finished samples "
                            f"are kept, run again to resume") from error
                    bar.set_postfix_str(f"{wall:.2f} s/sample", refresh=False)
                    bar.update(1)
            return
        context = _process_context()
        pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=context,
                                   initializer=_worker_init, initargs=(os.getpid(),))
        try:
            with _one_thread_environment():
                futures = {pool.submit(generate_sample, generator, i, seed, params, str(root),
                                       dataset_hash): i for i in todo}
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for future in done:
                        error = future.exception()
                        if error is not None:
                            raise RuntimeError(
                                f"sample {futures[future]} of {generator!r} failed: {error}; "
                                f"finished samples are kept, run again to resume") from error
                        _, wall, _, _ = future.result()
                        bar.set_postfix_str(f"{wall:.2f} s/sample", refresh=False)
                        bar.update(1)
        except BaseException:
            # a failure or Ctrl-C: drop the queued samples instead of waiting for them
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    finally:
        bar.close()


def _summary(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {}
    return {"mean": float(arr.mean()), "min": float(arr.min()), "max": float(arr.max()),
            "total": float(arr.sum())}


def finalize_dataset(root: str | os.PathLike, manifest: dict | None = None) -> dict:
    """Check every sample, fit the normalizer on the training split and write the card.

    Every sample file is read completely (a truncated, unreadable or non-finite sample
    is refused, naming it) before anything is written.

    Raises
    ------
    DatasetError
        A sample is missing or damaged.
    """
    root = Path(root)
    if manifest is None:
        manifest = read_manifest(root)
    generator, n = manifest["generator"], manifest["n_samples"]
    spec = GENERATORS[generator]
    headers = []
    for i in range(n):
        path = sample_path(root, i)
        try:
            read_trajectory(path).validate()
        except ValueError as error:  # DatasetError included
            raise DatasetError(f"{root}: cannot finalize, sample {i} is damaged: "
                               f"{error}") from error
        headers.append(read_header(path))
    train = split_indices({"splits": manifest["splits"], "name": root.name}, "train")

    def train_samples():
        for i in train:
            traj = read_trajectory(sample_path(root, i))
            yield traj.fields, traj.weights

    normalizer = FieldNormalizer.fit(train_samples(), fitted_on="train")
    normalizer.save(root / NORMALIZER_NAME)
    rel = [f"{SAMPLES_DIR}/{h.path.name}" for h in headers]
    rel += [f"{SAMPLES_DIR}/{h.path.with_suffix('.vtu').name}" for h in headers
            if h.path.with_suffix(".vtu").exists()]
    rel.append(NORMALIZER_NAME)
    files = file_entries(root, rel)
    first = read_trajectory(headers[0].path)
    if first.grid is not None:
        geometry = {**first.grid, "manifold": first.manifold, "points": first.num_points}
    else:
        sizes = [h.num_points for h in headers]
        geometry = {"kind": "mesh", "manifold": first.manifold, "points_min": min(sizes),
                    "points_max": max(sizes), "points_mean": float(np.mean(sizes))}
    sample_bytes = [files[f"{SAMPLES_DIR}/{h.path.name}"]["bytes"] for h in headers]
    timings = [read_timing(root, h.index) for h in headers]
    walls = [w if w is not None else h.wall_seconds for (w, _), h in zip(timings, headers,
                                                                           strict=True)]
    cpus = [c if c is not None else h.cpu_seconds for (_, c), h in zip(timings, headers,
                                                                         strict=True)]
    statistics = {
        "frames_per_sample": headers[0].num_frames,
        "wall_seconds_per_sample": _summary([w for w in walls if w is not None]),
        "cpu_seconds_per_sample": _summary([c for c in cpus if c is not None]),
        "samples_timed": sum(w is not None for w in walls),
        "bytes_per_sample": _summary(sample_bytes),
        "bytes_total": int(sum(e["bytes"] for e in files.values())),
    }
    card = make_card(
        name=root.name, generator=generator, seed=manifest["seed"], n_samples=n,
        parameters=manifest["parameters"], splits=manifest["splits"], task=spec.task,
        fields=spec.fields, files=files, description=spec.description, geometry=geometry,
        statistics=statistics, version_info=code_version(),
        normalizer={"file": NORMALIZER_NAME, "fitted_on": "train",
                    "weighting": "quadrature", "fields": {
                        k: {"mean": normalizer.mean[k], "std": normalizer.std[k]}
                        for k in normalizer.names}})
    write_card(root, card)
    with contextlib.suppress(FileNotFoundError):
        (root / MANIFEST_NAME).unlink()
    for h in headers:  # summarized in the card
        with contextlib.suppress(FileNotFoundError):
            timing_path(root, h.index).unlink()
    with contextlib.suppress(OSError):
        (root / TIMINGS_DIR).rmdir()
    return card
