"""Experiments: dataset, model and trainer built from a config; training and evaluation.

:func:`run_experiment` trains the model a config describes (on one process or
under ``torchrun``) and evaluates it; :func:`evaluate_checkpoint` evaluates a
saved model on any dataset of the same kind. Both return a dict of results and
write files::

    <out_dir>/config.yaml                  the resolved config (defaults filled in)
    <out_dir>/checkpoints/{last,best}.pt   training checkpoints (resumable, see Trainer)
    <out_dir>/metrics.jsonl, metrics.csv   one record per epoch
    <out_dir>/model.pt                     the final model (geo_neuralop.models.load_model)
    <out_dir>/evaluation/metrics.json      one-step and rollout errors
    <out_dir>/evaluation/predictions/*.h5  truth and prediction for `geo-neuralop render`

Data to model
-------------
Dataset samples are :class:`~geo_neuralop.geometry.PointCloud` objects with
``x [N, C_in * input_steps]`` and ``y [N, C_out]`` (normalized). The model's
input features are ``x`` followed by the standardized per-sample conditioning
scalars (e.g. the Reynolds number, constant over the points) and, for mesh
models, a one-hot encoding of the node types. An adapter per model family turns
samples into what the model takes:

- ``grid`` (FNO, AMFNO, LocalNO, UNet): ``[B, F, *grid_shape]`` tensors;
- ``sphere`` (SFNO, LocalSFNO): ``[B, F, nlat, nlon]`` tensors;
- ``mesh`` (MeshNO, MeshGraphNet): PyG batches of point clouds with ``x [N, F]``.

Losses and metrics use the quadrature weights stored with the data (grid,
sphere or mesh), so they approximate integrals. With ``model.residual`` (default
for time-dependent data whose inputs are its targets) the model predicts the
change of the state over one step: ``pred = last input frame + model(features)``.

Evaluation
----------
Errors are computed in normalized units (the training loss's units; every field
has zero mean and unit variance over the training split), relative errors per
sample and averaged:

- one step: every window of the split; for time-dependent data also the
  *persistence* forecast (the last input frame, unchanged);
- rollout (time-dependent data with inputs equal to targets): from the window
  starting at frame ``rollout_start`` (default 0) of each trajectory, the model is
  applied to its own output for ``rollout_steps`` steps
  (:func:`geo_neuralop.training.rollout`), with the error at every step next to
  that of persistence, and blow-up detection;
- prediction files (physical units) for the first trajectories (or samples).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from geo_neuralop.training.config import (
    MODEL_FAMILIES,
    ConfigError,
    dataset_problem,
    dump_config,
    load_config,
    read_yaml,
)
from geo_neuralop.training.losses import H1Loss, LpLoss
from geo_neuralop.training.metrics import MetricAverager, error_metrics
from geo_neuralop.training.rollout import rollout
from geo_neuralop.training.trainer import Trainer, TrainerConfig, move_to_device
from geo_neuralop.utils import atomic_path

logger = logging.getLogger(__name__)

__all__ = [
    "DataSpec",
    "evaluate_checkpoint",
    "evaluate_model",
    "format_results",
    "load_trained_model",
    "make_adapter",
    "run_experiment",
]

EXPERIMENT_FORMAT = "geo_neuralop.experiment"
DEFAULT_RUNS_DIR = "outputs/runs"


# --------------------------------------------------------------------------------------
# what the model needs to know about the data
# --------------------------------------------------------------------------------------


@dataclass
class DataSpec:
    """The data as the model sees it; stored in checkpoints so evaluation rebuilds it.

    Attributes
    ----------
    family : {"grid", "sphere", "mesh"}
        The model's view of the data (see the module docstring).
    kind : {"rollout", "static"}
        Time-dependent trajectories or one input/target pair per sample.
    inputs, targets : list of str
        Field names of the input frames and of the target.
    input_steps, frame_step : int
        Input frames per sample and frames per step.
    normalize : bool
    normalizer : dict or None
        :meth:`FieldNormalizer.to_dict` of the training data.
    conditioning_names : list of str
    conditioning_mean, conditioning_std : list of float
        Standardization of the conditioning scalars (over training samples).
    node_types : int
        One-hot node-type channels (0: none).
    residual : bool
        The model predicts the change of the last input frame.
    geometry : dict
        ``{"kind": "regular" | "sphere" | "mesh", "dim": d}`` plus ``shape``,
        ``domain``, ``periodic`` (regular grids) or ``shape``, ``grid`` (sphere).
    dataset : str
        The training dataset's folder.
    """

    family: str
    kind: str
    inputs: list[str]
    targets: list[str]
    input_steps: int = 1
    frame_step: int = 1
    normalize: bool = True
    normalizer: dict | None = None
    conditioning_names: list[str] = field(default_factory=list)
    conditioning_mean: list[float] = field(default_factory=list)
    conditioning_std: list[float] = field(default_factory=list)
    node_types: int = 0
    residual: bool = False
    geometry: dict = field(default_factory=dict)
    dataset: str = ""

    @property
    def state_channels(self) -> int:
        """Channels of one frame of the inputs."""
        return len(self.inputs)

    @property
    def static_channels(self) -> int:
        """Conditioning plus node-type channels."""
        return len(self.conditioning_names) + self.node_types

    @property
    def in_channels(self) -> int:
        """Model input channels: input frames, conditioning, node types."""
        return len(self.inputs) * self.input_steps + self.static_channels

    @property
    def out_channels(self) -> int:
        return len(self.targets)

    @property
    def can_rollout(self) -> bool:
        """Time-dependent data whose inputs are its targets: the model can be iterated."""
        return self.kind == "rollout" and list(self.inputs) == list(self.targets)

    @property
    def state_slice(self) -> slice:
        """Channels of the last input frame within the model input."""
        c = self.state_channels
        return slice((self.input_steps - 1) * c, self.input_steps * c)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: copy.deepcopy(v) for k, v in data.items() if k in known})

    def normalizer_object(self):
        """The training data's :class:`~geo_neuralop.data.FieldNormalizer` (or None)."""
        from geo_neuralop.data import FieldNormalizer

        return None if self.normalizer is None else FieldNormalizer.from_dict(self.normalizer)


def geometry_of(cloud) -> dict[str, Any]:
    """Geometry description of a dataset's point cloud (see :attr:`DataSpec.geometry`)."""
    shape = getattr(cloud, "grid_shape", None)
    dim = int(cloud.pos.shape[1])
    if shape is not None and cloud.manifold == "sphere":
        return {"kind": "sphere", "dim": dim, "shape": [int(n) for n in shape],
                "grid": str(cloud.grid)}
    if shape is not None:
        return {"kind": "regular", "dim": dim, "shape": [int(n) for n in shape],
                "domain": [[float(lo), float(hi)] for lo, hi in cloud.domain],
                "periodic": [bool(p) for p in cloud.periodic]}
    return {"kind": "mesh", "dim": dim}


_FAMILY_GEOMETRY = {"grid": ("regular",), "sphere": ("sphere",),
                    "mesh": ("mesh", "regular", "sphere")}
_SUGGESTED = {"regular": "fno, amfno, local_no, unet, mesh_no or mesh_graph_net",
              "sphere": "sfno, local_sfno, mesh_no or mesh_graph_net",
              "mesh": "mesh_no or mesh_graph_net"}


def check_family(family: str, geometry: Mapping[str, Any], model: str, where: str) -> None:
    """Raise ConfigError when a model family cannot run on the data's geometry."""
    if geometry["kind"] not in _FAMILY_GEOMETRY[family]:
        raise ConfigError([
            f"model.name: {model!r} works on {_FAMILY_GEOMETRY[family][0]} grids, but {where} "
            f"is a {geometry['kind']} dataset; use {_SUGGESTED[geometry['kind']]}"])


def _headers(root: Path, indices: Sequence[int]):
    from geo_neuralop.data.storage import read_header, sample_path

    return [read_header(sample_path(root, i)) for i in indices]


def build_data_spec(config: Mapping[str, Any], train) -> DataSpec:
    """The :class:`DataSpec` of a validated config and its training :class:`FieldDataset`."""
    data_cfg, model_cfg = config["data"], config["model"]
    family = MODEL_FAMILIES[model_cfg["name"]]
    geometry = geometry_of(train.cloud(train.indices[0]))
    check_family(family, geometry, model_cfg["name"], f"data.path {data_cfg['path']!r}")
    names: list[str] = list(train.conditioning_names) if data_cfg["conditioning"] else []
    mean: list[float] = []
    std: list[float] = []
    if names:
        params = [h.params for h in _headers(train.root, train.indices)]
        values = np.array([[float(p[n]) for n in names] for p in params], dtype=np.float64)
        mean = values.mean(0).tolist()
        # one training value (or all equal): scale by the value itself, so other values
        # give inputs of order one (relative deviations) instead of raw differences
        std = [s if s > 1e-6 * max(abs(m), 1e-12) else max(abs(m), 1.0)
               for s, m in zip(values.std(0).tolist(), mean, strict=True)]
    node_types = data_cfg["node_types"]
    if node_types == "auto":
        node_types = 0
        if family == "mesh":
            for index in train.indices[:4]:
                nt = train.trajectory(index).static.get("node_type")
                if nt is not None:
                    node_types = max(node_types, int(np.max(nt)) + 1)
    residual = model_cfg.get("residual", "auto")
    spec = DataSpec(
        family=family, kind=train.kind, inputs=list(train.inputs), targets=list(train.targets),
        input_steps=int(data_cfg["input_steps"]), frame_step=int(data_cfg["frame_step"]),
        normalize=bool(data_cfg["normalize"]),
        normalizer=train.normalizer.to_dict() if data_cfg["normalize"] else None,
        conditioning_names=names, conditioning_mean=mean, conditioning_std=std,
        node_types=int(node_types), geometry=geometry, dataset=str(data_cfg["path"]),
    )
    spec.residual = spec.can_rollout if residual == "auto" else bool(residual)
    if spec.residual and list(spec.inputs) != list(spec.targets):
        raise ConfigError([f"model.residual: true needs inputs equal to targets; the data has "
                           f"inputs {spec.inputs} and targets {spec.targets}"])
    return spec


# --------------------------------------------------------------------------------------
# features and adapters
# --------------------------------------------------------------------------------------


def static_features(spec: DataSpec, n: int, conditioning: torch.Tensor | None,
                    node_type: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """Conditioning and node-type channels of one sample, ``[n, spec.static_channels]``.

    Parameters
    ----------
    conditioning : torch.Tensor, shape [P] or [1, P], optional
        Raw per-sample scalars named by ``spec.conditioning_names``.
    node_type : torch.Tensor, shape [n], optional
        Integer node types (needed when ``spec.node_types > 0``).
    """
    parts = []
    if spec.conditioning_names:
        if conditioning is None:
            raise ValueError(f"the model needs the conditioning {spec.conditioning_names} but "
                             f"the sample has none")
        c = torch.as_tensor(conditioning, dtype=torch.float64).reshape(-1)
        if c.numel() != len(spec.conditioning_names):
            raise ValueError(f"conditioning has {c.numel()} values, the model expects "
                             f"{spec.conditioning_names}")
        mean = torch.tensor(spec.conditioning_mean, dtype=torch.float64)
        std = torch.tensor(spec.conditioning_std, dtype=torch.float64)
        parts.append(((c - mean) / std).to(dtype).expand(n, -1))
    if spec.node_types:
        if node_type is None:
            raise ValueError(f"the model expects {spec.node_types} node types but the data "
                             f"has no node_type")
        nt = torch.as_tensor(node_type).long().reshape(-1)
        if nt.numel() and (int(nt.min()) < 0 or int(nt.max()) >= spec.node_types):
            raise ValueError(f"node types must be in [0, {spec.node_types}), got values in "
                             f"[{int(nt.min())}, {int(nt.max())}]")
        parts.append(nn.functional.one_hot(nt, spec.node_types).to(dtype))
    if not parts:
        return torch.zeros(n, 0, dtype=dtype)
    return torch.cat(parts, dim=1)


def sample_features(spec: DataSpec, sample) -> torch.Tensor:
    """Model input features ``[N, spec.in_channels]`` of a dataset sample."""
    x = sample.x
    static = static_features(spec, x.shape[0], getattr(sample, "conditioning", None),
                             getattr(sample, "node_type", None), x.dtype)
    return torch.cat([x, static], dim=1)


class GridSamples(Dataset):
    """Samples as ``{"x": [F, *shape], "y": [C, *shape], "weights": [*shape]}`` tensors."""

    def __init__(self, base: Dataset, spec: DataSpec) -> None:
        self.base, self.spec = base, spec
        self.shape = tuple(spec.geometry["shape"])

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        s = self.base[item]
        if tuple(s.grid_shape) != self.shape:
            raise ValueError(f"sample {item} is on a {tuple(s.grid_shape)} grid, the adapter "
                             f"expects {self.shape}")
        x = sample_features(self.spec, s).T.reshape(-1, *self.shape).contiguous()
        y = s.y.T.reshape(-1, *self.shape).contiguous()
        return {"x": x, "y": y, "weights": s.weights.reshape(self.shape)}


class MeshSamples(Dataset):
    """Samples as point clouds whose ``x`` holds the model input features."""

    def __init__(self, base: Dataset, spec: DataSpec) -> None:
        self.base, self.spec = base, spec

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, item: int):
        s = self.base[item]
        s.x = sample_features(self.spec, s)
        return s


def _noisy(spec: DataSpec, features: torch.Tensor, noise_std: float, dim: int) -> torch.Tensor:
    """Gaussian noise of std ``noise_std`` added to the input frames (not the static channels)."""
    noise = torch.zeros_like(features)
    noise.narrow(dim, 0, spec.state_channels * spec.input_steps).normal_(0.0, noise_std)
    return features + noise


class GridAdapter:
    """Grid and sphere models: ``[B, F, *shape] -> [B, C, *shape]``; see the module docstring.

    ``noise_std > 0`` perturbs the input frames while the model trains (the target stays
    the true next state, so the model learns to undo small errors of its own rollouts).
    """

    channel_dim = 1

    def __init__(self, spec: DataSpec, noise_std: float = 0.0) -> None:
        self.spec, self.noise_std = spec, float(noise_std)
        geo = spec.geometry
        if spec.family == "sphere":
            self.extra = {"layout": "grid", "sphere": geo["grid"]}
        else:
            self.extra = {"layout": "grid", "domain": [tuple(d) for d in geo["domain"]],
                          "periodic": list(geo["periodic"])}

    def wrap(self, dataset: Dataset) -> Dataset:
        return GridSamples(dataset, self.spec)

    def collate(self):
        from torch.utils.data import default_collate

        return default_collate

    def batch_fn(self, batch: Mapping[str, torch.Tensor]):
        return batch["x"], batch["y"], {"weights": batch["weights"]}

    def forward(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        if self.noise_std > 0 and model.training:
            inputs = _noisy(self.spec, inputs, self.noise_std, 1)
        out = model(inputs)
        if self.spec.residual:
            out = out + inputs[:, self.spec.state_slice]
        return out

    def persistence(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs[:, self.spec.state_slice]

    def loss(self, name: str) -> nn.Module:
        relative = name.startswith("rel")
        if name.endswith("h1"):
            return H1Loss(relative=relative, **self.extra)
        return LpLoss(relative=relative, **self.extra)

    def metric_fn(self):
        return functools.partial(error_metrics, channel_names=self.spec.targets, **self.extra)

    # ---- rollouts -------------------------------------------------------------------
    def to_grid(self, values: torch.Tensor) -> torch.Tensor:
        """``[N, C]`` point values to ``[C, *shape]``."""
        return values.T.reshape(-1, *self.spec.geometry["shape"])

    def from_grid(self, values: torch.Tensor) -> torch.Tensor:
        """``[C, *shape]`` to ``[N, C]``."""
        return values.reshape(values.shape[0], -1).T

    def rollout_inputs(self, clouds, states, targets, statics):
        """Batch trajectories: states ``[B, kC, *shape]``, targets ``[T, B, kC, *shape]``."""
        x0 = torch.stack([self.to_grid(s) for s in states])
        tg = torch.stack([torch.stack([self.to_grid(f) for f in t]) for t in targets], dim=1)
        static = torch.stack([self.to_grid(s) for s in statics])
        weights = clouds[0].weights.reshape(self.spec.geometry["shape"])
        return x0, tg, static, {"weights": weights}

    def step_fn(self, model: nn.Module, static: torch.Tensor, context: Any):
        c = self.spec.state_channels

        def step(state: torch.Tensor) -> torch.Tensor:
            out = self.forward(model, torch.cat([state, static], dim=1))
            return torch.cat([state[:, c:], out], dim=1)

        return step

    def split_frames(self, frames: torch.Tensor, count: int) -> list[torch.Tensor]:
        """``[T, B, C, *shape]`` to ``count`` tensors ``[T, N, C]``."""
        t, b, c = frames.shape[:3]
        flat = frames.reshape(t, b, c, -1).permute(1, 0, 3, 2)
        return [flat[i] for i in range(count)]


class MeshAdapter:
    """Mesh models on PyG batches of point clouds; see the module docstring and
    :class:`GridAdapter` for ``noise_std``."""

    channel_dim = 1

    def __init__(self, spec: DataSpec, noise_std: float = 0.0) -> None:
        self.spec, self.noise_std = spec, float(noise_std)
        self.extra = {"layout": "points"}

    def wrap(self, dataset: Dataset) -> Dataset:
        return MeshSamples(dataset, self.spec)

    def collate(self):
        from torch_geometric.loader.dataloader import Collater

        return Collater(None)

    def batch_fn(self, batch):
        kwargs: dict[str, Any] = {"weights": batch.weights}
        if getattr(batch, "batch", None) is not None:
            kwargs["batch"] = batch.batch
            kwargs["num_graphs"] = int(batch.num_graphs)
        return batch, batch.y, kwargs

    def forward(self, model: nn.Module, inputs) -> torch.Tensor:
        x = inputs.x
        if self.noise_std > 0 and model.training:
            x = _noisy(self.spec, x, self.noise_std, 1)
        out = model(inputs, x=x)
        if self.spec.residual:
            out = out + x[:, self.spec.state_slice]
        return out

    def persistence(self, inputs) -> torch.Tensor:
        return inputs.x[:, self.spec.state_slice]

    def loss(self, name: str) -> nn.Module:
        if name.endswith("h1"):
            raise ConfigError([f"trainer.loss: {name!r} needs gradients, which only grid and "
                               f"sphere models provide; use rel_l2 or abs_l2"])
        return LpLoss(relative=name.startswith("rel"), layout="points")

    def metric_fn(self):
        return functools.partial(error_metrics, channel_names=self.spec.targets, **self.extra)

    def rollout_inputs(self, clouds, states, targets, statics):
        """Concatenate trajectories: states ``[sum N, kC]``, targets ``[T, sum N, kC]``."""
        from torch_geometric.data import Batch

        batch = Batch.from_data_list([copy.copy(c) for c in clouds])
        x0 = torch.cat(list(states))
        tg = torch.cat(list(targets), dim=1)
        static = torch.cat(list(statics))
        kwargs = {"weights": batch.weights, "batch": batch.batch, "num_graphs": len(clouds)}
        return x0, tg, static, {"cloud": batch, **kwargs}

    def step_fn(self, model: nn.Module, static: torch.Tensor, context: Any):
        c = self.spec.state_channels
        cloud = context["cloud"]

        def step(state: torch.Tensor) -> torch.Tensor:
            cloud.x = torch.cat([state, static], dim=1)
            out = self.forward(model, cloud)
            return torch.cat([state[:, c:], out], dim=1)

        return step

    def split_frames(self, frames: torch.Tensor, sizes: Sequence[int]) -> list[torch.Tensor]:
        """``[T, sum N, C]`` to tensors ``[T, N_i, C]``."""
        return list(frames.split(list(sizes), dim=1))


def make_adapter(spec: DataSpec, noise_std: float = 0.0) -> GridAdapter | MeshAdapter:
    """The adapter of the spec's model family (``noise_std``: see :class:`GridAdapter`)."""
    cls = MeshAdapter if spec.family == "mesh" else GridAdapter
    return cls(spec, noise_std)


# --------------------------------------------------------------------------------------
# building the pieces
# --------------------------------------------------------------------------------------


def build_model(model_cfg: Mapping[str, Any], spec: DataSpec) -> nn.Module:
    """The registered model of ``model_cfg`` with the data-dependent arguments filled in.

    ``in_channels``/``out_channels`` come from the data (a given value must
    agree); ``domain``/``periodic``/``grid_boundaries`` (regular grids),
    ``grid`` (sphere), ``pos_dim`` (MeshGraphNet) and ``dims`` (UNet) are filled
    when the model takes them and the config omits them.

    Raises
    ------
    ConfigError
        When a given channel count disagrees with the data or the model rejects
        its arguments (the model's message, under ``model``).
    """
    from geo_neuralop.models import get_model
    from geo_neuralop.models.registry import _accepted_keys, get_model_class

    name = model_cfg["name"]
    kwargs = {k: copy.deepcopy(v) for k, v in model_cfg.items() if k not in ("name", "residual")}
    errors = []
    for key, value in (("in_channels", spec.in_channels), ("out_channels", spec.out_channels)):
        if key in kwargs and kwargs[key] != value:
            errors.append(f"model.{key}: {kwargs[key]!r} given, but the data gives {value} "
                          f"({_channel_story(spec, key)}); leave it out to use the data's")
        kwargs[key] = value
    if errors:
        raise ConfigError(errors)
    accepted, _, _ = _accepted_keys(get_model_class(name))
    geo = spec.geometry
    fill: dict[str, Any] = {}
    if geo["kind"] == "regular":
        fill = {"domain": geo["domain"], "periodic": geo["periodic"],
                "grid_boundaries": geo["domain"], "dims": len(geo["shape"])}
    elif geo["kind"] == "sphere":
        fill = {"grid": geo["grid"]}
    if name == "mesh_graph_net":
        fill["pos_dim"] = geo["dim"]
    for key, value in fill.items():
        if key in accepted and key not in kwargs:
            kwargs[key] = copy.deepcopy(value)
    try:
        return get_model(name, **kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError([f"model: {name!r} rejected its arguments: {error}"]) from error


def _channel_story(spec: DataSpec, key: str) -> str:
    if key == "out_channels":
        return f"targets {spec.targets}"
    parts = [f"{len(spec.inputs)} fields {spec.inputs} x {spec.input_steps} frame(s)"]
    if spec.conditioning_names:
        parts.append(f"conditioning {spec.conditioning_names}")
    if spec.node_types:
        parts.append(f"{spec.node_types} node types")
    return " + ".join(parts)


def _even_subset(dataset: Dataset, limit: int | None) -> Dataset:
    n = len(dataset)  # type: ignore[arg-type]
    if limit is None or limit >= n:
        return dataset
    idx = np.unique(np.linspace(0, n - 1, limit).round().astype(int))
    return Subset(dataset, idx.tolist())


def _load_split(path: str, split: str, spec_like: Mapping[str, Any], **kwargs):
    from geo_neuralop.data import DatasetError, load_dataset

    try:
        return load_dataset(path, split, input_steps=spec_like["input_steps"],
                            frame_step=spec_like["frame_step"],
                            normalize=spec_like["normalize"], **kwargs)
    except DatasetError as error:
        raise ConfigError([f"data: {error}"]) from error


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


class ExperimentTrainer(Trainer):
    """A :class:`Trainer` whose checkpoints also hold the experiment (config and data spec)."""

    def __init__(self, *args: Any, experiment: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.experiment = dict(experiment)

    def state_dict(self, epoch_sums: Mapping[str, float] | None = None) -> dict[str, Any]:
        state = super().state_dict(epoch_sums)
        state["experiment"] = self.experiment
        return state


@dataclass
class Experiment:
    """Everything :func:`build_experiment` makes from a config."""

    config: dict[str, Any]
    spec: DataSpec
    model: nn.Module
    adapter: GridAdapter | MeshAdapter
    trainer: ExperimentTrainer
    out_dir: Path

    @property
    def state(self) -> dict[str, Any]:
        """Plain-value description stored in checkpoints and model files."""
        return self.trainer.experiment


def build_experiment(config: Mapping[str, Any] | str | os.PathLike,
                     out_dir: str | os.PathLike | None = None,
                     overrides: Sequence[str] = ()) -> Experiment:
    """Load the data, build the model and the trainer of a config (nothing is trained yet).

    Parameters
    ----------
    config : mapping or path
        A config (validated here) or a YAML file.
    out_dir : path, optional
        Run folder; overrides ``trainer.out_dir`` (default ``outputs/runs/<name>``).
    overrides : sequence of str
        ``key.path=value`` assignments applied before validation.
    """
    cfg = load_config(config, overrides)
    trainer_cfg = cfg["trainer"]
    if out_dir is not None:
        trainer_cfg["out_dir"] = str(out_dir)
    elif trainer_cfg.get("out_dir") is None:
        trainer_cfg["out_dir"] = f"{DEFAULT_RUNS_DIR}/{cfg['name']}"
    data_cfg = cfg["data"]
    common = {"verify": data_cfg["verify"]}
    train = _load_split(data_cfg["path"], "train", data_cfg, **common)
    spec = build_data_spec(cfg, train)
    val = None
    if data_cfg["val_split"] is not None:
        val = _load_split(data_cfg["path"], data_cfg["val_split"], data_cfg, **common)
    torch.manual_seed(int(trainer_cfg["seed"]))  # the model's initial weights
    model = build_model(cfg["model"], spec)
    cfg["model"] = {"name": cfg["model"]["name"], "residual": spec.residual,
                    **copy.deepcopy(model.config)}
    adapter = make_adapter(spec, trainer_cfg["noise_std"])
    loss = adapter.loss(trainer_cfg["loss"])
    settings = {k: v for k, v in trainer_cfg.items() if k not in ("loss", "noise_std")}
    try:
        tcfg = TrainerConfig.from_dict(settings, path="trainer")
    except (TypeError, ValueError) as error:
        raise ConfigError([str(error)]) from error
    train_set = adapter.wrap(_even_subset(train, data_cfg["max_train_samples"]))
    val_set = None if val is None else adapter.wrap(_even_subset(val, data_cfg["max_val_samples"]))
    state = {"format": EXPERIMENT_FORMAT, "config": cfg, "data": spec.to_dict(),
             "model_name": cfg["model"]["name"]}
    trainer = ExperimentTrainer(model, train_set, val_set, loss, tcfg,
                                batch_fn=adapter.batch_fn, forward_fn=adapter.forward,
                                metric_fn=adapter.metric_fn(), experiment=state)
    return Experiment(cfg, spec, model, adapter, trainer, Path(tcfg.out_dir))


def _check_resume(out_dir: Path, cfg: Mapping[str, Any]) -> None:
    saved = out_dir / "config.yaml"
    if not saved.exists():
        return
    old = read_yaml(saved.read_text(encoding="utf-8"), str(saved)) or {}
    changed = [f"{section}.{key}" for section in ("data", "model")
               for key in sorted(set(old.get(section, {})) | set(cfg[section]))
               if old.get(section, {}).get(key) != cfg[section].get(key)]
    if changed:
        raise ConfigError([f"--resume: the run in {out_dir} was started with other settings "
                           f"({', '.join(changed)}); resume with the same config or choose "
                           f"another --out"])


def run_experiment(config: Mapping[str, Any] | str | os.PathLike,
                   out_dir: str | os.PathLike | None = None, resume: bool = False, *,
                   overrides: Sequence[str] = (), overwrite: bool = False,
                   evaluate: bool | None = None) -> dict[str, Any]:
    """Train the model of a config, save it, and evaluate it on the test split.

    Parameters
    ----------
    config : mapping or path
        Experiment config (see :mod:`geo_neuralop.training.config`).
    out_dir : path, optional
        Run folder (default ``trainer.out_dir``, else ``outputs/runs/<name>``).
    resume : bool
        Continue the run in ``out_dir`` from its newest checkpoint (a finished
        run is only evaluated again).
    overrides : sequence of str
        ``key.path=value`` settings applied to the config.
    overwrite : bool
        Start afresh even if ``out_dir`` holds checkpoints of an earlier run.
    evaluate : bool, optional
        Evaluate after training (default ``evaluation.after_training``).

    Returns
    -------
    dict
        ``out_dir``, ``config`` (resolved), ``history`` (per-epoch metrics),
        ``train_time_s``, ``model_path``, ``checkpoint`` (the one evaluated),
        ``rank`` and ``evaluation`` (see :func:`evaluate_model`; None on ranks
        other than 0 or when not evaluated).

    Raises
    ------
    ConfigError
        Invalid config, missing dataset, or ``resume`` with a different config.
    NonFiniteLossError, TrainingInterrupted
        From the trainer.
    """
    from geo_neuralop.models import save_model

    exp = build_experiment(config, out_dir, overrides)
    cfg, out = exp.config, exp.out_dir
    if resume:
        _check_resume(out, cfg)
    if _rank() == 0:
        if not resume and not overwrite and exp.trainer.checkpoints.exists():
            raise ConfigError([f"trainer.out_dir: {out} already holds a run; pass --resume to "
                               f"continue it, --overwrite to start over, or choose another "
                               f"--out"])
        dump_config(cfg, out / "config.yaml")
    start = time.perf_counter()
    history = exp.trainer.fit(resume=resume, overwrite=overwrite)
    train_time = time.perf_counter() - start
    rank = exp.trainer.info.rank
    result: dict[str, Any] = {"out_dir": str(out), "config": cfg, "history": history,
                              "train_time_s": train_time, "rank": rank, "evaluation": None,
                              "model_path": None, "checkpoint": None}
    if rank != 0:
        return result
    model_path = out / "model.pt"
    save_model(exp.model, model_path, extra={"experiment": exp.state})
    result["model_path"] = str(model_path)
    if evaluate is None:
        evaluate = cfg["evaluation"]["after_training"]
    if not evaluate:
        return result
    best = exp.trainer.checkpoints.best_path
    chosen = exp.trainer.checkpoints.last_path
    if cfg["evaluation"]["checkpoint"] == "best" and best.exists():
        chosen = best
    model, state = load_trained_model(chosen)
    result["checkpoint"] = str(chosen)
    result["evaluation"] = evaluate_model(
        model, state, cfg["data"]["path"], out_dir=out / "evaluation", checkpoint=str(chosen))
    return result


# --------------------------------------------------------------------------------------
# loading trained models
# --------------------------------------------------------------------------------------


def _resolve_checkpoint(path: Path) -> Path:
    if not path.is_dir():
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint at {path}")
        return path
    for candidate in (path / "checkpoints" / "best.pt", path / "checkpoints" / "last.pt",
                      path / "model.pt", path / "best.pt", path / "last.pt"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{path} is a folder without checkpoints (checkpoints/best.pt, "
                            f"checkpoints/last.pt or model.pt)")


def load_trained_model(checkpoint: str | os.PathLike,
                       map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The model and experiment description from a run folder, checkpoint or model file.

    Parameters
    ----------
    checkpoint : path
        A run folder (``checkpoints/best.pt``, else ``last.pt``, else ``model.pt``
        is used), a training checkpoint or a ``model.pt`` file written by
        :func:`run_experiment`.

    Returns
    -------
    (nn.Module, dict)
        The model in eval mode and the experiment (``config``, ``data``,
        ``model_name``, ``checkpoint``).

    Raises
    ------
    FileNotFoundError
        No such file or no checkpoint in the folder.
    ValueError
        Not a geo_neuralop checkpoint, or one without the experiment description.
    """
    from geo_neuralop.models import get_model
    from geo_neuralop.models.checkpoint import FORMAT as MODEL_FORMAT
    from geo_neuralop.models.checkpoint import load_model, read_checkpoint
    from geo_neuralop.training.checkpointing import FORMAT as TRAIN_FORMAT
    from geo_neuralop.training.checkpointing import load_checkpoint

    path = _resolve_checkpoint(Path(checkpoint))
    state = load_checkpoint(path, map_location="cpu")
    if state.get("format") == MODEL_FORMAT:
        extra = read_checkpoint(path).get("extra") or {}
        experiment = extra.get("experiment") if isinstance(extra, dict) else None
        model = load_model(path, map_location=map_location)
    elif state.get("format") == TRAIN_FORMAT:
        experiment = state.get("experiment")
        if experiment is None:
            raise ValueError(f"{path} is a training checkpoint without an experiment "
                             f"description (not written by geo-neuralop train)")
        model = get_model(experiment["model_name"], **state["model_config"])
        model.load_state_dict(state["model"])
        model = model.to(map_location)
    else:
        raise ValueError(f"{path} is not a geo_neuralop checkpoint (format="
                         f"{state.get('format')!r})")
    if not isinstance(experiment, dict) or experiment.get("format") != EXPERIMENT_FORMAT:
        raise ValueError(f"{path} holds no experiment description (config and data); "
                         f"evaluate needs a model written by geo-neuralop train")
    model.eval()
    return model, {**experiment, "checkpoint": str(path)}


# --------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------


def _select_device(name: str) -> torch.device:
    from geo_neuralop.training.distributed import select_device

    return select_device(name)


def _mean_dict(values: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(values.items())}


def _one_step(model, adapter, dataset: Dataset, batch_size: int, device: torch.device,
              with_persistence: bool) -> dict[str, Any]:
    loader = DataLoader(adapter.wrap(dataset), batch_size=batch_size, shuffle=False,
                        collate_fn=adapter.collate())
    metric = adapter.metric_fn()
    model_avg, base_avg = MetricAverager(), MetricAverager()
    with torch.no_grad():
        for batch in loader:
            inputs, target, kwargs = adapter.batch_fn(move_to_device(batch, device))
            pred = adapter.forward(model, inputs)
            model_avg.update(metric(pred, target, **kwargs))
            if with_persistence:
                base_avg.update(metric(adapter.persistence(inputs), target, **kwargs))
    return {"samples": len(dataset),  # type: ignore[arg-type]
            "model": _mean_dict(model_avg.compute(distributed=False)),
            "persistence": _mean_dict(base_avg.compute(distributed=False))
            if with_persistence else None}


def _frames(dataset, index: int, names: Sequence[str]) -> torch.Tensor:
    """Normalized frames ``[F, N, C]`` of trajectory ``index``."""
    traj = dataset.trajectory(index)
    data = np.stack([traj.fields[n] for n in names], axis=-1)
    x = torch.from_numpy(np.ascontiguousarray(data)).to(dataset.dtype)
    return dataset.normalizer.encode(x, list(names)) if dataset.normalize else x


def _window(frames: torch.Tensor, start: int, k: int, s: int) -> torch.Tensor:
    """Frames ``start, start + s, ..`` (k of them) as ``[N, k * C]`` (frame-major)."""
    w = frames[start:start + (k - 1) * s + 1:s]
    return w.permute(1, 0, 2).reshape(frames.shape[1], -1)


def _rollout(model, adapter, spec: DataSpec, dataset, steps: int | None, max_traj: int | None,
             blowup: float | None, device: torch.device, start: int = 0
             ) -> dict[str, Any] | None:
    indices = list(dataset.indices)[:max_traj] if max_traj else list(dataset.indices)
    k, s = spec.input_steps, spec.frame_step
    headers = _headers(Path(dataset.root), indices)
    available = min((h.num_frames - 1 - start) // s - (k - 1) for h in headers)
    if available < 1:
        return None
    steps = available if steps is None else min(steps, available)
    if steps < 1:
        return None
    clouds, states, targets, statics, times = [], [], [], [], []
    for index in indices:
        frames = _frames(dataset, index, spec.inputs)
        traj = dataset.trajectory(index)
        cloud = dataset.cloud(index)
        cond = None
        if spec.conditioning_names:
            cond = torch.tensor([float(traj.params[n]) for n in spec.conditioning_names])
        nt = traj.static.get("node_type")
        static = static_features(spec, frames.shape[1], cond,
                                 None if nt is None else torch.as_tensor(nt), frames.dtype)
        clouds.append(cloud)
        states.append(_window(frames, start, k, s))
        targets.append(torch.stack([_window(frames, start + t * s, k, s)
                                    for t in range(1, steps + 1)]))
        statics.append(static)
        times.append([float(traj.times[start + (k - 1 + t) * s]) for t in range(1, steps + 1)])
    x0, tg, static, context = adapter.rollout_inputs(clouds, states, targets, statics)
    x0, tg, static = x0.to(device), tg.to(device), static.to(device)
    context = {k_: move_to_device(v, device) for k_, v in context.items()}
    c = spec.state_channels
    metric = adapter.metric_fn()
    kwargs = {k_: v for k_, v in context.items() if k_ != "cloud"}

    def metric_fn(pred: torch.Tensor, target: torch.Tensor):
        return metric(pred[:, -c:], target[:, -c:], **kwargs)

    start = time.perf_counter()
    result = rollout(adapter.step_fn(model, static, context), x0, steps, targets=tg,
                     metric_fn=metric_fn, blowup_factor=blowup, channel_dim=1)
    elapsed = time.perf_counter() - start
    summary = result.to_dict()
    model_err = summary["errors"].get("rel_l2", [])
    base_err = summary["persistence_errors"].get("rel_l2", [])
    done = [(m, b) for m, b in zip(model_err, base_err, strict=True) if m is not None]
    mean_model = float(np.mean([m for m, _ in done])) if done else math.nan
    mean_base = float(np.mean([b for _, b in done if b is not None])) if done else math.nan
    out = {
        "trajectories": indices, "start_frame": start, "steps": steps, "time_s": elapsed,
        "stable": summary["stable"], "steps_completed": summary["steps_completed"],
        "failure_step": summary["failure_step"], "failure_reason": summary["failure_reason"],
        "model": summary["errors"], "persistence": summary["persistence_errors"],
        "mean_rel_l2": {"model": mean_model, "persistence": mean_base},
        "beats_persistence": bool(summary["stable"] and mean_model < mean_base),
    }
    preds = None if result.predictions is None else result.predictions[:, :, -c:]
    truth = tg[:, :, -c:]
    return {"summary": out, "clouds": clouds, "predictions": preds, "truth": truth,
            "times": times, "sizes": [cl.num_nodes for cl in clouds]}


def grid_faces(shape: Sequence[int]) -> torch.Tensor:
    """Two triangles per cell of a 2D grid whose points are numbered ``i * ny + j``, ``[F, 3]``."""
    nx, ny = (int(n) for n in shape)
    index = torch.arange(nx * ny).reshape(nx, ny)
    a, b = index[:-1, :-1].reshape(-1), index[1:, :-1].reshape(-1)
    c, d = index[1:, 1:].reshape(-1), index[:-1, 1:].reshape(-1)
    return torch.cat([torch.stack([a, b, c], 1), torch.stack([a, c, d], 1)])


def _drawable(cloud):
    """The cloud, triangulated when it is a 2D regular grid (so renderers draw surfaces)."""
    from geo_neuralop.geometry import PointCloud

    shape = getattr(cloud, "grid_shape", None)
    if (shape is None or cloud.manifold != "euclidean" or len(shape) != 2
            or getattr(cloud, "faces", None) is not None or min(shape) < 2):
        return cloud
    return PointCloud(cloud.pos, cloud.weights, manifold=cloud.manifold, faces=grid_faces(shape),
                      grid_shape=tuple(shape), domain=cloud.domain, periodic=cloud.periodic)


def _write_predictions(out_dir: Path, spec: DataSpec, adapter, clouds, truth, prediction,
                       times, sizes, names: Sequence[str], limit: int, prefix: str
                       ) -> list[str]:
    from geo_neuralop.data import save_predictions

    if limit <= 0 or prediction is None:
        return []
    normalizer = spec.normalizer_object() if spec.normalize else None
    done = prediction.shape[0]
    count = min(limit, len(clouds))
    if spec.family == "mesh":
        truth_list = adapter.split_frames(truth[:done].cpu(), sizes)
        pred_list = adapter.split_frames(prediction.cpu(), sizes)
    else:
        truth_list = adapter.split_frames(truth[:done].cpu(), len(clouds))
        pred_list = adapter.split_frames(prediction.cpu(), len(clouds))
    paths = []
    for i in range(count):
        t, p = truth_list[i], pred_list[i]
        if normalizer is not None:
            t = normalizer.decode(t, list(spec.targets))
            p = normalizer.decode(p, list(spec.targets))
        path = out_dir / f"{prefix}{i:03d}.h5"
        save_predictions(path, _drawable(clouds[i]), t, p, list(names), times[i][:done])
        paths.append(str(path))
    return paths


def _static_predictions(model, adapter, spec: DataSpec, dataset, limit: int,
                        device: torch.device, out_dir: Path, split: str) -> list[str]:
    from geo_neuralop.data import save_predictions

    normalizer = spec.normalizer_object() if spec.normalize else None
    wrapped = adapter.wrap(dataset)
    collate = adapter.collate()
    paths = []
    with torch.no_grad():
        for i in range(min(limit, len(dataset))):
            sample = dataset[i]
            batch = move_to_device(collate([wrapped[i]]), device)
            inputs, target, _ = adapter.batch_fn(batch)
            pred = adapter.forward(model, inputs)
            if spec.family != "mesh":
                pred, target = adapter.from_grid(pred[0]), adapter.from_grid(target[0])
            pred, target = pred.cpu(), target.cpu()
            if normalizer is not None:
                pred = normalizer.decode(pred, list(spec.targets))
                target = normalizer.decode(target, list(spec.targets))
            path = out_dir / f"{split}_sample{i:03d}.h5"
            cloud = _drawable(dataset.cloud(int(sample.trajectory)))
            save_predictions(path, cloud, target[None], pred[None], list(spec.targets),
                             [float(sample.frame_time)])
            paths.append(str(path))
    return paths


def evaluate_model(model: nn.Module, experiment: Mapping[str, Any],
                   data: str | os.PathLike | None = None, split: str | None = None,
                   rollout_steps: int | None | str = "config",
                   out_dir: str | os.PathLike | None = None, *, checkpoint: str | None = None,
                   settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One-step and rollout errors of a trained model, with the persistence baseline.

    Parameters
    ----------
    model : nn.Module
        The trained model.
    experiment : mapping
        Its experiment description (``config``, ``data``, ``model_name``), as stored
        in checkpoints by :func:`run_experiment`.
    data : path, optional
        Dataset folder (default: the training dataset). It must hold the same
        fields; any grid resolution or mesh works for resolution-independent models.
        The training normalizer is used, not the dataset's.
    split : str, optional
        Default ``evaluation.split`` of the config.
    rollout_steps : int or None
        Steps of the rollout (None: as many as the trajectories allow; 0: none;
        default ``evaluation.rollout_steps`` of the config).
    out_dir : path, optional
        Where ``metrics.json`` and ``predictions/`` go (nothing written if None).
    checkpoint : str, optional
        Recorded in the results.
    settings : mapping, optional
        Overrides of the config's ``evaluation`` section.

    Returns
    -------
    dict
        ``one_step`` (``model`` and ``persistence`` metric means), ``rollout``
        (per-step errors of model and persistence, ``mean_rel_l2``, stability,
        ``beats_persistence``) or None, ``predictions`` (files), ``time_s``.
    """
    cfg = experiment["config"]
    spec = DataSpec.from_dict(experiment["data"])
    ev = dict(cfg.get("evaluation", {}))
    ev.update(settings or {})
    split = split or ev.get("split", "test")
    if rollout_steps == "config":
        rollout_steps = ev.get("rollout_steps")
    data = str(data) if data is not None else cfg["data"]["path"]
    problem = dataset_problem(data)
    if problem:
        raise ConfigError([f"--data: {problem}"])
    t_start = time.perf_counter()
    dataset = _load_split(data, split, {"input_steps": spec.input_steps,
                                        "frame_step": spec.frame_step,
                                        "normalize": spec.normalize},
                          verify=bool(cfg["data"].get("verify", True)),
                          inputs=spec.inputs, targets=spec.targets)
    if spec.normalize:
        dataset.normalizer = spec.normalizer_object()  # the model's, not the dataset's
    geometry = geometry_of(dataset.cloud(dataset.indices[0]))
    check_family(spec.family, geometry, experiment["model_name"], f"--data {data!r}")
    spec.geometry = geometry
    adapter = make_adapter(spec)
    device = _select_device(ev.get("device", "auto"))
    model = model.to(device).eval()
    batch_size = ev.get("batch_size") or cfg["trainer"].get("eval_batch_size") or \
        cfg["trainer"].get("batch_size", 8)
    subset = _even_subset(dataset, ev.get("max_samples"))
    one_step = _one_step(model, adapter, subset, int(batch_size), device,
                         with_persistence=spec.can_rollout)
    t_one = time.perf_counter() - t_start
    out = Path(out_dir) if out_dir is not None else None
    pred_dir = out / "predictions" if out is not None else None
    limit = int(ev.get("prediction_files", 2)) if out is not None else 0
    results: dict[str, Any] = {
        "model": experiment["model_name"], "checkpoint": checkpoint or experiment.get(
            "checkpoint"), "dataset": data, "split": split, "units": "normalized",
        "fields": list(spec.targets), "one_step": one_step, "rollout": None,
        "predictions": [],
    }
    t_roll = 0.0
    with torch.no_grad():
        if spec.can_rollout and rollout_steps != 0:
            roll = _rollout(model, adapter, spec, dataset, rollout_steps,
                            ev.get("max_trajectories"), ev.get("blowup_factor", 1e3), device,
                            int(ev.get("rollout_start", 0)))
            if roll is not None:
                results["rollout"] = roll["summary"]
                t_roll = roll["summary"]["time_s"]
                if pred_dir is not None:
                    results["predictions"] = _write_predictions(
                        pred_dir, spec, adapter, roll["clouds"], roll["truth"],
                        roll["predictions"], roll["times"], roll["sizes"], spec.targets, limit,
                        f"{split}_rollout")
        elif pred_dir is not None and limit > 0:
            results["predictions"] = _static_predictions(model, adapter, spec, dataset, limit,
                                                         device, pred_dir, split)
    results["time_s"] = {"one_step": t_one, "rollout": t_roll,
                         "total": time.perf_counter() - t_start}
    if out is not None:
        results["metrics_path"] = str(out / "metrics.json")
        with atomic_path(out / "metrics.json") as tmp:
            tmp.write_text(json.dumps(_json_ready(results), indent=2) + "\n", encoding="utf-8")
    return results


def _json_ready(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def evaluate_checkpoint(checkpoint: str | os.PathLike, data: str | os.PathLike | None = None,
                        split: str | None = None, rollout_steps: int | None | str = "config",
                        out_dir: str | os.PathLike | None = None, *,
                        device: str | None = None) -> dict[str, Any]:
    """Evaluate a trained model (run folder, training checkpoint or ``model.pt``).

    Parameters
    ----------
    checkpoint : path
        See :func:`load_trained_model`.
    data : path, optional
        Dataset folder (default: the one the model was trained on).
    split : str, optional
        Default: the config's ``evaluation.split`` (``test``).
    rollout_steps : int or None
        See :func:`evaluate_model`.
    out_dir : path, optional
        Default: ``evaluation/`` in the run folder of the checkpoint.
    device : str, optional
        Default: the config's ``evaluation.device``.

    Returns
    -------
    dict
        See :func:`evaluate_model`; ``metrics_path`` names the JSON file.
    """
    model, experiment = load_trained_model(checkpoint)
    path = Path(experiment["checkpoint"])
    if out_dir is None:
        run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        out_dir = run / "evaluation"
    settings = {"device": device} if device else None
    return evaluate_model(model, experiment, data, split, rollout_steps, out_dir,
                          checkpoint=str(path), settings=settings)


# --------------------------------------------------------------------------------------
# the printed table
# --------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.4g}"


def format_results(results: Mapping[str, Any], max_rows: int = 12) -> str:
    """A plain-text table of :func:`evaluate_model` results."""
    lines = [f"model {results['model']} on {results['dataset']} [{results['split']}], errors "
             f"in {results['units']} units"]
    one = results["one_step"]
    base = one.get("persistence")
    lines.append(f"one-step ({one['samples']} samples)")
    lines.append(f"  {'metric':<24}{'model':>12}" + (f"{'persistence':>14}" if base else ""))
    names = [n for n in ("rel_l2", "rel_h1", "abs_l2", "abs_h1") if n in one["model"]]
    if len(results.get("fields", [])) > 1:
        names += [f"{n}/{f}" for n in ("rel_l2", "rel_h1") for f in results["fields"]
                  if f"{n}/{f}" in one["model"]]
    for name in names:
        row = f"  {name:<24}{_fmt(one['model'][name]):>12}"
        lines.append(row + (f"{_fmt(base.get(name)):>14}" if base else ""))
    roll = results.get("rollout")
    if roll:
        start = f" from frame {roll['start_frame']}" if roll.get("start_frame") else ""
        lines.append(f"rollout ({len(roll['trajectories'])} trajectories, {roll['steps']} "
                     f"steps{start}, relative L2 per step)")
        lines.append(f"  {'step':<24}{'model':>12}{'persistence':>14}")
        model_err = roll["model"].get("rel_l2", [])
        base_err = roll["persistence"].get("rel_l2", [])
        steps = len(model_err)
        shown = sorted(set(np.unique(np.linspace(1, steps, min(max_rows, steps))
                                     .round().astype(int)).tolist()))
        for t in shown:
            lines.append(f"  {t:<24}{_fmt(model_err[t - 1]):>12}{_fmt(base_err[t - 1]):>14}")
        mean = roll["mean_rel_l2"]
        lines.append(f"  {'mean':<24}{_fmt(mean['model']):>12}{_fmt(mean['persistence']):>14}")
        if roll["stable"]:
            verdict = "beats" if roll["beats_persistence"] else "does NOT beat"
            lines.append(f"  stable over {roll['steps']} steps; the model {verdict} "
                         f"persistence")
        else:
            lines.append(f"  UNSTABLE: failed at step {roll['failure_step']} "
                         f"({roll['failure_reason']})")
    for path in results.get("predictions", []):
        lines.append(f"predictions: {path}")
    if results.get("metrics_path"):
        lines.append(f"metrics: {results['metrics_path']}")
    return "\n".join(lines)
