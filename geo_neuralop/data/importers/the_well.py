"""The Well's HDF5 layout: its files read into our datasets, ours written in its layout.

The Well (Ohana et al., NeurIPS 2024 datasets track) stores a dataset as
``NAME/data/{train,valid,test}/*.hdf5`` and ``NAME/stats.yaml``. Each file holds
``n_trajectories`` trajectories on one uniform grid::

    /                        attrs: dataset_name, grid_type ("cartesian", "equiangular",
                                    ...), n_spatial_dims, n_trajectories,
                                    simulation_parameters
    /dimensions              attrs: spatial_dims (e.g. ["x", "y"] or ["theta", "phi"])
        time                 [T] (or [B, T] when sample_varying)
        x, y, ...            [n] node coordinates
    /boundary_conditions/*   attrs: bc_type (WALL | OPEN | PERIODIC), associated_dims;
                             mask [n]
    /scalars                 attrs: field_names; one dataset per scalar
    /t0_fields, /t1_fields, /t2_fields
                             attrs: field_names; datasets [B?, T?, *grid, D^order] with
                             attrs time_varying, sample_varying, dim_varying

Reading (:func:`import_well`): every trajectory becomes one sample, time-varying
tensor fields are split into components named as The Well names them
(``velocity_x``, ``velocity_y``), constant fields become per-point static data and
constant scalars per-sample parameters (the task's conditioning). Cartesian grids give
regular grids (periodic axes from the PERIODIC boundary conditions); spherical grids
(``theta`` colatitude, ``phi`` longitude, radians) give sphere grids whose latitude
rule is recognized from the coordinates. The file's own train/valid/test folders
become the splits. Files are read one trajectory at a time.

Writing (:func:`export_well`): a regular-grid or sphere-grid dataset of ours becomes
``OUT/data/{train,valid,test}/NAME.hdf5`` (every field a ``t0_fields`` scalar,
conditioning values as sample-varying scalars) and ``OUT/stats.yaml`` (mean, std, rms
of the values and of their one-step changes over the training split), which The
Well's own ``WellDataset`` loads.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from geo_neuralop.data.dataset_card import read_card, split_indices
from geo_neuralop.data.importers.dataset_writer import write_dataset
from geo_neuralop.data.importers.grid_axes import grid_arrays, grid_from_axes
from geo_neuralop.data.importers.latlon_grid import (
    LatLonGrid,
    detect_latlon_grid,
    points_latlon,
)
from geo_neuralop.data.storage import (
    DatasetError,
    Trajectory,
    read_header,
    read_trajectory,
    sample_path,
)
from geo_neuralop.utils import atomic_path

__all__ = ["WellFile", "export_well", "import_well", "read_well_file", "well_files"]

#: The Well's split folder names and ours.
SPLIT_NAMES = (("train", "train"), ("valid", "val"), ("test", "test"))
_ORDERS = ("t0_fields", "t1_fields", "t2_fields")
_SPHERE_DIMS = (("theta", "phi"), ("lat", "lon"))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _names(value) -> list[str]:
    """An HDF5 attribute holding one name or a list of names, as a list of str."""
    if isinstance(value, (str, bytes)):
        return [_text(value)]
    return [_text(v) for v in np.asarray(value).reshape(-1)]


@dataclass
class WellField:
    """One field dataset of a Well file (see the module docstring)."""

    group: str
    name: str
    order: int
    time_varying: bool
    sample_varying: bool
    dim_varying: tuple[bool, ...]
    components: list[str] = field(default_factory=list)


@dataclass
class WellFile:
    """What a Well file holds, read from its attributes and shapes (no data loaded).

    Made by :func:`read_well_file`; :meth:`trajectory` reads one trajectory.
    """

    path: Path
    dataset_name: str
    grid_type: str
    spatial_dims: list[str]
    spatial_shape: tuple[int, ...]
    n_trajectories: int
    n_steps: int
    time_sample_varying: bool
    fields: list[WellField]
    constants: list[WellField]
    scalars: dict[str, tuple[bool, bool]]
    pos: np.ndarray
    weights: np.ndarray
    manifold: str
    grid: dict
    sphere: LatLonGrid | None
    simulation_parameters: dict

    @property
    def field_names(self) -> list[str]:
        """Names of every time-varying component, in file order."""
        return [c for f in self.fields for c in f.components]

    def _expected(self, f: WellField) -> tuple[int, ...]:
        shape: list[int] = []
        if f.sample_varying:
            shape.append(self.n_trajectories)
        if f.time_varying:
            shape.append(self.n_steps)
        shape += [n for n, used in zip(self.spatial_shape, f.dim_varying, strict=True) if used]
        shape += [len(self.spatial_dims)] * f.order
        return tuple(shape)

    def _read(self, h5, f: WellField, index: int) -> np.ndarray:
        """``[T?, *grid, D^order]`` values of one trajectory, unused axes broadcast."""
        ds = h5[f.group][f.name]
        values = np.asarray(ds[index] if f.sample_varying else ds[()], dtype=np.float64)
        lead = 1 if f.time_varying else 0
        shape = list(values.shape[:lead])
        axis = lead
        for n, used in zip(self.spatial_shape, f.dim_varying, strict=True):
            if not used:
                values = np.expand_dims(values, axis)
            shape.append(n)
            axis += 1
        shape += list(values.shape[axis:])
        return np.broadcast_to(values, tuple(shape))

    def _points(self, values: np.ndarray, lead: int) -> np.ndarray:
        """``[lead..., *grid, k]`` to ``[lead..., N, k]`` in our point order."""
        k = values.shape[-1]
        grid_axes = tuple(range(lead, lead + len(self.spatial_shape)))
        if self.sphere is not None:
            moved = np.moveaxis(values, -1, lead)  # [lead, k, a, b]
            if self.spatial_dims[0] in ("phi", "lon"):
                moved = np.swapaxes(moved, -1, -2)
            moved = self.sphere.to_canonical(moved)
            return np.moveaxis(moved.reshape(*moved.shape[:-2], -1), lead, -1)
        n = int(np.prod([values.shape[a] for a in grid_axes]))
        return values.reshape(*values.shape[:lead], n, k)

    def trajectory(self, index: int, h5=None) -> Trajectory:
        """Trajectory ``index`` of the file as a :class:`Trajectory` (fields ``[T, N]``)."""
        import h5py

        if not 0 <= index < self.n_trajectories:
            raise IndexError(f"{self.path}: trajectory {index} out of range "
                             f"({self.n_trajectories})")
        if h5 is None:
            with h5py.File(self.path, "r") as opened:
                return self.trajectory(index, opened)
        fields: dict[str, np.ndarray] = {}
        for f in self.fields:
            values = self._read(h5, f, index)
            flat = values.reshape(*values.shape[:1 + len(self.spatial_shape)], -1)
            points = self._points(flat, 1)  # [T, N, k]
            for c, name in enumerate(f.components):
                fields[name] = points[..., c].astype(np.float32)
        static: dict[str, np.ndarray] = {}
        for f in self.constants:
            values = self._read(h5, f, index)
            points = self._points(values.reshape(*values.shape[:len(self.spatial_shape)], -1),
                                  0)
            for c, name in enumerate(f.components):
                static[name] = points[:, c]
        params: dict = dict(self.simulation_parameters)
        series: dict[str, np.ndarray] = {}
        for name, (time_varying, sample_varying) in self.scalars.items():
            ds = h5["scalars"][name]
            value = np.asarray(ds[index] if sample_varying else ds[()], dtype=np.float64)
            if time_varying:
                series[name] = value.reshape(-1)
            else:
                params[name] = float(value.reshape(-1)[0])
        t = h5["dimensions"]["time"]
        times = np.asarray(t[index] if self.time_sample_varying else t[()], dtype=np.float64)
        params.update({"source_file": self.path.name, "trajectory": int(index),
                       "dataset_name": self.dataset_name})
        return Trajectory(pos=self.pos, weights=self.weights, manifold=self.manifold,
                          times=times, fields=fields, grid=self.grid, static=static,
                          series=series, params=params)


def _attr(obj, key: str, where: str, default=None):
    if key in obj.attrs:
        return obj.attrs[key]
    if default is not None:
        return default
    raise DatasetError(f"{where}lacks the attribute {key!r} of The Well's layout")


def _geometry(h5, dims: list[str], grid_type: str, where: str):
    coords = []
    for d in dims:
        if d not in h5["dimensions"]:
            raise DatasetError(f"{where}lacks the coordinate dataset 'dimensions/{d}' named in "
                               f"spatial_dims {dims}")
        ds = h5["dimensions"][d]
        if bool(ds.attrs.get("sample_varying", False)) or bool(ds.attrs.get("time_varying",
                                                                            False)):
            raise DatasetError(f"{where}coordinate 'dimensions/{d}' varies between "
                               f"trajectories or in time; only fixed grids are supported")
        coords.append(np.asarray(ds[()], dtype=np.float64).reshape(-1))
    if grid_type == "cartesian":
        periodic = [False] * len(dims)
        if "boundary_conditions" in h5:
            for bc in h5["boundary_conditions"].values():
                if _text(bc.attrs.get("bc_type", "")).upper() == "PERIODIC":
                    for d in _names(bc.attrs.get("associated_dims", [])):
                        if d in dims:
                            periodic[dims.index(d)] = True
        spec = grid_from_axes(coords, dims, periodic, where)
        pos, weights, grid = grid_arrays(spec)
        return pos, weights, grid, "euclidean", None
    names = tuple(dims)
    if len(dims) != 2 or not any(set(names) == set(pair) for pair in _SPHERE_DIMS):
        raise DatasetError(f"{where}grid_type {grid_type!r} with spatial_dims {dims}: a "
                           f"spherical grid needs the dimensions ('theta', 'phi') (colatitude "
                           f"and longitude in radians) or ('lat', 'lon') (degrees)")
    first_is_lon = names[0] in ("phi", "lon")
    colat, lon = (coords[1], coords[0]) if first_is_lon else (coords[0], coords[1])
    if "theta" in names:
        lat_deg, lon_deg = 90.0 - np.degrees(colat), np.degrees(lon)
    else:
        lat_deg, lon_deg = colat, lon
    sphere = detect_latlon_grid(lat_deg, lon_deg, names[1] if first_is_lon else names[0],
                                names[0] if first_is_lon else names[1], where)
    pos = sphere.unit_vectors().reshape(-1, 3)
    weights = sphere.weights().reshape(-1)
    grid = {"kind": "sphere", "shape": list(sphere.shape), "grid": sphere.sphere_grid,
            "rule": sphere.rule} if sphere.sphere_grid is not None else None
    return pos, weights, grid, "sphere", sphere


def read_well_file(path: str | os.PathLike) -> WellFile:
    """Read and check the layout of a Well HDF5 file (attributes and shapes only).

    Raises
    ------
    DatasetError
        Missing file, not HDF5, or a missing group, attribute or coordinate, or a field
        whose shape differs from the one the attributes imply; each message names the
        file, the dataset and the expected shape.
    """
    import h5py

    path = Path(path)
    where = f"{path}: "
    if not path.is_file():
        raise DatasetError(f"no Well file at {path}")
    try:
        h5 = h5py.File(path, "r")
    except OSError as error:
        raise DatasetError(f"{path} is not a readable HDF5 file: {error}") from error
    with h5:
        for group in ("dimensions", "scalars", *_ORDERS):
            if group not in h5:
                raise DatasetError(f"{where}lacks the group {group!r} of The Well's layout")
        dims = _names(_attr(h5["dimensions"], "spatial_dims", where + "dimensions "))
        grid_type = _text(_attr(h5, "grid_type", where, "cartesian")).lower()
        n_traj = int(_attr(h5, "n_trajectories", where))
        if "time" not in h5["dimensions"]:
            raise DatasetError(f"{where}lacks the dataset 'dimensions/time'")
        time = h5["dimensions"]["time"]
        time_sv = bool(time.attrs.get("sample_varying", False))
        n_steps = int(time.shape[-1])
        if time_sv and time.shape != (n_traj, n_steps):
            raise DatasetError(f"{where}'dimensions/time' has shape {time.shape}, expected "
                               f"({n_traj}, T) for a sample-varying time")
        pos, weights, grid, manifold, sphere = _geometry(h5, dims, grid_type, where)
        spatial = tuple(int(h5["dimensions"][d].shape[-1]) for d in dims)
        fields, constants = [], []
        for order, group in enumerate(_ORDERS):
            for name in _names(h5[group].attrs.get("field_names", [])):
                if name not in h5[group]:
                    raise DatasetError(f"{where}field_names of {group!r} lists {name!r}, "
                                       f"which is not in the group")
                ds = h5[group][name]
                dim_varying = ds.attrs.get("dim_varying", [True] * len(dims))
                dim_varying = tuple(bool(v) for v in np.asarray(dim_varying).reshape(-1))
                if len(dim_varying) != len(dims):
                    raise DatasetError(f"{where}{group}/{name} has dim_varying {dim_varying} "
                                       f"for {len(dims)} spatial dimensions")
                suffixes = ["".join(p) for p in itertools.product(dims, repeat=order)]
                entry = WellField(group, name, order,
                                  bool(ds.attrs.get("time_varying", True)),
                                  bool(ds.attrs.get("sample_varying", True)), dim_varying,
                                  [f"{name}_{s}" if s else name for s in suffixes])
                (fields if entry.time_varying else constants).append(entry)
        scalars = {}
        for name in _names(h5["scalars"].attrs.get("field_names", [])):
            if name not in h5["scalars"]:
                raise DatasetError(f"{where}scalars/field_names lists {name!r}, which is not "
                                   f"in the group")
            ds = h5["scalars"][name]
            scalars[name] = (bool(ds.attrs.get("time_varying", False)),
                             bool(ds.attrs.get("sample_varying", False)))
        parameters = {}
        for name in _names(h5.attrs.get("simulation_parameters", [])):
            value = h5.attrs.get(name)
            if value is not None and np.asarray(value).size == 1:
                try:
                    parameters[name] = float(np.asarray(value).reshape(-1)[0])
                except (TypeError, ValueError):
                    parameters[name] = _text(np.asarray(value).reshape(-1)[0])
        meta = WellFile(path, _text(h5.attrs.get("dataset_name", path.stem)), grid_type, dims,
                        spatial, n_traj, n_steps, time_sv, fields, constants, scalars, pos,
                        weights, manifold, grid, sphere, parameters)
        for f in fields + constants:
            shape = h5[f.group][f.name].shape
            if shape != meta._expected(f):
                raise DatasetError(
                    f"{where}dataset '{f.group}/{f.name}' has shape {shape}, expected "
                    f"{meta._expected(f)} (trajectories {n_traj} if sample_varying, time "
                    f"{n_steps} if time_varying, grid {spatial}, then {len(dims)} per tensor "
                    f"order {f.order})")
        if not fields:
            raise DatasetError(f"{where}holds no time-varying field (t0/t1/t2_fields)")
    return meta


def well_files(path: str | os.PathLike) -> dict[str, list[Path]]:
    """The Well files of a path, by our split name.

    ``path`` may be one ``.hdf5``/``.h5`` file (all ``train``), a folder of them, or a
    Well dataset folder with ``data/{train,valid,test}/``.
    """
    path = Path(path)
    if path.is_file():
        return {"train": [path]}
    if not path.is_dir():
        raise DatasetError(f"no Well file or folder at {path}")

    def files(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.suffix in (".h5", ".hdf5"))

    data = path / "data" if (path / "data").is_dir() else path
    if any((data / theirs).is_dir() for theirs, _ in SPLIT_NAMES):
        out = {ours: files(data / theirs) for theirs, ours in SPLIT_NAMES
               if (data / theirs).is_dir()}
    else:
        out = {"train": files(path)}
    if not any(out.values()):
        raise DatasetError(f"{path} holds no .hdf5/.h5 file (nor data/train, data/valid, "
                           f"data/test folders with some)")
    return out


def _iterate(entries: Sequence[tuple[WellFile, int]]) -> Iterator[Trajectory]:
    import h5py

    by_file: dict[Path, list[tuple[WellFile, int]]] = {}
    for meta, index in entries:
        by_file.setdefault(meta.path, []).append((meta, index))
    for path, items in by_file.items():
        with h5py.File(path, "r") as h5:
            for meta, index in items:
                yield meta.trajectory(index, h5)


def import_well(path: str | os.PathLike, out: str | os.PathLike,
                split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                overwrite: bool = False, log=None) -> Path:
    """Write The Well files of ``path`` (see :func:`well_files`) as a dataset folder.

    Every trajectory becomes a sample (see the module docstring). With the Well's own
    split folders the splits follow them; otherwise ``split_fractions``.

    Raises
    ------
    DatasetError
        Files of different grids or fields, and every layout problem of
        :func:`read_well_file`.
    """
    groups = well_files(path)
    entries: list[tuple[WellFile, int]] = []
    splits: dict[str, list[int]] | None = {}
    first: WellFile | None = None
    for ours in ("train", "val", "test"):
        lo = len(entries)
        for file in groups.get(ours, []):
            meta = read_well_file(file)
            if first is None:
                first = meta
            elif (meta.spatial_shape, meta.field_names, meta.grid_type) != (
                    first.spatial_shape, first.field_names, first.grid_type):
                raise DatasetError(
                    f"{file} holds {meta.field_names} on a {meta.spatial_shape} "
                    f"{meta.grid_type} grid, but {first.path} holds {first.field_names} on "
                    f"{first.spatial_shape} {first.grid_type}; import them separately")
            entries += [(meta, i) for i in range(meta.n_trajectories)]
        splits[ours] = [lo, len(entries)]  # type: ignore[index]
    assert first is not None  # well_files found at least one file
    if set(groups) == {"train"}:
        splits = None
    names = first.field_names
    constant_scalars = [n for n, (tv, _) in first.scalars.items() if not tv]
    task = {"kind": "rollout", "inputs": names, "targets": names}
    if constant_scalars:
        task["conditioning"] = constant_scalars
    fields = {n: {"units": "", "description": f"{first.dataset_name}: {n}"} for n in names}
    parameters = {"source": str(Path(path).resolve()), "format": "the_well",
                  "dataset_name": first.dataset_name, "grid_type": first.grid_type,
                  "spatial_dims": first.spatial_dims, "files": len({m.path for m, _ in entries}),
                  "trajectories": len(entries)}
    description = (f"The Well's {first.dataset_name!r}: {', '.join(names)} on a "
                   f"{' x '.join(map(str, first.spatial_shape))} {first.grid_type} grid")
    return write_dataset(out, _iterate(entries), len(entries), source="the_well",
                         description=description, task=task, fields=fields,
                         parameters=parameters, split_fractions=split_fractions,
                         splits=splits, overwrite=overwrite, log=log)


# --- writing ---------------------------------------------------------------------------
def _write_split(path: Path, root: Path, indices: list[int], names: list[str], card: dict,
                 dataset_name: str) -> None:
    import h5py

    headers = [read_header(sample_path(root, i)) for i in indices]
    frames = {h.num_frames for h in headers}
    if len(frames) != 1:
        raise DatasetError(f"The Well stores trajectories of one length per file; the samples "
                           f"of {root} have {sorted(frames)} frames")
    first = read_trajectory(sample_path(root, indices[0]), names)
    geometry = card.get("geometry", {})
    conditioning = list(card["task"].get("conditioning", []))
    n_frames, b = frames.pop(), len(indices)
    if first.grid is not None and first.grid.get("kind") == "regular":
        shape = tuple(int(n) for n in first.grid["shape"])
        dims = ["x", "y", "z"][:len(shape)]
        axes = [np.linspace(lo, hi, n, endpoint=not per) for (lo, hi), n, per in
                zip(first.grid["domain"], shape, first.grid["periodic"], strict=True)]
        bcs = {f"{d}_{'periodic' if per else 'wall'}": (d, "PERIODIC" if per else "WALL")
               for d, per in zip(dims, first.grid["periodic"], strict=True)}
        grid_type = "cartesian"
    elif first.manifold == "sphere" and geometry.get("kind") == "sphere":
        lat, lon = points_latlon(first.pos, tuple(first.grid["shape"]))
        shape = (len(lat), len(lon))
        dims = ["theta", "phi"]
        axes = [np.radians(90.0 - lat), np.radians(lon)]
        bcs = {"theta_open": ("theta", "OPEN"), "phi_periodic": ("phi", "PERIODIC")}
        grid_type = "equiangular" if first.grid.get("grid") == "equiangular" else "spherical"
    else:
        raise DatasetError(f"The Well stores uniform grids; dataset {card.get('name')!r} is "
                           f"on {geometry.get('kind', 'unknown')} geometry (meshes cannot be "
                           f"exported)")
    same_times = all(np.array_equal(read_trajectory(sample_path(root, i), names[:1]).times,
                                    first.times) for i in indices[1:])
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["dataset_name"] = dataset_name
        h5.attrs["grid_type"] = grid_type
        h5.attrs["n_spatial_dims"] = len(dims)
        h5.attrs["n_trajectories"] = b
        h5.attrs["simulation_parameters"] = conditioning
        g = h5.create_group("dimensions")
        g.attrs["spatial_dims"] = dims
        time = g.create_dataset("time", data=np.stack(
            [read_trajectory(sample_path(root, i), names[:1]).times for i in indices])
            if not same_times else first.times, dtype="f4")
        time.attrs["sample_varying"] = not same_times
        time.attrs["time_varying"] = True
        for d, values in zip(dims, axes, strict=True):
            ds = g.create_dataset(d, data=values, dtype="f4")
            ds.attrs["sample_varying"] = False
            ds.attrs["time_varying"] = False
        bc_group = h5.create_group("boundary_conditions")
        for key, (d, kind) in bcs.items():
            bc = bc_group.create_group(key)
            bc.attrs["associated_dims"] = [d]
            bc.attrs["associated_fields"] = []
            bc.attrs["bc_type"] = kind
            bc.attrs["sample_varying"] = False
            bc.attrs["time_varying"] = False
            mask = np.zeros(shape[dims.index(d)], dtype=bool)
            mask[[0, -1]] = True
            bc.create_dataset("mask", data=mask)
        scalars = h5.create_group("scalars")
        scalars.attrs["field_names"] = conditioning
        values = {name: np.zeros(b) for name in conditioning}
        t0 = h5.create_group("t0_fields")
        t0.attrs["field_names"] = names
        for group in ("t1_fields", "t2_fields"):
            h5.create_group(group).attrs["field_names"] = []
        datasets = {}
        for name in names:
            ds = t0.create_dataset(name, shape=(b, n_frames, *shape), dtype="f4",
                                   chunks=(1, 1, *shape))
            ds.attrs["time_varying"] = True
            ds.attrs["sample_varying"] = True
            ds.attrs["dim_varying"] = [True] * len(dims)
            datasets[name] = ds
        for k, i in enumerate(indices):
            traj = read_trajectory(sample_path(root, i), names)
            for name in names:  # our point order is the Well's: theta and phi increasing
                datasets[name][k] = traj.fields[name].reshape(n_frames, *shape)
            for name in conditioning:
                values[name][k] = float(traj.params[name])
        for name in conditioning:
            ds = scalars.create_dataset(name, data=values[name], dtype="f4")
            ds.attrs["time_varying"] = False
            ds.attrs["sample_varying"] = True


def _stats(root: Path, indices: list[int], names: list[str]) -> dict:
    """The Well's stats.yaml over the given samples: mean, std, rms of values and steps."""
    sums = {key: {n: np.zeros(3) for n in names} for key in ("value", "delta")}
    for i in indices:
        traj = read_trajectory(sample_path(root, i), names)
        for n in names:
            x = traj.fields[n].astype(np.float64)
            for key, data in (("value", x), ("delta", np.diff(x, axis=0))):
                sums[key][n] += [data.size, data.sum(), (data**2).sum()]
    out: dict[str, dict[str, float]] = {}
    for key, suffix in (("value", ""), ("delta", "_delta")):
        for n in names:
            count, total, squares = sums[key][n]
            count = max(count, 1.0)
            mean = total / count
            out.setdefault(f"mean{suffix}", {})[n] = float(mean)
            out.setdefault(f"std{suffix}", {})[n] = float(np.sqrt(max(squares / count - mean**2,
                                                                      0.0)))
            out.setdefault(f"rms{suffix}", {})[n] = float(np.sqrt(squares / count))
    return out


def export_well(dataset: str | os.PathLike, out: str | os.PathLike, name: str | None = None,
                overwrite: bool = False) -> Path:
    """Write a regular-grid or sphere-grid dataset of ours in The Well's layout.

    Parameters
    ----------
    dataset : path
        A dataset folder (``card.yaml``).
    out : path
        Folder to write: ``data/{train,valid,test}/NAME.hdf5`` (non-empty splits) and
        ``stats.yaml``. Absent or empty unless ``overwrite``.
    name : str, optional
        ``dataset_name`` and file stem (default: the dataset's name).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    DatasetError
        A mesh dataset, samples of different lengths, or an ``out`` that holds files.
    """
    root = Path(dataset)
    card = read_card(root)
    name = name or str(card.get("name") or root.name)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DatasetError(f"{out} is not empty; choose another folder or pass overwrite")
    names = list(dict.fromkeys([*card["task"]["inputs"], *card["task"]["targets"]]))
    written = []
    for theirs, ours in SPLIT_NAMES:
        lo, hi = card["splits"].get(ours, [0, 0])
        if hi <= lo:
            continue
        path = out / "data" / theirs / f"{name}.hdf5"
        _write_split(path, root, list(range(lo, hi)), names, card, name)
        written.append(path)
    stats = _stats(root, split_indices(card, "train"), names)
    with atomic_path(out / "stats.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(stats, sort_keys=True))
    return out
