"""xarray, NetCDF and Zarr: lat/lon fields in, sphere point clouds out, and predictions back.

- :func:`from_xarray` turns a global lat/lon ``xarray.Dataset`` into one sphere
  :class:`~geo_neuralop.geometry.PointCloud` per time step, ``x [N, C]`` holding the
  variables in the order given and ``weights`` the detected grid's solid angles (see
  :mod:`~geo_neuralop.data.importers.latlon_grid` for the rules recognized).
- :func:`import_xarray` writes a NetCDF file or Zarr store as a dataset folder the
  trainer takes (``geo-neuralop import xarray``), reading one time step at a time.
- :func:`to_xarray` writes predictions back with CF coordinates (``lat`` in
  ``degrees_north``, ``lon`` in ``degrees_east``, time) and each field's units.

Points are in torch-harmonics' order: latitudes north to south, longitudes increasing
from the first one in ``[0, 360)``. Every reader check names the file, the variable
and what was expected. xarray, netCDF4 and zarr come with the ``formats`` extra.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geo_neuralop._version import __version__
from geo_neuralop.data.importers.dataset_writer import write_dataset
from geo_neuralop.data.importers.latlon_grid import (
    LatLonGrid,
    detect_latlon_grid,
    points_latlon,
)
from geo_neuralop.data.storage import Trajectory
from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.utils import atomic_path

__all__ = ["XarrayFields", "from_xarray", "import_xarray", "inspect_xarray", "open_xarray",
           "to_xarray", "write_xarray"]


def _xarray():
    try:
        import xarray
    except ImportError as error:  # pragma: no cover - the formats extra is missing
        raise ImportError("reading NetCDF/Zarr needs xarray: pip install "
                          "'geo_neuralop[formats]'") from error
    return xarray


def open_xarray(path: str | os.PathLike):
    """Open a NetCDF file or a Zarr store lazily (nothing is loaded until a frame is read).

    Raises
    ------
    FileNotFoundError
        No such file or store.
    ValueError
        Not a readable NetCDF file or Zarr store (the message names it).
    """
    xr = _xarray()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no NetCDF file or Zarr store at {path}")
    try:
        if path.is_dir() or path.suffix == ".zarr":
            return xr.open_zarr(path, chunks=None, consolidated=False)
        return xr.open_dataset(path)
    except Exception as error:  # backends raise many types for a damaged file
        kind = "Zarr store" if path.is_dir() else "NetCDF file"
        raise ValueError(f"{path} is not a readable {kind}: {type(error).__name__}: "
                         f"{error}") from error


def _seconds(values: np.ndarray, name: str, where: str) -> tuple[np.ndarray, str | None]:
    """Time coordinate values as seconds since the first one, and the first one's date."""
    if values.size == 0:
        return np.zeros(0), None
    if np.issubdtype(values.dtype, np.datetime64):
        start = values[0]
        seconds = (values - start) / np.timedelta64(1, "s")
        reference = np.datetime_as_string(start, unit="s")
    elif np.issubdtype(values.dtype, np.timedelta64):
        seconds, reference = values / np.timedelta64(1, "s"), None
    elif values.dtype == object:  # cftime dates of non-standard calendars
        try:
            seconds = np.array([(v - values[0]).total_seconds() for v in values])
        except (TypeError, AttributeError) as error:
            raise ValueError(f"{where}coordinate {name!r} holds values that are neither "
                             f"numbers nor dates ({values[0]!r})") from error
        reference = str(values[0])
    else:
        seconds, reference = np.asarray(values, dtype=np.float64), None
    seconds = np.asarray(seconds, dtype=np.float64)
    if seconds.size > 1 and not (np.diff(seconds) > 0).all():
        bad = int(np.argmax(np.diff(seconds) <= 0))
        raise ValueError(f"{where}coordinate {name!r} is not increasing at index {bad + 1}; "
                         f"sort it first (ds.sortby({name!r}))")
    return seconds, reference


@dataclass
class XarrayFields:
    """A checked view of global lat/lon variables; frames are read one at a time.

    Made by :func:`inspect_xarray`. Attributes: ``ds`` (the dataset), ``variables``,
    ``grid`` (:class:`LatLonGrid`), ``lat``, ``lon``, ``time`` (dimension names; ``time``
    None for a single frame), ``times`` (seconds since the first frame, ``[F]``),
    ``time_reference`` (ISO date of the first frame, or None), ``units`` and
    ``descriptions`` (per variable), ``where`` (the source, for messages).
    """

    ds: Any
    variables: list[str]
    grid: LatLonGrid
    lat: str
    lon: str
    time: str | None
    times: np.ndarray
    time_reference: str | None
    units: dict[str, str]
    descriptions: dict[str, str]
    where: str

    @property
    def num_frames(self) -> int:
        return int(self.times.shape[0])

    def frame(self, index: int) -> np.ndarray:
        """Values ``[nlat * nlon, C]`` of frame ``index`` in the canonical point order.

        Raises
        ------
        ValueError
            Missing values (NaN or fill values) in a variable, naming the variable, the
            frame and how many points.
        """
        columns = []
        for name in self.variables:
            var = self.ds[name]
            if self.time is not None:
                var = var.isel({self.time: index})
            values = np.asarray(var.transpose(self.lat, self.lon).values, dtype=np.float64)
            missing = ~np.isfinite(values)
            if missing.any():
                at = f" at {self.time}[{index}]" if self.time is not None else ""
                raise ValueError(
                    f"{self.where}variable {name!r} has {int(missing.sum())} missing value(s)"
                    f"{at} of {values.size}: sphere models need a value at every grid point "
                    f"(fill or interpolate them first, e.g. ds[{name!r}].fillna(...))")
            columns.append(self.grid.to_canonical(values).reshape(-1))
        return np.stack(columns, axis=-1)

    def cloud(self, dtype: torch.dtype | None = None) -> PointCloud:
        """The grid as a sphere :class:`PointCloud` (no fields attached)."""
        dtype = dtype or torch.get_default_dtype()
        extra: dict[str, Any] = {}
        if self.grid.sphere_grid is not None:
            extra = {"grid_shape": self.grid.shape, "grid": self.grid.sphere_grid}
        return PointCloud(
            torch.as_tensor(self.grid.unit_vectors().reshape(-1, 3), dtype=dtype),
            torch.as_tensor(self.grid.weights().reshape(-1), dtype=dtype),
            manifold="sphere", allow_duplicates=self.grid.rule == "equiangular", **extra)

    def grid_description(self) -> dict:
        """The dataset card's grid description, with the source's conventions."""
        out: dict[str, Any] = {"rule": self.grid.rule, "lat_ascending": self.grid.lat_ascending,
                               "lon_signed": self.grid.lon_signed,
                               "first_longitude": float(self.grid.lon[0])}
        if self.grid.sphere_grid is not None:
            out = {"kind": "sphere", "shape": list(self.grid.shape),
                   "grid": self.grid.sphere_grid, **out}
        return out


def inspect_xarray(ds, variables: Sequence[str], lat: str = "lat", lon: str = "lon",
                   time: str | None = "time", where: str = "") -> XarrayFields:
    """Check variables, grid and time of a dataset without loading the data.

    Parameters
    ----------
    ds : xarray.Dataset
    variables : sequence of str
        Variables to read, each with dimensions ``(lat, lon)`` or ``(time, lat, lon)`` in
        any order.
    lat, lon : str
        Names of the 1-D latitude and longitude coordinates (degrees).
    time : str or None
        Name of the time dimension; without one (None, or a default name the dataset
        lacks) the dataset is a single frame.
    where : str
        Message prefix, e.g. the file name.

    Raises
    ------
    ValueError
        Unknown variables or coordinates, extra dimensions, and every grid problem of
        :func:`~geo_neuralop.data.importers.latlon_grid.detect_latlon_grid`.
    """
    variables = [variables] if isinstance(variables, str) else list(variables)
    if not variables:
        raise ValueError(f"{where}variables must name at least one variable")
    names = list(ds.data_vars)
    missing = [v for v in variables if v not in ds.data_vars]
    if missing:
        raise ValueError(f"{where}no variable(s) {missing}; the dataset has {names}")
    for coord in (lat, lon):
        if coord not in ds.variables:
            raise ValueError(f"{where}no coordinate {coord!r}; the dataset has coordinates "
                             f"{list(ds.coords)} (pass lat=/lon= with their names)")
    grid = detect_latlon_grid(ds[lat].values, ds[lon].values, lat, lon, where)
    if time is not None and time not in ds.dims:
        if time != "time":
            raise ValueError(f"{where}no dimension {time!r}; the dataset has {list(ds.dims)}")
        time = None
    allowed = {lat, lon} | ({time} if time else set())
    for name in variables:
        dims = ds[name].dims
        extra = [d for d in dims if d not in allowed]
        if extra:
            hint = (f"select one value of each (ds.isel({extra[0]}=0) or ds.sel(...)), or pass "
                    f"time={extra[0]!r} if it is the time axis")
            raise ValueError(f"{where}variable {name!r} has dimensions {dims}; expected "
                             f"{tuple(d for d in (time, lat, lon) if d)}: {hint}")
        if lat not in dims or lon not in dims:
            raise ValueError(f"{where}variable {name!r} has dimensions {dims}, without "
                             f"{lat!r} and {lon!r}")
        if time is not None and time not in dims:
            raise ValueError(f"{where}variable {name!r} does not vary along {time!r} "
                             f"(dimensions {dims}); every variable must be given per frame")
    if time is not None:
        coord = ds[time].values if time in ds.variables else np.arange(ds.sizes[time])
        times, reference = _seconds(np.asarray(coord), time, where)
    else:
        times, reference = np.zeros(1), None
    units = {v: str(ds[v].attrs.get("units", "")) for v in variables}
    descriptions = {v: str(ds[v].attrs.get("long_name", ds[v].attrs.get("standard_name", "")))
                    for v in variables}
    return XarrayFields(ds, variables, grid, lat, lon, time, times, reference, units,
                        descriptions, where)


def from_xarray(ds, variables: Sequence[str], lat: str = "lat", lon: str = "lon",
                time: str | None = "time", dtype: torch.dtype | None = None
                ) -> list[PointCloud]:
    """One sphere :class:`PointCloud` per time step of a global lat/lon dataset.

    Parameters
    ----------
    ds : xarray.Dataset
        Latitudes in either order, longitudes in ``[0, 360)`` or ``[-180, 180)``, on an
        equiangular (with or without pole rows) or Gaussian latitude grid, recognized
        from the coordinate values.
    variables : sequence of str
        Variables stacked, in this order, as the channels of ``x``.
    lat, lon, time : str
        Coordinate names (``time`` None or absent: one frame).
    dtype : torch.dtype, optional

    Returns
    -------
    list of PointCloud
        Per frame: ``pos [N, 3]`` (unit vectors, north to south, ``N = nlat * nlon``),
        ``weights [N]`` (solid angles of the detected rule, sum ``4 pi``), ``x [N, C]``,
        ``time`` (seconds since the first frame); sphere grids the models take
        (equiangular with poles, Gaussian) also carry ``grid_shape`` and ``grid``.

    Raises
    ------
    ValueError
        See :func:`inspect_xarray`, and missing values in a frame.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> lat, lon = np.linspace(-90, 90, 9), np.arange(0, 360, 22.5)
    >>> ds = xr.Dataset({"t2m": (("time", "lat", "lon"), np.ones((2, 9, 16)))},
    ...                 coords={"time": [0.0, 6.0], "lat": lat, "lon": lon})
    >>> clouds = from_xarray(ds, ["t2m"])
    >>> len(clouds), tuple(clouds[0].x.shape), clouds[0].grid, tuple(clouds[0].grid_shape)
    (2, (144, 1), 'equiangular', (9, 16))
    >>> abs(float(clouds[0].weights.sum()) - 4 * np.pi) < 1e-5  # float32 default dtype
    True
    """
    fields = inspect_xarray(ds, variables, lat, lon, time)
    dtype = dtype or torch.get_default_dtype()
    base = fields.cloud(dtype)
    out = []
    for t in range(fields.num_frames):
        cloud = base.clone()
        cloud.x = torch.as_tensor(fields.frame(t), dtype=dtype)
        cloud.time = float(fields.times[t])
        out.append(cloud)
    return out


def _trajectories(fields: XarrayFields, bounds: list[tuple[int, int]], params: dict
                  ) -> Iterator[Trajectory]:
    cloud = fields.cloud(torch.float64)
    pos, weights = cloud.pos.numpy(), cloud.weights.numpy()
    grid = fields.grid_description() if fields.grid.sphere_grid is not None else None
    for index, (lo, hi) in enumerate(bounds):
        frames = np.stack([fields.frame(t) for t in range(lo, hi)])  # [F, N, C]
        yield Trajectory(
            pos=pos, weights=weights, manifold="sphere", times=fields.times[lo:hi].copy(),
            fields={v: frames[:, :, c] for c, v in enumerate(fields.variables)}, grid=grid,
            params={**params, "first_frame": lo, "piece": index},
            units=dict(fields.units), descriptions=dict(fields.descriptions))


def import_xarray(
    path: str | os.PathLike,
    variables: Sequence[str],
    out: str | os.PathLike,
    lat: str = "lat",
    lon: str = "lon",
    time: str | None = "time",
    frames_per_sample: int | None = None,
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    overwrite: bool = False,
    log=None,
) -> Path:
    """Write the variables of a NetCDF file or Zarr store as a dataset folder.

    The time series is cut into consecutive pieces of ``frames_per_sample`` frames, one
    sample (trajectory) each; the splits are contiguous, so the model is validated and
    tested on later times than it trained on. Frames are read one at a time.

    Parameters
    ----------
    path : path
        ``.nc`` file or ``.zarr`` store.
    variables : sequence of str
        Fields of the dataset (the task: every variable is input and target).
    out : path
        Dataset folder (see :func:`~geo_neuralop.data.importers.dataset_writer.write_dataset`).
    lat, lon, time : str
        Coordinate names.
    frames_per_sample : int, optional
        Default: the series in 10 pieces (fewer for short series, at least 2 frames each).
    split_fractions, overwrite, log
        As for :func:`~geo_neuralop.data.generate_dataset`.

    Returns
    -------
    Path
        The dataset card.
    """
    path = Path(path)
    ds = open_xarray(path)
    try:
        fields = inspect_xarray(ds, variables, lat, lon, time, where=f"{path}: ")
        total = fields.num_frames
        if frames_per_sample is None:
            frames_per_sample = max(2, total // 10) if total >= 2 else 1
        if isinstance(frames_per_sample, bool) or not isinstance(frames_per_sample, int) or \
                frames_per_sample < 1:
            raise ValueError(f"frames_per_sample must be a positive int, got "
                             f"{frames_per_sample!r}")
        count = total // frames_per_sample
        if count < 1:
            raise ValueError(f"{path}: {total} frame(s) along {fields.time!r} are fewer than "
                             f"frames_per_sample={frames_per_sample}")
        bounds = [(k * frames_per_sample, (k + 1) * frames_per_sample) for k in range(count)]
        rollout = frames_per_sample > 1
        params = {"source": str(path), "time_reference": fields.time_reference}
        parameters = {"source": str(path.resolve()), "variables": list(fields.variables),
                      "lat": lat, "lon": lon, "time": fields.time,
                      "frames_per_sample": frames_per_sample, "frames_total": total,
                      "frames_dropped": total - count * frames_per_sample,
                      "time_reference": fields.time_reference,
                      "latitude_rule": fields.grid.rule}
        description = (f"{', '.join(fields.variables)} from {path.name} on a "
                       f"{fields.grid.nlat} x {fields.grid.nlon} {fields.grid.rule} lat/lon "
                       f"grid, in pieces of {frames_per_sample} frames")
        task = {"kind": "rollout" if rollout else "static",
                "inputs": list(fields.variables), "targets": list(fields.variables)}
        field_info = {v: {"units": fields.units[v], "description": fields.descriptions[v]}
                      for v in fields.variables}
        return write_dataset(out, _trajectories(fields, bounds, params), count, source="xarray",
                             description=description, task=task, fields=field_info,
                             parameters=parameters, split_fractions=split_fractions,
                             overwrite=overwrite, log=log)
    finally:
        ds.close()


# --- back to xarray --------------------------------------------------------------------
def to_xarray(predictions, units: dict[str, str] | None = None, lat_ascending: bool = False,
              lon_signed: bool = False, time_reference: str | None = None,
              descriptions: dict[str, str] | None = None):
    """Predictions on a lat/lon grid as an ``xarray.Dataset`` with CF conventions.

    Parameters
    ----------
    predictions
        A :class:`~geo_neuralop.data.Predictions` (``cloud``, ``prediction [T, N, C]``,
        ``field_names``, ``times``, and ``truth``) or the result of
        :func:`geo_neuralop.predict`; its cloud must be a global lat/lon grid.
    units : dict, optional
        Units per field (default: the predictions' own ``units``, if any).
    lat_ascending, lon_signed : bool
        Latitudes south to north; longitudes in ``[-180, 180)`` (default: north to
        south, ``[0, 360)``).
    time_reference : str, optional
        Date of time 0 (e.g. ``"2020-01-01T00:00:00"``): the time coordinate is then
        ``seconds since`` that date, which CF readers decode to dates; otherwise
        seconds.
    descriptions : dict, optional
        ``long_name`` per field.

    Returns
    -------
    xarray.Dataset
        Variables ``NAME`` (prediction) and ``NAME_truth`` (when the predictions hold
        a truth), dimensions ``(time, lat, lon)``, with ``units``; coordinates with CF
        ``standard_name``, ``units`` and ``axis``; ``Conventions = "CF-1.8"``.
    """
    xr = _xarray()
    cloud = predictions.cloud
    if getattr(cloud, "manifold", None) != "sphere":
        raise ValueError("to_xarray needs predictions on the sphere (a lat/lon grid); these "
                         "are on a planar point cloud")
    shape = getattr(cloud, "grid_shape", None)
    lat, lon = points_latlon(cloud.pos.detach().cpu().double().numpy(), shape)
    nlat, nlon = len(lat), len(lon)
    grid = detect_latlon_grid(lat, lon, "latitude", "longitude", "predictions: ")
    names = list(predictions.field_names)
    units = dict(getattr(predictions, "units", None) or {}) | dict(units or {})
    descriptions = dict(descriptions or {})
    times = np.asarray(predictions.times, dtype=np.float64)
    order = np.arange(nlat)[::-1] if lat_ascending else np.arange(nlat)
    lat_out = grid.lat[order]
    lon_out = grid.lon.copy()
    lon_order = np.arange(nlon)
    if lon_signed:
        signed = np.where(lon_out >= 180.0, lon_out - 360.0, lon_out)
        lon_order = np.argsort(signed, kind="stable")
        lon_out = signed[lon_order]
    data_vars = {}
    arrays = [("", predictions.prediction)]
    truth = getattr(predictions, "truth", None)
    if truth is not None:
        arrays.append(("_truth", truth))
    for suffix, values in arrays:
        values = np.asarray(values)
        if values.ndim != 3 or values.shape[1] != nlat * nlon or values.shape[2] != len(names):
            raise ValueError(f"prediction values have shape {values.shape}, expected "
                             f"({len(times)}, {nlat * nlon}, {len(names)})")
        grid_values = values.reshape(values.shape[0], nlat, nlon, len(names))
        grid_values = grid.to_canonical(np.moveaxis(grid_values, -1, 1))  # [T, C, lat, lon]
        grid_values = grid_values[:, :, order][..., lon_order]
        for c, name in enumerate(names):
            attrs = {"units": units.get(name, "")}
            if descriptions.get(name):
                attrs["long_name"] = descriptions[name] + (" (truth)" if suffix else "")
            elif suffix:
                attrs["long_name"] = f"{name} (truth)"
            else:
                attrs["long_name"] = f"{name} (geo_neuralop prediction)"
            data_vars[f"{name}{suffix}"] = (("time", "lat", "lon"),
                                            grid_values[:, c].astype(np.float32), attrs)
    time_attrs = {"standard_name": "time", "axis": "T"}
    if time_reference:
        time_attrs |= {"units": f"seconds since {time_reference}",
                       "calendar": "proleptic_gregorian"}
    else:
        time_attrs |= {"units": "s", "long_name": "time since the initial state"}
    coords = {
        "time": ("time", times, time_attrs),
        "lat": ("lat", lat_out, {"standard_name": "latitude", "long_name": "latitude",
                                 "units": "degrees_north", "axis": "Y"}),
        "lon": ("lon", lon_out, {"standard_name": "longitude", "long_name": "longitude",
                                 "units": "degrees_east", "axis": "X"}),
    }
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update({"Conventions": "CF-1.8", "source": f"geo_neuralop {__version__}",
                     "latitude_rule": grid.rule})
    if time_reference:  # decoded as dates by CF readers, so encode it on writing
        ds = xr.decode_cf(ds)
    return ds


def write_xarray(ds, path: str | os.PathLike) -> Path:
    """Write a dataset as NetCDF (``.nc``) or a Zarr store (``.zarr``), atomically."""
    path = Path(path)
    if path.suffix == ".zarr":
        import shutil
        import tempfile

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            store = tmp / path.name
            ds.to_zarr(store, mode="w", consolidated=False)
            if path.exists():
                shutil.rmtree(path)
            store.rename(path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp)
    return path

