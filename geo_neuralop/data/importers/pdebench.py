"""PDEBench HDF5 files (Takamoto et al., NeurIPS 2022 datasets track) read into our datasets.

The three 2D layouts PDEBench's own code writes (``pdebench/data_gen``) and reads
(``pdebench/models/fno/utils.py``):

``darcy``  (``2D_DarcyFlow_beta*.hdf5``): ``nu [B, X, Y]`` (diffusion coefficient, the
           input), ``tensor [B, 1, X, Y]`` (the solution ``u``, the target),
           ``x-coordinate [X]``, ``y-coordinate [Y]``. One static sample per ``B``.
``ns``     (``ns_incom_inhom_2d_*.h5``, 2D incompressible Navier-Stokes):
           ``velocity [B, T, X, Y, 2]``, ``particles [B, T, X, Y, 1]`` (a passive tracer),
           ``force [B, X, Y, 2]``, ``t [B, T]``; attribute ``config`` (YAML: ``domain_size``,
           ``grid_size``) and ``latestIndex`` (last frame written). No coordinates: the
           cells of a ``domain_size`` box, closed by walls. Fields ``velocity_x``,
           ``velocity_y``, ``particles``; the force is kept as per-point static data.
``swe``    (``2D_rdb_NA_NA.h5``, radial dam break): one group per seed (``"0000"``, ...)
           with ``data [T, X, Y, 1]`` (water height ``h``), ``grid/x [X]``, ``grid/y [Y]``,
           ``grid/t [T]``.

Stored coordinates are cell centres; they become the nodes of a regular grid (see
:mod:`~geo_neuralop.data.importers.grid_axes`). Samples are read one at a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from geo_neuralop.data.importers.dataset_writer import write_dataset
from geo_neuralop.data.importers.grid_axes import grid_arrays, grid_from_axes
from geo_neuralop.data.storage import DatasetError, Trajectory

__all__ = ["PDEBENCH_LAYOUTS", "PDEBenchFile", "detect_pdebench_layout", "import_pdebench",
           "read_pdebench_file"]

PDEBENCH_LAYOUTS = ("darcy", "ns", "swe")


def _shape_error(path: Path, name: str, shape, expected: str) -> DatasetError:
    return DatasetError(f"{path}: dataset {name!r} has shape {tuple(shape)}, expected "
                        f"{expected}")


@dataclass
class PDEBenchFile:
    """A checked PDEBench file: its layout, sample count and grid (no data loaded).

    Made by :func:`read_pdebench_file`; :meth:`samples` reads the samples one at a time.
    """

    path: Path
    layout: str
    count: int
    n_frames: int
    pos: np.ndarray
    weights: np.ndarray
    grid: dict
    keys: list[str]
    domain_size: tuple[float, float] | None = None

    @property
    def task(self) -> dict:
        if self.layout == "darcy":
            return {"kind": "static", "inputs": ["nu"], "targets": ["u"]}
        names = ["velocity_x", "velocity_y", "particles"] if self.layout == "ns" else ["h"]
        return {"kind": "rollout", "inputs": names, "targets": names}

    @property
    def fields(self) -> dict:
        return {
            "darcy": {"nu": {"units": "", "description": "diffusion coefficient (input)"},
                      "u": {"units": "", "description": "solution of -div(nu grad u) = beta "
                                                        "(target)"}},
            "ns": {"velocity_x": {"units": "", "description": "velocity, x component"},
                   "velocity_y": {"units": "", "description": "velocity, y component"},
                   "particles": {"units": "", "description": "passive tracer density"}},
            "swe": {"h": {"units": "", "description": "water height"}},
        }[self.layout]

    def samples(self) -> Iterator[Trajectory]:
        """Every sample of the file as a :class:`Trajectory`, one at a time."""
        import h5py

        with h5py.File(self.path, "r") as f:
            for i in range(self.count):
                yield self._sample(f, i)

    def _trajectory(self, times, fields, params, static=None) -> Trajectory:
        n = self.pos.shape[0]
        return Trajectory(pos=self.pos, weights=self.weights, manifold="euclidean",
                          times=np.asarray(times, dtype=np.float64),
                          fields={k: np.asarray(v, dtype=np.float32).reshape(len(times), n)
                                  for k, v in fields.items()},
                          grid=self.grid, static=static or {}, params=params)

    def _sample(self, f, i: int) -> Trajectory:
        params = {"source_file": self.path.name, "index": int(i)}
        if self.layout == "darcy":
            return self._trajectory([0.0], {"nu": f["nu"][i][None], "u": f["tensor"][i]},
                                    params)
        if self.layout == "ns":
            t = self.n_frames
            velocity = f["velocity"][i, :t]
            times = f["t"][i, :t] if "t" in f else np.arange(t, dtype=np.float64)
            force = np.asarray(f["force"][i], dtype=np.float64).reshape(-1, 2)
            return self._trajectory(
                times, {"velocity_x": velocity[..., 0], "velocity_y": velocity[..., 1],
                        "particles": f["particles"][i, :t, ..., 0]}, params,
                {"force_x": force[:, 0], "force_y": force[:, 1]})
        key = self.keys[i]
        group = f[key]
        params["seed"] = key
        data = group["data"][()]
        return self._trajectory(group["grid/t"][()], {"h": data[..., 0]}, params)


def detect_pdebench_layout(path: str | os.PathLike) -> str:
    """Which of :data:`PDEBENCH_LAYOUTS` a file follows, from the names it holds."""
    import h5py

    path = Path(path)
    with _open(path) as f:
        keys = set(f.keys())
        if {"nu", "tensor"} <= keys:
            return "darcy"
        if {"velocity", "particles"} <= keys:
            return "ns"
        groups = [k for k in keys if isinstance(f[k], h5py.Group)]
        if groups and all("data" in f[k] for k in groups):
            return "swe"
    raise DatasetError(f"{path} follows none of the PDEBench 2D layouts {PDEBENCH_LAYOUTS}: "
                       f"it holds {sorted(keys)[:8]} (expected 'nu' and 'tensor' for Darcy, "
                       f"'velocity' and 'particles' for incompressible NS, or seed groups with "
                       f"'data' for shallow water)")


def _open(path: Path):
    import h5py

    if not path.is_file():
        raise DatasetError(f"no PDEBench file at {path}")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise DatasetError(f"{path} is not a readable HDF5 file: {error}") from error


def _centres(n: int, length: float) -> np.ndarray:
    return (np.arange(n) + 0.5) * length / n


def read_pdebench_file(path: str | os.PathLike, layout: str | None = None) -> PDEBenchFile:
    """Check a PDEBench file's layout and shapes and describe its grid.

    Parameters
    ----------
    path : path
    layout : {"darcy", "ns", "swe"}, optional
        Default: detected from the names in the file.

    Raises
    ------
    DatasetError
        Missing datasets or shapes that disagree, naming the file, the dataset and the
        expected shape.
    """
    path = Path(path)
    layout = layout or detect_pdebench_layout(path)
    if layout not in PDEBENCH_LAYOUTS:
        raise ValueError(f"layout must be one of {PDEBENCH_LAYOUTS}, got {layout!r}")
    with _open(path) as f:
        def need(name: str):
            if name not in f:
                raise DatasetError(f"{path}: missing dataset {name!r} of the PDEBench {layout} "
                                   f"layout; the file holds {sorted(f.keys())[:8]}")
            return f[name]

        if layout == "darcy":
            nu, u = need("nu"), need("tensor")
            x = np.asarray(need("x-coordinate")[()], dtype=np.float64)
            y = np.asarray(need("y-coordinate")[()], dtype=np.float64)
            b = nu.shape[0]
            if nu.shape != (b, len(x), len(y)):
                raise _shape_error(path, "nu", nu.shape, f"[B, X, Y] = [{b}, {len(x)}, "
                                   f"{len(y)}] (X, Y from x-coordinate, y-coordinate)")
            if u.shape != (b, 1, len(x), len(y)):
                raise _shape_error(path, "tensor", u.shape, f"[B, 1, X, Y] = [{b}, 1, "
                                   f"{len(x)}, {len(y)}]")
            spec = grid_from_axes([x, y], ["x-coordinate", "y-coordinate"], [False, False],
                                  f"{path}: ")
            pos, weights, grid = grid_arrays(spec)
            return PDEBenchFile(path, layout, b, 1, pos, weights, grid, [])
        if layout == "ns":
            velocity, particles = need("velocity"), need("particles")
            if velocity.ndim != 5 or velocity.shape[-1] != 2:
                raise _shape_error(path, "velocity", velocity.shape, "[B, T, X, Y, 2]")
            b, t, nx, ny, _ = velocity.shape
            if particles.shape != (b, t, nx, ny, 1):
                raise _shape_error(path, "particles", particles.shape,
                                   f"[B, T, X, Y, 1] = [{b}, {t}, {nx}, {ny}, 1]")
            force = need("force")
            if force.shape != (b, nx, ny, 2):
                raise _shape_error(path, "force", force.shape, f"[B, X, Y, 2] = [{b}, {nx}, "
                                   f"{ny}, 2]")
            if "t" in f and f["t"].shape != (b, t):
                raise _shape_error(path, "t", f["t"].shape, f"[B, T] = [{b}, {t}]")
            latest = int(f.attrs.get("latestIndex", t - 1))
            frames = t if latest < 0 else min(t, latest + 1)
            size = (1.0, 1.0)
            config = f.attrs.get("config")
            if config is not None:
                try:
                    parsed = yaml.safe_load(config if isinstance(config, str) else
                                            config.decode())
                    if isinstance(parsed, dict) and parsed.get("domain_size"):
                        size = tuple(float(v) for v in parsed["domain_size"])
                except (yaml.YAMLError, TypeError, ValueError) as error:
                    raise DatasetError(f"{path}: attribute 'config' is not the YAML PDEBench "
                                       f"writes: {error}") from error
            spec = grid_from_axes([_centres(nx, size[0]), _centres(ny, size[1])], ["x", "y"],
                                  [False, False], f"{path}: ")
            pos, weights, grid = grid_arrays(spec)
            return PDEBenchFile(path, layout, b, frames, pos, weights, grid, [], size)
        keys = sorted(k for k in f.keys())
        if not keys:
            raise DatasetError(f"{path}: holds no seed group of the PDEBench swe layout")
        first = f[keys[0]]
        for name in ("data", "grid/x", "grid/y", "grid/t"):
            if name not in first:
                raise DatasetError(f"{path}: group {keys[0]!r} lacks {name!r} of the PDEBench "
                                   f"swe layout (data [T, X, Y, 1], grid/x, grid/y, grid/t)")
        x = np.asarray(first["grid/x"][()], dtype=np.float64)
        y = np.asarray(first["grid/y"][()], dtype=np.float64)
        t = first["grid/t"].shape[0]
        for key in keys:
            shape = f[key]["data"].shape if "data" in f[key] else None
            if shape != (t, len(x), len(y), 1):
                raise _shape_error(path, f"{key}/data", shape, f"[T, X, Y, 1] = [{t}, "
                                   f"{len(x)}, {len(y)}, 1] (from {keys[0]}/grid)")
        spec = grid_from_axes([x, y], ["grid/x", "grid/y"], [False, False], f"{path}: ")
        pos, weights, grid = grid_arrays(spec)
        return PDEBenchFile(path, layout, len(keys), t, pos, weights, grid, keys)


def import_pdebench(path: str | os.PathLike, out: str | os.PathLike, layout: str | None = None,
                    max_samples: int | None = None,
                    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                    overwrite: bool = False, log: Callable[[str], None] | None = None) -> Path:
    """Write a PDEBench file as a dataset folder (see the module docstring).

    Parameters
    ----------
    path : path
        The PDEBench HDF5 file.
    out : path
        Dataset folder.
    layout : {"darcy", "ns", "swe"}, optional
        Default: detected.
    max_samples : int, optional
        Import only the first samples.

    Returns
    -------
    Path
        The dataset card.
    """
    meta = read_pdebench_file(path, layout)
    count = meta.count if max_samples is None else min(meta.count, int(max_samples))
    if count < 1:
        raise ValueError(f"max_samples must be positive, got {max_samples!r}")

    def samples() -> Iterator[Trajectory]:
        for k, traj in enumerate(meta.samples()):
            if k >= count:
                return
            yield traj

    parameters = {"source": str(Path(path).resolve()), "format": "pdebench",
                  "layout": meta.layout, "samples_in_file": meta.count}
    description = (f"PDEBench {meta.layout} ({Path(path).name}): "
                   f"{', '.join(meta.fields)} on a {' x '.join(map(str, meta.grid['shape']))} "
                   f"grid")
    return write_dataset(out, samples(), count, source="pdebench", description=description,
                         task=meta.task, fields=meta.fields, parameters=parameters,
                         split_fractions=split_fractions, overwrite=overwrite, log=log)
