"""Prediction files: truth and prediction over time on one point cloud, in HDF5.

Written by evaluation (``geo-neuralop evaluate``) and read by ``geo-neuralop render``.

Schema (HDF5, one file per rollout)::

    /                     attrs: format = "geo_neuralop.predictions", version = 1,
                                 manifold ("euclidean" | "sphere"), field_names (JSON list)
    /geometry/pos         float64 [N, d]
    /geometry/weights     float64 [N]
    /geometry/faces       int64   [F, 3]      (optional)
    /geometry/grid_shape  int64   [2]         (optional: sphere lat/lon grids)
                          attrs: grid ("equiangular" | "legendre-gauss", optional)
    /truth                float32 [T, N, C]   (C = len(field_names))
    /prediction           float32 [T, N, C]
    /times                float64 [T]         (physical time of each frame)

The file is written to a temporary name and renamed, so a reader never sees a
partial file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.utils import atomic_path

FORMAT = "geo_neuralop.predictions"
VERSION = 1


@dataclass
class Predictions:
    """A rollout's truth and prediction on one point cloud.

    Attributes
    ----------
    cloud : PointCloud
    truth, prediction : np.ndarray, shape [T, N, C]
    field_names : list of str, length C
    times : np.ndarray, shape [T]
    """

    cloud: PointCloud
    truth: np.ndarray
    prediction: np.ndarray
    field_names: list[str]
    times: np.ndarray

    def field(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Truth and prediction of one field, each ``[T, N]``."""
        if name not in self.field_names:
            raise ValueError(f"unknown field {name!r}; the file has {self.field_names}")
        c = self.field_names.index(name)
        return self.truth[:, :, c], self.prediction[:, :, c]


def _as_frames(name: str, value, n: int, c: int | None) -> np.ndarray:
    arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"{name} must have shape [T, N, C] or [N, C], got {arr.shape}")
    if arr.shape[1] != n:
        raise ValueError(f"{name} has {arr.shape[1]} points but the cloud has {n}")
    if c is not None and arr.shape[2] != c:
        raise ValueError(f"{name} has {arr.shape[2]} channels but {c} field names were given")
    return arr.astype(np.float32)


def save_predictions(
    path: str | Path,
    cloud: PointCloud,
    truth,
    prediction,
    field_names: Sequence[str],
    times: Sequence[float] | None = None,
) -> Path:
    """Write a prediction file (see the module docstring for the schema).

    Parameters
    ----------
    path : str or Path
        Target ``.h5`` file (written atomically).
    cloud : PointCloud
    truth, prediction : array or tensor, shape [T, N, C] or [N, C]
    field_names : sequence of str, length C
    times : sequence of float, length T, optional (default ``0, 1, ...``)
    """
    import h5py

    field_names = list(field_names)
    n = cloud.num_nodes
    truth = _as_frames("truth", truth, n, len(field_names))
    prediction = _as_frames("prediction", prediction, n, len(field_names))
    if truth.shape != prediction.shape:
        raise ValueError(f"truth {truth.shape} and prediction {prediction.shape} differ in shape")
    times = np.arange(truth.shape[0], dtype=np.float64) if times is None else np.asarray(
        times, dtype=np.float64)
    if times.shape != (truth.shape[0],):
        raise ValueError(f"times has shape {times.shape}; expected ({truth.shape[0]},)")
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        f.attrs["manifold"] = cloud.manifold
        f.attrs["field_names"] = json.dumps(field_names)
        g = f.create_group("geometry")
        g["pos"] = cloud.pos.detach().cpu().double().numpy()
        g["weights"] = cloud.weights.detach().cpu().double().numpy()
        if getattr(cloud, "faces", None) is not None:
            g["faces"] = cloud.faces.cpu().numpy().astype(np.int64)
        if getattr(cloud, "grid_shape", None) is not None and getattr(cloud, "grid", None):
            g["grid_shape"] = np.asarray(cloud.grid_shape, dtype=np.int64)
            g["grid_shape"].attrs["grid"] = cloud.grid
        f["truth"] = truth
        f["prediction"] = prediction
        f["times"] = times
    return path


def _field_names(value, path: Path) -> list[str]:
    """The ``field_names`` attribute: a JSON list of strings."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        raise ValueError(f"{path}: the attribute field_names is missing or not a JSON string")
    try:
        names = json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: the attribute field_names is not valid JSON ({error})") \
            from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{path}: the attribute field_names must be a JSON list of strings, "
                         f"got {value[:100]!r}")
    return names


def _read_open_file(f, path: Path):
    if f.attrs.get("format") != FORMAT:
        raise ValueError(f"{path} is not a geo_neuralop prediction file "
                         f"(format attribute {f.attrs.get('format')!r})")
    for key in ("geometry/pos", "geometry/weights", "truth", "prediction", "times"):
        if key not in f:
            raise ValueError(f"{path} lacks the dataset {key!r}")
    names = _field_names(f.attrs.get("field_names"), path)
    g = f["geometry"]
    extra = {}
    if "grid_shape" in g:
        extra = {"grid_shape": tuple(int(v) for v in g["grid_shape"][()]),
                 "grid": str(g["grid_shape"].attrs["grid"])}
    manifold = str(f.attrs["manifold"])
    cloud = PointCloud(
        torch.from_numpy(g["pos"][()]),
        torch.from_numpy(g["weights"][()]),
        manifold=manifold,
        faces=torch.from_numpy(g["faces"][()]) if "faces" in g else None,
        allow_duplicates=extra.get("grid") == "equiangular",
        **extra,
    )
    truth, prediction, times = f["truth"][()], f["prediction"][()], f["times"][()]
    return cloud, truth, prediction, names, times


def load_predictions(path: str | Path) -> Predictions:
    """Read a prediction file, checking its format and shapes.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a geo_neuralop prediction file, truncated, or inconsistent shapes.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no prediction file at {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a prediction file (.h5)")
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{path} is not a readable HDF5 file (truncated or corrupted?): "
                         f"{error}") from error
    try:
        with f:
            cloud, truth, prediction, names, times = _read_open_file(f, path)
    except (KeyError, OSError, TypeError) as error:  # h5py on a damaged or odd file
        raise ValueError(f"{path} could not be read as a prediction file "
                         f"({type(error).__name__}: {error})") from error
    expected = (times.shape[0], cloud.num_nodes, len(names))
    for name, arr in (("truth", truth), ("prediction", prediction)):
        if arr.shape != expected:
            raise ValueError(f"{path}: {name} has shape {arr.shape}, expected {expected}")
    return Predictions(cloud, truth, prediction, names, times)
