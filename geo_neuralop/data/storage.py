"""Dataset files: one HDF5 file per trajectory (sample), written atomically.

A dataset folder holds ``card.yaml`` (written last: marks completion),
``generation.json``, ``normalizer.json`` and ``samples/sample_NNNNNN.h5`` (plus a
``.vtu`` per mesh sample). Each sample file stores the geometry (positions,
quadrature weights, faces, grid description), the frame times and one float32
``[F, N]`` dataset per field; the full schema is in ``docs/formats/dataset_files.md``.
A sample file depends only on the generator, its parameters, the seed and the index
(no time stamps), so shards made on different machines give the same bytes; the
generation time of each sample goes to ``timings/sample_NNNNNN.json`` until the card
summarizes it. A truncated or corrupted file raises :class:`DatasetError` naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.utils import atomic_path

SAMPLE_FORMAT = "geo_neuralop.sample"
SAMPLE_VERSION = 1
SAMPLES_DIR = "samples"
CARD_NAME = "card.yaml"
MANIFEST_NAME = "generation.json"
NORMALIZER_NAME = "normalizer.json"
TIMINGS_DIR = "timings"
_SAMPLE_RE = re.compile(r"^sample_(\d{6,})\.h5$")
_VTU_RE = re.compile(r"^sample_(\d{6,})\.vtu$")
_TIMING_RE = re.compile(r"^sample_(\d{6,})\.json$")
_TEMP_RE = re.compile(r"^\.sample_(\d{6,})\..*\.tmp\.(h5|vtu|json)$")


class DatasetError(ValueError):
    """A dataset file or folder is missing, truncated, corrupted or inconsistent."""


@dataclass
class Trajectory:
    """One sample in memory: geometry, frames of per-point fields, extras.

    Attributes
    ----------
    pos : np.ndarray, shape [N, d]
    weights : np.ndarray, shape [N]
        Quadrature weights.
    manifold : {"euclidean", "sphere"}
    times : np.ndarray, shape [F]
    fields : dict of str to np.ndarray, each [F, N]
        Scalar channels (float32 on disk).
    faces : np.ndarray [T, 3], optional
    grid : dict, optional
        Grid description (see the module docstring), None for meshes.
    static : dict of str to np.ndarray
        Per-point time-independent data, ``[N]`` or ``[N, k]``.
    series : dict of str to np.ndarray
        Other 1D series.
    params : dict
        This sample's parameters (plain JSON values).
    units, descriptions : dict of str to str
        Per field.
    """

    pos: np.ndarray
    weights: np.ndarray
    manifold: str
    times: np.ndarray
    fields: dict[str, np.ndarray]
    faces: np.ndarray | None = None
    grid: dict | None = None
    static: dict[str, np.ndarray] = field(default_factory=dict)
    series: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)

    @property
    def num_points(self) -> int:
        return int(self.pos.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.times.shape[0])

    def validate(self) -> Trajectory:
        """Check shapes and finiteness; raises ValueError naming the offending field."""
        n, f = self.num_points, self.num_frames
        if self.pos.ndim != 2:
            raise ValueError(f"pos must be [N, d], got shape {self.pos.shape}")
        if self.weights.shape != (n,):
            raise ValueError(f"weights must have shape ({n},), got {self.weights.shape}")
        if self.times.ndim != 1:
            raise ValueError(f"times must be [F], got shape {self.times.shape}")
        if not self.fields:
            raise ValueError("a trajectory needs at least one field")
        for name, value in self.fields.items():
            if value.shape != (f, n):
                raise ValueError(f"field {name!r} has shape {value.shape}, expected ({f}, {n})")
            if not np.isfinite(value).all():
                frame = int(np.argmax(~np.isfinite(value).all(axis=1)))
                raise ValueError(f"field {name!r} is not finite at frame {frame}")
        for name, value in self.static.items():
            if value.shape[0] != n:
                raise ValueError(f"static {name!r} has {value.shape[0]} rows, expected {n}")
        return self

    def cloud(self, dtype: torch.dtype | None = None) -> PointCloud:
        """The geometry as a :class:`PointCloud` (fields not attached), with grid metadata."""
        return cloud_from_arrays(self.pos, self.weights, self.manifold, self.faces, self.grid,
                                 dtype)


def cloud_from_arrays(pos, weights, manifold, faces=None, grid=None, dtype=None) -> PointCloud:
    """A :class:`PointCloud` from stored geometry arrays and the grid description."""
    dtype = dtype or torch.get_default_dtype()
    extra: dict = {}
    allow_duplicates = False
    if grid is not None:
        extra["grid_shape"] = tuple(int(v) for v in grid["shape"])
        if grid.get("kind") == "regular":
            extra["domain"] = tuple(tuple(float(v) for v in d) for d in grid["domain"])
            extra["periodic"] = tuple(bool(v) for v in grid["periodic"])
        elif grid.get("kind") == "sphere":
            extra["grid"] = str(grid["grid"])
            allow_duplicates = grid["grid"] == "equiangular"
    return PointCloud(
        torch.as_tensor(np.asarray(pos), dtype=dtype),
        torch.as_tensor(np.asarray(weights), dtype=dtype),
        manifold=manifold,
        faces=None if faces is None else torch.as_tensor(np.asarray(faces), dtype=torch.long),
        allow_duplicates=allow_duplicates,
        **extra,
    )


def grid_description(cloud: PointCloud) -> dict | None:
    """The JSON grid description of a cloud made by ``regular_grid`` or ``sphere_grid``."""
    shape = getattr(cloud, "grid_shape", None)
    if shape is None:
        return None
    if cloud.manifold == "sphere":
        return {"kind": "sphere", "shape": [int(v) for v in shape], "grid": str(cloud.grid)}
    return {"kind": "regular", "shape": [int(v) for v in shape],
            "domain": [[float(lo), float(hi)] for lo, hi in cloud.domain],
            "periodic": [bool(p) for p in cloud.periodic]}


def sample_name(index: int) -> str:
    """File name of sample ``index``: ``sample_000042.h5``."""
    return f"sample_{index:06d}.h5"


def sample_path(root: str | os.PathLike, index: int) -> Path:
    return Path(root) / SAMPLES_DIR / sample_name(index)


def sample_indices(root: str | os.PathLike) -> list[int]:
    """Indices of the finished sample files present in a dataset folder (sorted)."""
    folder = Path(root) / SAMPLES_DIR
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        m = _SAMPLE_RE.match(p.name)
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


def remove_stale_temporaries(root: str | os.PathLike,
                             indices: Sequence[int] | None = None) -> list[Path]:
    """Delete temporary files left by an interrupted write (``.sample_*.tmp.h5``); return them.

    Parameters
    ----------
    root : path
        Dataset folder.
    indices : sequence of int, optional
        Only the temporaries of these samples (a shard must not remove the files
        another shard is writing); default all.
    """
    keep_only = None if indices is None else set(int(i) for i in indices)
    removed = []
    for folder in (Path(root) / SAMPLES_DIR, Path(root) / TIMINGS_DIR):
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            m = _TEMP_RE.match(p.name)
            if m and (keep_only is None or int(m.group(1)) in keep_only) and p.is_file() \
                    and not p.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                removed.append(p)
    return removed


def timing_path(root: str | os.PathLike, index: int) -> Path:
    """``timings/sample_NNNNNN.json``: how long sample ``index`` took to compute."""
    return Path(root) / TIMINGS_DIR / f"sample_{index:06d}.json"


def write_timing(root: str | os.PathLike, index: int, wall_seconds: float,
                 cpu_seconds: float) -> Path:
    """Record the wall and CPU seconds of sample ``index`` (atomically)."""
    path = timing_path(root, index)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"index": int(index), "wall_seconds": float(wall_seconds),
                                   "cpu_seconds": float(cpu_seconds)}) + "\n")
    return path


def read_timing(root: str | os.PathLike, index: int) -> tuple[float | None, float | None]:
    """``(wall, cpu)`` seconds of sample ``index`` (None where not recorded)."""
    try:
        data = json.loads(timing_path(root, index).read_text())
        return float(data["wall_seconds"]), float(data["cpu_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, None


def is_sample_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named ``sample_NNNNNN.h5`` and says inside that it is our sample."""
    import h5py

    path = Path(path)
    if not _SAMPLE_RE.match(path.name) or path.is_symlink() or not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == SAMPLE_FORMAT
    except OSError:
        return False


def is_sample_vtu(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named ``sample_NNNNNN.vtu`` and is a VTU file of
    :func:`write_mesh_vtu` (it has the ``quadrature_weight`` point data)."""
    path = Path(path)
    if not _VTU_RE.match(path.name) or path.is_symlink() or not path.is_file():
        return False
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return data.startswith(b"<?xml") and b'type="UnstructuredGrid"' in data[:400] and \
        b'Name="quadrature_weight"' in data


def write_trajectory(
    path: str | os.PathLike,
    traj: Trajectory,
    generator: str,
    index: int,
    seed: int,
    dataset_params_hash: str = "",
    timing: dict | None = None,
) -> Path:
    """Write one sample file atomically (schema in the module docstring)."""
    import h5py

    traj.validate()
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = SAMPLE_FORMAT
        f.attrs["version"] = SAMPLE_VERSION
        f.attrs["generator"] = generator
        f.attrs["index"] = int(index)
        f.attrs["seed"] = int(seed)
        f.attrs["params"] = json.dumps(traj.params, sort_keys=True)
        f.attrs["dataset_params_hash"] = dataset_params_hash
        f.attrs["field_names"] = json.dumps(list(traj.fields))
        for key, value in (timing or {}).items():
            f.attrs[key] = float(value)
        g = f.create_group("geometry")
        g["pos"] = np.asarray(traj.pos, dtype=np.float64)
        g["weights"] = np.asarray(traj.weights, dtype=np.float64)
        if traj.faces is not None:
            g["faces"] = np.asarray(traj.faces, dtype=np.int64)
        g.attrs["manifold"] = traj.manifold
        if traj.grid is not None:
            g.attrs["grid"] = json.dumps(traj.grid)
        f["times"] = np.asarray(traj.times, dtype=np.float64)
        fg = f.create_group("fields")
        for name, value in traj.fields.items():
            ds = fg.create_dataset(name, data=np.asarray(value, dtype=np.float32),
                                   chunks=(1, traj.num_points))
            ds.attrs["units"] = traj.units.get(name, "")
            ds.attrs["description"] = traj.descriptions.get(name, "")
        if traj.static:
            sg = f.create_group("static")
            for name, value in traj.static.items():
                sg[name] = np.asarray(value)
        if traj.series:
            eg = f.create_group("series")
            for name, value in traj.series.items():
                eg[name] = np.asarray(value, dtype=np.float64)
    return path


@dataclass
class SampleHeader:
    """The attributes of a sample file (read without loading the data)."""

    path: Path
    generator: str
    index: int
    seed: int
    params: dict
    dataset_params_hash: str
    field_names: list[str]
    num_frames: int
    num_points: int
    wall_seconds: float | None
    cpu_seconds: float | None


def _open(path: Path):
    import h5py

    if not path.exists():
        raise DatasetError(f"missing sample file {path}")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise DatasetError(f"{path} is not a readable HDF5 file (truncated or corrupted?): "
                           f"{error}") from error


def read_header(path: str | os.PathLike) -> SampleHeader:
    """Read and check a sample file's attributes and shapes.

    Raises
    ------
    DatasetError
        Missing, unreadable (truncated/corrupted), not a sample file, or with
        missing datasets or inconsistent shapes.
    """
    path = Path(path)
    f = _open(path)
    try:
        with f:
            if f.attrs.get("format") != SAMPLE_FORMAT:
                raise DatasetError(f"{path} is not a geo_neuralop sample file "
                                   f"(format attribute {f.attrs.get('format')!r})")
            for key in ("geometry/pos", "geometry/weights", "times", "fields"):
                if key not in f:
                    raise DatasetError(f"{path} lacks {key!r} (incomplete or corrupted file)")
            names = json.loads(f.attrs["field_names"])
            n = f["geometry/pos"].shape[0]
            frames = f["times"].shape[0]
            for name in names:
                if name not in f["fields"]:
                    raise DatasetError(f"{path} lacks the field {name!r}")
                if f["fields"][name].shape != (frames, n):
                    raise DatasetError(f"{path}: field {name!r} has shape "
                                       f"{f['fields'][name].shape}, expected ({frames}, {n})")
            wall = f.attrs.get("wall_seconds")
            cpu = f.attrs.get("cpu_seconds")
            return SampleHeader(
                path=path, generator=str(f.attrs["generator"]), index=int(f.attrs["index"]),
                seed=int(f.attrs["seed"]), params=json.loads(f.attrs["params"]),
                dataset_params_hash=str(f.attrs.get("dataset_params_hash", "")),
                field_names=list(names), num_frames=int(frames), num_points=int(n),
                wall_seconds=None if wall is None else float(wall),
                cpu_seconds=None if cpu is None else float(cpu))
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError) as error:  # h5py raises these on damaged data
        raise DatasetError(f"{path} could not be read (truncated or corrupted?): "
                           f"{error}") from error


def read_trajectory(path: str | os.PathLike, fields: Sequence[str] | None = None) -> Trajectory:
    """Load a sample file (optionally only some fields).

    Raises
    ------
    DatasetError
        As :func:`read_header`, or when a requested field is absent.
    """
    path = Path(path)
    header = read_header(path)
    names = header.field_names if fields is None else list(fields)
    for name in names:
        if name not in header.field_names:
            raise DatasetError(f"{path} has no field {name!r}; it has {header.field_names}")
    f = _open(path)
    try:
        with f:
            g = f["geometry"]
            grid = json.loads(g.attrs["grid"]) if "grid" in g.attrs else None
            return Trajectory(
                pos=g["pos"][()], weights=g["weights"][()], manifold=str(g.attrs["manifold"]),
                times=f["times"][()],
                fields={name: f["fields"][name][()] for name in names},
                faces=g["faces"][()] if "faces" in g else None, grid=grid,
                static={k: v[()] for k, v in f["static"].items()} if "static" in f else {},
                series={k: v[()] for k, v in f["series"].items()} if "series" in f else {},
                params=header.params,
                units={n: str(f["fields"][n].attrs.get("units", "")) for n in names},
                descriptions={n: str(f["fields"][n].attrs.get("description", ""))
                              for n in names})
    except (OSError, KeyError, ValueError) as error:
        raise DatasetError(f"{path} could not be read (truncated or corrupted?): "
                           f"{error}") from error


def write_mesh_vtu(path: str | os.PathLike, traj: Trajectory, frame: int = -1) -> Path:
    """Write a mesh trajectory's geometry and one frame's fields as VTU (atomically).

    Point data: every field at ``frame`` and every static array. Needs ``faces``.
    """
    import meshio

    if traj.faces is None:
        raise ValueError("write_mesh_vtu needs a triangulated trajectory (faces is None)")
    points = np.asarray(traj.pos, dtype=np.float64)
    if points.shape[1] == 2:
        points = np.column_stack([points, np.zeros(len(points))])
    point_data = {name: np.asarray(value[frame], dtype=np.float64)
                  for name, value in traj.fields.items()}
    point_data.update({name: np.asarray(value) for name, value in traj.static.items()})
    point_data["quadrature_weight"] = np.asarray(traj.weights, dtype=np.float64)
    mesh = meshio.Mesh(points, [("triangle", np.asarray(traj.faces, dtype=np.int64))],
                       point_data=point_data)
    path = Path(path)
    with atomic_path(path) as tmp:
        meshio.write(tmp, mesh, file_format="vtu")
    return path


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def params_hash(params: dict) -> str:
    """A short stable hash of a JSON-able parameter dict (sorted keys)."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
