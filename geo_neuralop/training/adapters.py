"""Data adapters: how the samples of a dataset reach each model family, and back.

A :class:`DataSpec` describes the data as a trained model sees it (fields, frames,
conditioning, node types, geometry; stored in checkpoints). The model's input
features are the input frames, then the standardized per-sample conditioning
scalars, then one-hot node types. A :class:`DataAdapter` per family turns
samples into model inputs: :class:`GridAdapter` (``grid`` and ``sphere``
families: ``[B, F, *shape]`` tensors, the grid's quadrature) and
:class:`MeshAdapter` (``mesh``: PyG batches, each cloud's quadrature). With
``DataSpec.residual`` the model predicts the change of the last input frame.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, Subset, default_collate
from torch_geometric.data import Batch
from torch_geometric.loader.dataloader import Collater

from geo_neuralop.data import DatasetError, FieldDataset, FieldNormalizer, load_dataset
from geo_neuralop.data.loaders import GridTensorDataset
from geo_neuralop.data.storage import read_header, sample_path
from geo_neuralop.geometry import (
    GridSpec,
    PointCloud,
    PointQuadrature,
    Quadrature,
    SphereGridSpec,
    as_quadrature,
)
from geo_neuralop.models.registry import get_model_class
from geo_neuralop.training.config import ConfigError
from geo_neuralop.training.losses import H1Loss, LpLoss, SobolevLoss
from geo_neuralop.training.metrics import error_metrics

__all__ = [
    "DataAdapter",
    "DataSpec",
    "GridAdapter",
    "MeshAdapter",
    "build_data_spec",
    "even_subset",
    "load_split",
    "make_adapter",
    "model_family",
    "sample_features",
    "static_features",
]


def model_family(name: str) -> str:
    """The data family (``grid``, ``sphere``, ``mesh``) of a registered model.

    Raises
    ------
    ConfigError
        When the model has no family (no data adapter).
    """
    cls = get_model_class(name)
    family = getattr(cls, "family", None)
    if family is None:
        raise ConfigError([f"model.name: {name!r} has no data family, so the experiment cannot "
                           f"feed it data; register it with register_model(name, family=...)"])
    return family


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
    units : dict of str to str
        Units of every input and target field (from the dataset card; ``""`` unknown).
    frame_interval : float or None
        Physical time between the model's input and its target (rollout data).
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
    units: dict = field(default_factory=dict)
    frame_interval: float | None = None

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

    def normalizer_object(self) -> FieldNormalizer | None:
        """The training data's :class:`~geo_neuralop.data.FieldNormalizer` (or None)."""
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


_SUGGESTED = {"regular": "fno, tfno, mg_tfno, lsm, amfno, local_no, unet, mesh_no, deeponet, "
                         "transolver or mesh_graph_net",
              "sphere": "sfno, local_sfno, mesh_no, deeponet, transolver or mesh_graph_net",
              "mesh": "mesh_no, deeponet, transolver or mesh_graph_net"}


def check_family(family: str, geometry: Mapping[str, Any], model: str, where: str) -> None:
    """Raise ConfigError when a model family cannot run on the data's geometry."""
    if geometry["kind"] not in _FAMILY_GEOMETRY[family]:
        raise ConfigError([
            f"model.name: {model!r} works on {_FAMILY_GEOMETRY[family][0]} grids, but {where} "
            f"is a {geometry['kind']} dataset; use {_SUGGESTED[geometry['kind']]}"])


def trajectory_headers(root: Path, indices: Sequence[int]) -> list:
    """The stored headers of the dataset's trajectories ``indices``."""
    return [read_header(sample_path(root, i)) for i in indices]


def build_data_spec(config: Mapping[str, Any], train) -> DataSpec:
    """The :class:`DataSpec` of a validated config and its training :class:`FieldDataset`."""
    data_cfg, model_cfg = config["data"], config["model"]
    family = model_family(model_cfg["name"])
    geometry = geometry_of(train.cloud(train.indices[0]))
    check_family(family, geometry, model_cfg["name"], f"data.path {data_cfg['path']!r}")
    names: list[str] = list(train.conditioning_names) if data_cfg["conditioning"] else []
    mean: list[float] = []
    std: list[float] = []
    if names:
        params = [h.params for h in trajectory_headers(train.root, train.indices)]
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
    card_fields = train.card.get("fields", {}) or {}
    units = {n: str((card_fields.get(n) or {}).get("units", "") or "")
             for n in dict.fromkeys([*train.inputs, *train.targets])}
    frame_interval = None
    if train.kind == "rollout":
        times = np.asarray(train.trajectory(train.indices[0]).times, dtype=np.float64)
        if times.size > int(data_cfg["frame_step"]):
            frame_interval = float(times[int(data_cfg["frame_step"])] - times[0])
    spec = DataSpec(
        family=family, kind=train.kind, inputs=list(train.inputs), targets=list(train.targets),
        input_steps=int(data_cfg["input_steps"]), frame_step=int(data_cfg["frame_step"]),
        normalize=bool(data_cfg["normalize"]),
        normalizer=train.normalizer.to_dict() if data_cfg["normalize"] else None,
        conditioning_names=names, conditioning_mean=mean, conditioning_std=std,
        node_types=int(node_types), geometry=geometry, dataset=str(data_cfg["path"]),
        units=units, frame_interval=frame_interval,
    )
    spec.residual = spec.can_rollout if residual == "auto" else bool(residual)
    if spec.residual and list(spec.inputs) != list(spec.targets):
        raise ConfigError([f"model.residual: true needs inputs equal to targets; the data has "
                           f"inputs {spec.inputs} and targets {spec.targets}"])
    return spec


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


class DataAdapter(Protocol):
    """How the experiment feeds one model family: samples in, predictions and errors out.

    The experiment and the evaluation talk to models only through this protocol;
    :class:`GridAdapter` (grid and sphere models) and :class:`MeshAdapter` (mesh
    models) implement it.
    """

    spec: DataSpec
    channel_dim: int

    def wrap(self, dataset: Dataset) -> Dataset:
        """The dataset's samples as the model takes them."""

    def collate(self) -> Callable[[list], Any]:
        """The DataLoader collate function of wrapped samples."""

    def batch_fn(self, batch: Any) -> tuple[Any, torch.Tensor, Quadrature | None]:
        """``(inputs, target, quadrature)`` of a collated batch (see :class:`Trainer`)."""

    def forward(self, model: nn.Module, inputs: Any) -> torch.Tensor:
        """The model's prediction (input noise while training, residual added)."""

    def persistence(self, inputs: Any) -> torch.Tensor:
        """The last input frame: the forecast a useful model must beat."""

    def loss(self, name: str, sobolev_s: float = -1.0) -> nn.Module:
        """The training loss ``rel_l2``, ``abs_l2``, ``rel_h1``, ``abs_h1``, ``rel_sobolev`` or
        ``abs_sobolev`` (the spectral H^s norm of order ``sobolev_s``)."""

    def next_input(self, inputs: Any, pred: torch.Tensor) -> Any:
        """The model input of the next autoregressive step, from a prediction (training
        with ``rollout_steps > 1``)."""

    def metric_fn(self) -> Callable[..., dict[str, torch.Tensor]]:
        """Per-sample error metrics ``metric(pred, target, quadrature=...)``."""

    def rollout_inputs(self, clouds: Sequence[PointCloud], states: Sequence[torch.Tensor],
                       targets: Sequence[torch.Tensor], statics: Sequence[torch.Tensor]
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Batched initial states, targets, static channels and a context for the steps."""

    def step_fn(self, model: nn.Module, static: torch.Tensor, context: Mapping[str, Any]
                ) -> Callable[[torch.Tensor], torch.Tensor]:
        """One autoregressive step of the model on batched states."""

    def split_frames(self, frames: torch.Tensor, sizes: Any) -> list[torch.Tensor]:
        """Batched frames ``[T, ...]`` back to one ``[T, N, C]`` tensor per trajectory."""


def geometry_spec(geometry: Mapping[str, Any]) -> GridSpec | SphereGridSpec:
    """The grid description of a grid or sphere geometry (see :attr:`DataSpec.geometry`)."""
    if geometry["kind"] == "sphere":
        nlat, nlon = geometry["shape"]
        return SphereGridSpec(nlat, nlon, geometry["grid"])
    if geometry["kind"] == "regular":
        return GridSpec(tuple(geometry["shape"]), [tuple(d) for d in geometry["domain"]],
                        list(geometry["periodic"]))
    raise ValueError(f"a {geometry['kind']!r} geometry has no grid description")


class GridAdapter:
    """Grid and sphere models: ``[B, F, *shape] -> [B, C, *shape]``; see the module docstring.

    Losses and metrics integrate with the grid's quadrature (the sphere's solid
    angles and spherical-harmonic gradients on sphere grids). ``noise_std > 0``
    perturbs the input frames while the model trains (the target stays the true
    next state, so the model learns to undo small errors of its own rollouts).
    """

    channel_dim = 1

    def __init__(self, spec: DataSpec, noise_std: float = 0.0) -> None:
        self.spec, self.noise_std = spec, float(noise_std)
        self.quadrature = as_quadrature(geometry_spec(spec.geometry))

    def wrap(self, dataset: Dataset) -> Dataset:
        return GridTensorDataset(dataset, features=functools.partial(sample_features, self.spec),
                                 grid_shape=tuple(self.spec.geometry["shape"]))

    def collate(self) -> Callable[[list], Any]:
        return default_collate

    def batch_fn(self, batch: Sequence[torch.Tensor]):
        x, y = batch
        return x, y, self.quadrature

    def forward(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        if self.noise_std > 0 and model.training:
            inputs = _noisy(self.spec, inputs, self.noise_std, 1)
        out = model(inputs)
        if self.spec.residual:
            out = out + inputs[:, self.spec.state_slice]
        return out

    def persistence(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs[:, self.spec.state_slice]

    def loss(self, name: str, sobolev_s: float = -1.0) -> nn.Module:
        relative = name.startswith("rel")
        if name.endswith("sobolev"):
            return SobolevLoss(s=sobolev_s, relative=relative, quadrature=self.quadrature)
        if name.endswith("h1"):
            return H1Loss(relative=relative, quadrature=self.quadrature)
        return LpLoss(relative=relative, quadrature=self.quadrature)

    def next_input(self, inputs: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Input frames shifted by one with ``pred`` as the newest, static channels kept."""
        c = self.spec.state_channels
        frames = self.spec.input_steps * c
        return torch.cat([inputs[:, c:frames], pred, inputs[:, frames:]], dim=1)

    def metric_fn(self) -> Callable[..., dict[str, torch.Tensor]]:
        return functools.partial(error_metrics, channel_names=self.spec.targets)

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
        return x0, tg, static, {"quadrature": self.quadrature}

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

    def wrap(self, dataset: Dataset) -> Dataset:
        return MeshSamples(dataset, self.spec)

    def collate(self) -> Callable[[list], Any]:
        return Collater(None)

    def batch_fn(self, batch: Any):
        return batch, batch.y, PointQuadrature.from_cloud(batch)

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

    def loss(self, name: str, sobolev_s: float = -1.0) -> nn.Module:
        if name.endswith("h1"):
            raise ConfigError([f"trainer.loss: {name!r} needs gradients, which only grid and "
                               f"sphere models provide; use rel_l2 or abs_l2"])
        if name.endswith("sobolev"):
            raise ConfigError([f"trainer.loss: {name!r} needs a spectral basis (a regular or "
                               f"sphere grid), which mesh models do not have; use rel_l2 or "
                               f"abs_l2"])
        return LpLoss(relative=name.startswith("rel"))

    def next_input(self, inputs: Any, pred: torch.Tensor) -> Any:
        """A shallow copy of the batch whose ``x`` has the frames shifted, ``pred`` newest."""
        c = self.spec.state_channels
        frames = self.spec.input_steps * c
        out = copy.copy(inputs)
        out.x = torch.cat([inputs.x[:, c:frames], pred, inputs.x[:, frames:]], dim=1)
        return out

    def metric_fn(self) -> Callable[..., dict[str, torch.Tensor]]:
        return functools.partial(error_metrics, channel_names=self.spec.targets)

    def rollout_inputs(self, clouds, states, targets, statics):
        """Concatenate trajectories: states ``[sum N, kC]``, targets ``[T, sum N, kC]``."""
        batch = Batch.from_data_list([copy.copy(c) for c in clouds])
        x0 = torch.cat(list(states))
        tg = torch.cat(list(targets), dim=1)
        static = torch.cat(list(statics))
        return x0, tg, static, {"cloud": batch, "quadrature": PointQuadrature.from_cloud(batch)}

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


def even_subset(dataset: Dataset, limit: int | None) -> Dataset:
    """At most ``limit`` samples of ``dataset``, evenly spaced (all when ``limit`` is None)."""
    n = len(dataset)  # type: ignore[arg-type]
    if limit is None or limit >= n:
        return dataset
    idx = np.unique(np.linspace(0, n - 1, limit).round().astype(int))
    return Subset(dataset, idx.tolist())


def load_split(path: str, split: str, spec_like: Mapping[str, Any], target_steps: int = 1,
               **kwargs: Any) -> FieldDataset:
    """A dataset split as the experiment reads it (``ConfigError`` for a dataset problem).

    ``target_steps > 1`` (``trainer.rollout_steps``) gives targets of that many frames.
    """
    try:
        return load_dataset(path, split, input_steps=spec_like["input_steps"],
                            frame_step=spec_like["frame_step"],
                            normalize=spec_like["normalize"], target_steps=target_steps,
                            **kwargs)
    except DatasetError as error:
        if target_steps > 1 and "fits" in str(error):
            raise ConfigError([f"trainer.rollout_steps: {error}"]) from error
        raise ConfigError([f"data: {error}"]) from error
    except ValueError as error:
        if target_steps > 1:
            raise ConfigError([f"trainer.rollout_steps: {target_steps} needs time-dependent "
                               f"data: {error}"]) from error
        raise
