"""A trained model on new inputs: ``geo-neuralop predict`` and :func:`predict`.

The model's experiment description (stored in its checkpoint: the
:class:`~geo_neuralop.training.adapters.DataSpec`) says which fields it reads and in
which units, on which kind of grid, with which normalizer, conditioning and node
types. :func:`predict` reads an input (a mesh file through meshio, a NetCDF file or
Zarr store of lat/lon fields, a dataset sample file, or the same in memory), checks it
against that description, rolls the model out for ``steps`` steps and writes the
frames by the output's suffix:

- ``.vtu``: one VTU, the last frame's fields and every frame as ``NAME_stepK``;
- ``.pvd``: a VTU per frame beside a ParaView ``.pvd`` collection;
- ``.nc`` / ``.zarr``: CF NetCDF or Zarr on the input's lat/lon grid, in its conventions;
- ``.h5``: the dataset sample format (:func:`geo_neuralop.data.read_trajectory`), which
  is also an input, to continue a rollout.

Problems are reported by name: a missing field, other units, a grid the model cannot
take, missing conditioning or node types (``ValueError``); input values far outside
the training data are warned about (``PredictionWarning``), not refused.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from geo_neuralop.data.importers import (
    from_xarray,
    inspect_xarray,
    open_xarray,
    to_xarray,
    write_xarray,
)
from geo_neuralop.data.storage import (
    DatasetError,
    Trajectory,
    cloud_from_arrays,
    read_trajectory,
    write_trajectory,
)
from geo_neuralop.geometry import PointCloud, from_mesh
from geo_neuralop.geometry.mesh_conversion import to_mesh
from geo_neuralop.geometry.triangulation import with_grid_faces
from geo_neuralop.training.adapters import DataSpec, make_adapter, static_features
from geo_neuralop.training.evaluation import load_trained_model
from geo_neuralop.utils import atomic_path
from geo_neuralop.viz.export import write_vtu_series

__all__ = ["OUTPUT_SUFFIXES", "PredictionInput", "PredictionResult", "PredictionWarning",
           "predict", "read_prediction_input"]

#: Output formats by file suffix.
OUTPUT_SUFFIXES = (".vtu", ".pvd", ".nc", ".zarr", ".h5")
#: Input values more than this many training standard deviations from the training mean
#: are reported.
FAR_FROM_TRAINING = 10.0
_MESH_SUFFIXES = (".vtu", ".vtk", ".xdmf", ".xmf", ".msh", ".ply", ".obj", ".stl", ".off")


class PredictionWarning(UserWarning):
    """An input the model can take but was not trained on (values far from the training data)."""


@dataclass
class PredictionInput:
    """An input read for :func:`predict`.

    Attributes
    ----------
    cloud : PointCloud
        The geometry (with ``faces`` for meshes, grid metadata for grids).
    frames : dict of str to np.ndarray
        ``[F, N]`` per field, oldest frame first.
    times : np.ndarray, shape [F]
    units : dict of str to str
    static : dict of str to np.ndarray
        Per-point data (``node_type``).
    params : dict
        Per-input scalars (conditioning values, if the input carries them).
    source : str
        The input's name, for messages.
    xarray : dict, optional
        ``lat_ascending``, ``lon_signed``, ``time_reference`` of a lat/lon input.
    """

    cloud: PointCloud
    frames: dict[str, np.ndarray]
    times: np.ndarray
    units: dict[str, str] = field(default_factory=dict)
    static: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    source: str = "input"
    xarray: dict | None = None

    @property
    def kind(self) -> str:
        """``"sphere"`` (lat/lon grid), ``"regular"`` (box grid) or ``"mesh"``."""
        if getattr(self.cloud, "grid_shape", None) is not None:
            return "sphere" if self.cloud.manifold == "sphere" else "regular"
        return "mesh"


@dataclass
class PredictionResult:
    """Frames predicted by :func:`predict`, in physical units.

    Attributes
    ----------
    cloud : PointCloud
    prediction : np.ndarray, shape [T, N, C]
        Frame ``k`` is the state ``k + 1`` steps after the last input frame.
    field_names : list of str
    times : np.ndarray, shape [T]
        Input time plus ``k + 1`` frame intervals of the training data (or steps).
    units : dict of str to str
    path : Path or None
        The file written.
    """

    cloud: PointCloud
    prediction: np.ndarray
    field_names: list[str]
    times: np.ndarray
    units: dict[str, str]
    path: Path | None = None
    truth: None = None
    source: str = ""
    xarray: dict | None = None

    def field(self, name: str) -> np.ndarray:
        """Frames ``[T, N]`` of one field."""
        if name not in self.field_names:
            raise ValueError(f"unknown field {name!r}; the prediction has {self.field_names}")
        return self.prediction[:, :, self.field_names.index(name)]


# --- reading inputs ------------------------------------------------------------------------
def _mesh_input(path: Path) -> PredictionInput:
    import meshio

    if path.suffix in (".xdmf", ".xmf"):
        try:
            with meshio.xdmf.TimeSeriesReader(str(path)) as reader:
                points, cells = reader.read_points_cells()
                steps = [reader.read_data(k) for k in range(reader.num_steps)]
        except Exception:  # a plain (non time-series) XDMF file
            steps = None
        if steps:
            cloud = from_mesh(meshio.Mesh(points, cells), fields=[], remove_unreferenced=False)
            data = steps[0][1]
            names = [n for n in data if np.asarray(data[n]).ndim == 1 and n != "node_type"]
            frames = {n: np.stack([np.asarray(s[1][n], dtype=np.float64) for s in steps])
                      for n in names}
            static = {"node_type": np.asarray(data["node_type"]).astype(np.int64)} \
                if "node_type" in data else {}
            return PredictionInput(cloud, frames, np.array([float(s[0]) for s in steps]),
                                   static=static, source=str(path))
    try:
        mesh = meshio.read(path)
    except Exception as error:  # meshio raises many kinds for unreadable files
        raise ValueError(f"{path} is not a mesh file meshio can read: {type(error).__name__}: "
                         f"{error}") from error
    cloud = from_mesh(mesh, fields=[], remove_unreferenced=True)
    if cloud.num_nodes != len(mesh.points):
        raise ValueError(f"{path}: {len(mesh.points) - cloud.num_nodes} point(s) belong to no "
                         f"triangle; the prediction needs every point in the mesh")
    frames, static = {}, {}
    for name, values in mesh.point_data.items():
        arr = np.asarray(values)
        if name == "node_type":
            static[name] = arr.reshape(-1).astype(np.int64)
        elif arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1):
            frames[name] = arr.reshape(1, -1).astype(np.float64)
    params = {}
    for name, value in (mesh.field_data or {}).items():
        value = np.asarray(value).reshape(-1)
        if value.size == 1 and np.issubdtype(value.dtype, np.number):
            params[name] = float(value[0])
    return PredictionInput(cloud, frames, np.zeros(1), static=static, params=params,
                           source=str(path))


def _xarray_input(ds, variables: Sequence[str] | None, where: str) -> PredictionInput:
    names = list(variables) if variables is not None else [
        v for v in ds.data_vars if {"lat", "lon"} <= set(ds[v].dims)]
    fields = inspect_xarray(ds, names, where=where)
    clouds = from_xarray(ds, fields.variables, dtype=torch.float64)
    frames = {v: np.stack([c.x[:, k].numpy() for c in clouds]) for k, v in
              enumerate(fields.variables)}
    cloud = copy.copy(clouds[0])
    del cloud.x
    return PredictionInput(cloud, frames, fields.times.copy(), units=dict(fields.units),
                           source=where.rstrip(": ") or "dataset",
                           xarray={"lat_ascending": fields.grid.lat_ascending,
                                   "lon_signed": fields.grid.lon_signed,
                                   "time_reference": fields.time_reference})


def read_prediction_input(source: Any, fields: Sequence[str] | None = None) -> PredictionInput:
    """Read a prediction input: a file path or an object in memory.

    Parameters
    ----------
    source
        A mesh file (VTU, XDMF time series, ... through meshio: scalar point data are
        fields, ``node_type`` the node types, field data the conditioning scalars), a
        NetCDF file or Zarr store of lat/lon fields, a dataset sample file (``.h5``), a
        :class:`PointCloud` whose scalar attributes ``[N]`` or ``[F, N]``... are the
        fields, an ``xarray.Dataset``, or a :class:`PredictionInput`.
    fields : sequence of str, optional
        For lat/lon inputs: the variables to read (default: every lat/lon variable).
    """
    if isinstance(source, PredictionInput):
        return source
    if isinstance(source, PointCloud):
        n = source.num_nodes
        frames, static = {}, {}
        for key in source.keys():
            value = getattr(source, key)
            if key in ("pos", "weights", "faces") or not isinstance(value, torch.Tensor):
                continue
            arr = value.detach().cpu().numpy()
            if key == "node_type":
                static[key] = arr.reshape(-1).astype(np.int64)
            elif arr.shape == (n,):
                frames[key] = arr[None].astype(np.float64)
        return PredictionInput(source, frames, np.zeros(1), static=static, source="cloud")
    if hasattr(source, "data_vars"):  # an xarray.Dataset
        return _xarray_input(source, fields, "")
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no input at {path}")
    if path.suffix in (".nc", ".nc4", ".netcdf", ".zarr") or path.is_dir():
        return _xarray_input(open_xarray(path), fields, f"{path}: ")
    if path.suffix in (".h5", ".hdf5"):
        try:
            traj = read_trajectory(path)
        except DatasetError as error:
            raise ValueError(f"{path}: {error}") from error
        cloud = cloud_from_arrays(traj.pos, traj.weights, traj.manifold, traj.faces, traj.grid,
                                  torch.float64)
        return PredictionInput(cloud, {k: v.astype(np.float64) for k, v in traj.fields.items()},
                               traj.times, units=dict(traj.units), static=dict(traj.static),
                               params=dict(traj.params), source=str(path))
    if path.suffix.lower() in _MESH_SUFFIXES:
        return _mesh_input(path)
    raise ValueError(f"{path}: unknown input format {path.suffix!r}; use a mesh file "
                     f"({', '.join(_MESH_SUFFIXES)}), NetCDF (.nc), Zarr (.zarr) or a dataset "
                     f"sample (.h5)")


# --- checks --------------------------------------------------------------------------------
def _same_units(a: str, b: str) -> bool:
    def canonical(u: str) -> str:
        u = "".join(u.split()).replace("**", "^")
        return "" if u in ("1", "-", "none", "dimensionless") else u

    return canonical(a) == canonical(b)


def _check_geometry(spec: DataSpec, data: PredictionInput, model_name: str) -> None:
    geo, kind = spec.geometry, data.kind
    where = data.source
    if spec.family == "sphere":
        if kind != "sphere":
            raise ValueError(f"{where}: the model ({model_name}) takes {geo.get('grid')} lat/lon "
                             f"grids of the sphere; the input is a {kind} "
                             f"{'point cloud' if kind == 'mesh' else 'grid'}")
        if str(data.cloud.grid) != str(geo.get("grid")):
            raise ValueError(f"{where}: the model ({model_name}) takes {geo.get('grid')} grids; "
                             f"the input is a {data.cloud.grid} grid (regrid it first)")
    elif spec.family == "grid":
        if kind != "regular":
            raise ValueError(f"{where}: the model ({model_name}) takes regular grids; the "
                             f"input is a {kind}")
        if len(data.cloud.grid_shape) != len(geo["shape"]) or \
                list(data.cloud.periodic) != list(geo["periodic"]):
            raise ValueError(f"{where}: the model ({model_name}) takes {len(geo['shape'])}-D "
                             f"grids with periodic axes {geo['periodic']}; the input grid is "
                             f"{len(data.cloud.grid_shape)}-D with {list(data.cloud.periodic)}")
    else:
        dim = int(geo.get("dim", data.cloud.pos.shape[1]))
        if int(data.cloud.pos.shape[1]) != dim:
            raise ValueError(f"{where}: the model ({model_name}) was trained on {dim}-D points; "
                             f"the input has {int(data.cloud.pos.shape[1])}-D points")
        trained_sphere = geo.get("kind") == "sphere" or geo.get("manifold") == "sphere"
        if trained_sphere != (data.cloud.manifold == "sphere"):
            trained = "the sphere" if trained_sphere else "planar meshes"
            given = "on the sphere" if data.cloud.manifold == "sphere" else "planar"
            raise ValueError(f"{where}: the model ({model_name}) was trained on {trained}; the "
                             f"input is {given}")


def _check_fields(spec: DataSpec, data: PredictionInput) -> None:
    missing = [n for n in spec.inputs if n not in data.frames]
    if missing:
        wanted = ", ".join(f"{n!r} ({spec.units.get(n) or 'no units'})" for n in missing)
        raise ValueError(f"{data.source}: the model needs the field(s) {wanted}; the input has "
                         f"{sorted(data.frames)}")
    for name in spec.inputs:
        expected, given = spec.units.get(name, ""), data.units.get(name, "")
        if expected and given and not _same_units(expected, given):
            raise ValueError(f"{data.source}: field {name!r} is in {given!r}, but the model was "
                             f"trained on {expected!r}; convert it first")
        values = data.frames[name]
        if not np.isfinite(values).all():
            raise ValueError(f"{data.source}: field {name!r} has "
                             f"{int((~np.isfinite(values)).sum())} missing or non-finite "
                             f"value(s)")


def _warn_far_values(spec: DataSpec, data: PredictionInput, window: dict[str, np.ndarray]
                     ) -> list[str]:
    normalizer = spec.normalizer_object()
    if normalizer is None:
        return []
    messages = []
    for name in spec.inputs:
        mean, std = normalizer.mean[name], normalizer.std[name]
        values = window[name]
        z = float(np.abs((values - mean) / std).max())
        if z > FAR_FROM_TRAINING:
            unit = f" {spec.units.get(name)}" if spec.units.get(name) else ""
            messages.append(
                f"{data.source}: field {name!r} reaches {z:.1f} standard deviations from the "
                f"training mean (input range [{values.min():.4g}, {values.max():.4g}]{unit}; "
                f"training mean {mean:.4g}, std {std:.4g}): the prediction may be unreliable")
    for message in messages:
        warnings.warn(message, PredictionWarning, stacklevel=3)
    return messages


def _conditioning(spec: DataSpec, data: PredictionInput,
                  given: Mapping[str, float] | None) -> torch.Tensor | None:
    if not spec.conditioning_names:
        return None
    values, missing = [], []
    for name in spec.conditioning_names:
        if given is not None and name in given:
            values.append(float(given[name]))
        elif name in data.params:
            values.append(float(data.params[name]))
        else:
            missing.append(name)
    if missing:
        means = dict(zip(spec.conditioning_names, spec.conditioning_mean, strict=True))
        raise ValueError(f"{data.source}: the model is conditioned on {missing} (training "
                         f"means {means}); give them (--param NAME=VALUE, or "
                         f"conditioning={{...}})")
    return torch.tensor(values, dtype=torch.float64)


# --- the prediction ------------------------------------------------------------------------
def _load(model: Any) -> tuple[nn.Module, dict]:
    if isinstance(model, tuple):
        return model
    return load_trained_model(model)


def predict(model: Any, input: Any, steps: int = 1, out: str | os.PathLike | None = None, *,
            conditioning: Mapping[str, float] | None = None, fields: Sequence[str] | None = None,
            device: str | torch.device = "cpu") -> PredictionResult:
    """Roll a trained model out from a new input and (optionally) write the frames.

    Parameters
    ----------
    model : path or (nn.Module, dict)
        A run folder, training checkpoint or ``model.pt`` written by
        ``geo-neuralop train``, or the pair :func:`~geo_neuralop.training.evaluation.
        load_trained_model` returns.
    input
        See :func:`read_prediction_input`. Its last frames are the initial state (as
        many as the model's input steps).
    steps : int
        Autoregressive steps (1 for models whose targets are not their inputs).
    out : path, optional
        Output file; the format follows the suffix (see the module docstring).
    conditioning : mapping, optional
        Values of the model's conditioning scalars (e.g. ``{"reynolds": 100}``), where
        the input does not carry them.
    fields : sequence of str, optional
        Variables to read from a lat/lon input (default: the model's input fields).
    device : str or torch.device

    Returns
    -------
    PredictionResult

    Raises
    ------
    ValueError
        A missing field, other units, a grid or mesh the model cannot take, too few
        input frames, missing conditioning or node types, an unknown output suffix.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if out is not None and Path(out).suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"out {str(out)!r}: unknown output format; use one of "
                         f"{', '.join(OUTPUT_SUFFIXES)}")
    net, experiment = _load(model)
    spec = DataSpec.from_dict(experiment["data"])
    name = experiment.get("model_name", type(net).__name__)
    data = read_prediction_input(input, list(fields) if fields is not None else
                                 list(spec.inputs))
    _check_geometry(spec, data, name)
    _check_fields(spec, data)
    if not spec.can_rollout and steps > 1:
        raise ValueError(f"the model ({name}) maps {spec.inputs} to {spec.targets}, so it "
                         f"cannot be iterated: use steps=1")
    k, s = spec.input_steps, spec.frame_step
    need = (k - 1) * s + 1
    available = data.frames[spec.inputs[0]].shape[0]
    if available < need:
        raise ValueError(f"{data.source}: the model reads {k} frame(s) {s} apart ({need} "
                         f"frames), the input has {available}")
    picked = list(range(available - need, available, s))
    window = {n: data.frames[n][picked] for n in spec.inputs}
    _warn_far_values(spec, data, window)

    dtype = next((p.dtype for p in net.parameters()), torch.float32)
    cloud = data.cloud
    stack = np.stack([window[n] for n in spec.inputs], axis=-1)  # [k, N, C]
    state = torch.as_tensor(stack, dtype=dtype)
    normalizer = spec.normalizer_object() if spec.normalize else None
    if normalizer is not None:
        state = normalizer.encode(state, list(spec.inputs))
    n = state.shape[1]
    state = state.permute(1, 0, 2).reshape(n, -1)  # [N, k C], frame-major
    node_type = data.static.get("node_type")
    if spec.node_types and node_type is None:
        raise ValueError(f"{data.source}: the model reads {spec.node_types} node types; give "
                         f"them as the point data 'node_type'")
    static = static_features(spec, n, _conditioning(spec, data, conditioning),
                             None if node_type is None else torch.as_tensor(node_type), dtype)
    model_cloud = cloud_from_arrays(cloud.pos.detach().cpu().numpy(),
                                    cloud.weights.detach().cpu().numpy(), cloud.manifold,
                                    None if getattr(cloud, "faces", None) is None
                                    else cloud.faces.cpu().numpy(), _grid_of(cloud), dtype)
    grid_shape = getattr(model_cloud, "grid_shape", None)
    if grid_shape is not None and spec.family != "mesh":  # the input's resolution
        spec = DataSpec.from_dict({**spec.to_dict(), "geometry": {
            **spec.geometry, "shape": [int(v) for v in grid_shape]}})
    adapter = make_adapter(spec)
    x0, _, static_in, context = adapter.rollout_inputs([model_cloud], [state], [state[None]],
                                                       [static])
    device = torch.device(device)
    net = net.to(device).eval()
    x = x0.to(device)
    context = {key: (v.to(device) if hasattr(v, "to") else v) for key, v in context.items()}
    step = adapter.step_fn(net, static_in.to(device), context)
    c_out = len(spec.targets)
    outputs = []
    with torch.no_grad():
        for _ in range(steps):
            x = step(x)
            outputs.append(x[:, -c_out:].detach().cpu())
    frames = torch.stack(outputs)  # [T, N, C] or [T, 1, C, *shape]
    sizes = [n] if spec.family == "mesh" else 1
    (pred,) = adapter.split_frames(frames, sizes)
    if normalizer is not None:
        pred = normalizer.decode(pred.double(), list(spec.targets))
    dt = spec.frame_interval if spec.frame_interval else 1.0
    t0 = float(data.times[picked[-1]])
    result = PredictionResult(
        cloud=cloud, prediction=pred.double().numpy(), field_names=list(spec.targets),
        times=t0 + dt * np.arange(1, steps + 1), units={t: spec.units.get(t, "")
                                                       for t in spec.targets},
        source=data.source, xarray=data.xarray)
    if out is not None:
        result.path = write_prediction(result, out)
    return result


def _grid_of(cloud: PointCloud) -> dict | None:
    shape = getattr(cloud, "grid_shape", None)
    if shape is None:
        return None
    if cloud.manifold == "sphere":
        return {"kind": "sphere", "shape": list(shape), "grid": str(cloud.grid)}
    return {"kind": "regular", "shape": list(shape),
            "domain": [list(d) for d in cloud.domain], "periodic": list(cloud.periodic)}


# --- writing -------------------------------------------------------------------------------
def write_prediction(result: PredictionResult, out: str | os.PathLike) -> Path:
    """Write a :class:`PredictionResult` in the format of ``out``'s suffix."""
    out = Path(out)
    suffix = out.suffix
    names = result.field_names
    cloud = with_grid_faces(result.cloud)
    if suffix == ".vtu":
        data = {name: result.prediction[-1, :, c] for c, name in enumerate(names)}
        for k in range(result.prediction.shape[0]):
            data.update({f"{name}_step{k + 1:03d}": result.prediction[k, :, c]
                         for c, name in enumerate(names)})
        mesh = to_mesh(cloud, data)
        with atomic_path(out) as tmp:
            mesh.write(tmp, file_format="vtu")
        return out
    if suffix == ".pvd":
        return write_vtu_series(cloud, {name: result.prediction[:, :, c] for c, name in
                                        enumerate(names)}, out.parent, out.stem, result.times)
    if suffix in (".nc", ".zarr"):
        if result.cloud.manifold != "sphere":
            raise ValueError(f"out {out.name}: NetCDF and Zarr outputs need a lat/lon grid; "
                             f"this prediction is on a planar "
                             f"{'mesh' if getattr(cloud, 'faces', None) is not None else 'grid'}"
                             f" (use .vtu, .pvd or .h5)")
        conv = result.xarray or {}
        ds = to_xarray(result, lat_ascending=bool(conv.get("lat_ascending", False)),
                       lon_signed=bool(conv.get("lon_signed", False)),
                       time_reference=conv.get("time_reference"))
        return write_xarray(ds, out)
    if suffix == ".h5":
        traj = Trajectory(
            pos=result.cloud.pos.detach().cpu().double().numpy(),
            weights=result.cloud.weights.detach().cpu().double().numpy(),
            manifold=result.cloud.manifold, times=np.asarray(result.times, dtype=np.float64),
            fields={name: result.prediction[:, :, c] for c, name in enumerate(names)},
            faces=None if getattr(result.cloud, "faces", None) is None
            else result.cloud.faces.cpu().numpy(), grid=_grid_of(result.cloud),
            params={"predicted_from": result.source}, units=dict(result.units))
        return write_trajectory(out, traj, "predict", 0, 0)
    raise ValueError(f"out {str(out)!r}: unknown output format; use one of "
                     f"{', '.join(OUTPUT_SUFFIXES)}")
