"""Experiments: the dataset, model and trainer a config describes; training, then evaluation.

:func:`run_experiment` trains the model of a config (one process or ``torchrun``),
saves it and evaluates it; files in the run folder::

    config.yaml                   the resolved config (defaults filled in)
    checkpoints/{last,best}.pt    training checkpoints (resumable)
    metrics.jsonl, metrics.csv    one record per epoch
    model.pt                      the final model (geo_neuralop.models.load_model)
    evaluation/                   metrics.json and prediction files (see evaluation.py)
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geo_neuralop.models import get_model, save_model
from geo_neuralop.models.registry import accepted_keys, get_model_class
from geo_neuralop.training.adapters import (
    DataAdapter,
    DataSpec,
    build_data_spec,
    even_subset,
    load_split,
    make_adapter,
)
from geo_neuralop.training.config import (
    TRAINER_EXTRA_KEYS,
    ConfigError,
    dump_config,
    load_config,
    read_yaml,
)
from geo_neuralop.training.evaluation import (
    EXPERIMENT_FORMAT,
    evaluate_model,
    load_trained_model,
)
from geo_neuralop.training.recipes import check_fine_tuning
from geo_neuralop.training.run_folder import RunFolderError, open_run_folder
from geo_neuralop.training.trainer import Trainer, TrainerConfig

__all__ = ["DEFAULT_RUNS_DIR", "Experiment", "build_experiment", "build_model",
           "run_experiment"]

logger = logging.getLogger(__name__)


DEFAULT_RUNS_DIR = "outputs/runs"


def build_model(model_cfg: Mapping[str, Any], spec: DataSpec) -> nn.Module:
    """The registered model of ``model_cfg`` with the data-dependent arguments filled in.

    ``in_channels``/``out_channels`` come from the data (a given value must
    agree); ``domain``/``periodic``/``n_dim`` (regular grids), ``grid`` (sphere) and
    ``pos_dim`` (mesh models) are filled when the model takes them and the config
    omits them.

    Raises
    ------
    ConfigError
        When a given channel count disagrees with the data or the model rejects
        its arguments (the model's message, under ``model``).
    """
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
    accepted, _, _ = accepted_keys(get_model_class(name))
    geo = spec.geometry
    fill: dict[str, Any] = {}
    if geo["kind"] == "regular":
        fill = {"domain": geo["domain"], "periodic": geo["periodic"],
                "n_dim": len(geo["shape"])}
    elif geo["kind"] == "sphere":
        fill = {"grid": geo["grid"]}
    if spec.family == "mesh":
        fill["pos_dim"] = geo["dim"]
    for key, value in fill.items():
        if key in accepted and key not in kwargs:
            kwargs[key] = copy.deepcopy(value)
    try:
        return get_model(name, **kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError([f"model: {name!r} rejected its arguments: {error}"]) from error


def resolve_radius_field(model_cfg: Mapping[str, Any], train: Any) -> dict[str, Any]:
    """``mesh_radius: {cells: C[, shape: [nx, ny]]}`` made into a radius field of the data.

    A mesh model's ``mesh_radius`` may be given in cells of the local mesh spacing: the
    field ``RadiusField.from_cloud(first training mesh, cells=C)`` is computed here and
    stored in the config (``{domain, values}``), so the checkpoint rebuilds exactly this
    operator for every mesh the model sees later. Other configs are returned unchanged.
    """
    radius = model_cfg.get("mesh_radius")
    if not isinstance(radius, Mapping) or "cells" not in radius:
        return dict(model_cfg)
    extra = set(radius) - {"cells", "shape"}
    if extra:
        raise ConfigError([f"model.mesh_radius: a radius in cells takes 'cells' and optionally "
                           f"'shape', got also {sorted(extra)}"])
    from geo_neuralop.kernels import RadiusField

    try:
        field = RadiusField.from_cloud(train.cloud(train.indices[0]), cells=radius["cells"],
                                       shape=radius.get("shape"))
    except (TypeError, ValueError) as error:
        raise ConfigError([f"model.mesh_radius: {error}"]) from error
    return {**model_cfg, "mesh_radius": field.to_dict()}


def _channel_story(spec: DataSpec, key: str) -> str:
    if key == "out_channels":
        return f"targets {spec.targets}"
    parts = [f"{len(spec.inputs)} fields {spec.inputs} x {spec.input_steps} frame(s)"]
    if spec.conditioning_names:
        parts.append(f"conditioning {spec.conditioning_names}")
    if spec.node_types:
        parts.append(f"{spec.node_types} node types")
    return " + ".join(parts)


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
    adapter: DataAdapter
    trainer: ExperimentTrainer
    out_dir: Path
    splits: tuple = ()
    kernel_transform: Any = None

    def attach_kernels(self) -> None:
        """Let the training and validation splits attach the model's per-mesh kernels
        (``data.precompute_kernels``). Called once the run folder is claimed: the default
        kernel store lives in it."""
        if self.kernel_transform is not None:
            for split in self.splits:
                split.transform = self.kernel_transform

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
    rollout_steps = int(trainer_cfg.get("rollout_steps", 1))
    train = load_split(data_cfg["path"], "train", data_cfg, target_steps=rollout_steps, **common)
    spec = build_data_spec(cfg, train)
    val = None
    if data_cfg["val_split"] is not None:
        val = load_split(data_cfg["path"], data_cfg["val_split"], data_cfg, **common)
    cfg["model"] = resolve_radius_field(cfg["model"], train)
    torch.manual_seed(int(trainer_cfg["seed"]))  # the model's initial weights
    model = build_model(cfg["model"], spec)
    cfg["model"] = {"name": cfg["model"]["name"], "residual": spec.residual,
                    **copy.deepcopy(model.config)}
    # per-mesh kernels built in the data pipeline, not in the step (see attach_kernels)
    transform = kernel_transform(model, data_cfg, trainer_cfg["out_dir"])
    adapter = make_adapter(spec, trainer_cfg["noise_std"])
    loss = adapter.loss(trainer_cfg["loss"], sobolev_s=trainer_cfg["sobolev_s"])
    if rollout_steps > 1 and not spec.can_rollout:
        raise ConfigError([f"trainer.rollout_steps: {rollout_steps} needs time-dependent data "
                           f"whose inputs are its targets; {data_cfg['path']!r} maps "
                           f"{spec.inputs} to {spec.targets}"])
    try:
        check_fine_tuning(model, trainer_cfg.get("trainable"), trainer_cfg.get("init_from"))
    except ValueError as error:
        raise ConfigError([str(error)]) from error
    settings = {k: v for k, v in trainer_cfg.items() if k not in TRAINER_EXTRA_KEYS}
    try:
        tcfg = TrainerConfig.from_dict(settings, path="trainer")
    except (TypeError, ValueError) as error:
        raise ConfigError([str(error)]) from error
    train_set = adapter.wrap(even_subset(train, data_cfg["max_train_samples"]))
    val_set = None if val is None else adapter.wrap(even_subset(val, data_cfg["max_val_samples"]))
    state = {"format": EXPERIMENT_FORMAT, "config": cfg, "data": spec.to_dict(),
             "model_name": cfg["model"]["name"]}
    trainer = ExperimentTrainer(model, train_set, val_set, loss, tcfg,
                                batch_fn=adapter.batch_fn, forward_fn=adapter.forward,
                                metric_fn=adapter.metric_fn(), next_input_fn=adapter.next_input,
                                experiment=state)
    splits = tuple(s for s in (train, val) if s is not None)
    return Experiment(cfg, spec, model, adapter, trainer, Path(tcfg.out_dir), splits, transform)


def kernel_transform(model: nn.Module, data_cfg: Mapping[str, Any],
                     out_dir: str | os.PathLike) -> Any:
    """The sample transform that attaches the model's per-mesh kernels, or None.

    Models with ``build_kernels`` and ``kernel_recipe`` (MeshNO, MeshGraphNet) get their
    kernels built once per geometry where samples are loaded (the DataLoader workers),
    kept in a :class:`~geo_neuralop.data.KernelStore` (``data.kernel_store``, default
    ``<out_dir>/kernel_store``) and attached to each sample, so that a dataset of many
    meshes costs no kernel construction in the training step.
    """
    wanted = data_cfg.get("precompute_kernels", "auto")
    able = callable(getattr(model, "build_kernels", None)) and callable(
        getattr(model, "kernel_recipe", None))
    if wanted is False or (wanted == "auto" and not able):
        return None
    if not able:
        raise ConfigError([f"data.precompute_kernels: model {type(model).__name__} has no "
                           f"per-mesh kernels to precompute (only mesh models do)"])
    from geo_neuralop.data import PrecomputeKernels

    store = data_cfg.get("kernel_store") or Path(out_dir) / "kernel_store"
    return PrecomputeKernels(model.build_kernels, model.kernel_recipe(), store=store)


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
    exp = build_experiment(config, out_dir, overrides)
    cfg, out = exp.config, exp.out_dir
    guard: contextlib.AbstractContextManager = contextlib.nullcontext(out)
    if _rank() == 0:  # only rank 0 writes files
        guard = open_run_folder(out, resume=resume, overwrite=overwrite)
    try:
        with guard:  # a folder of ours, locked: its config.yaml is the old run's
            if resume:
                _check_resume(out, cfg)
            return _train_and_evaluate(exp, resume, overwrite, evaluate)
    except RunFolderError as error:
        raise ConfigError([f"trainer.out_dir: {error}"]) from error


def _train_and_evaluate(exp: Experiment, resume: bool, overwrite: bool,
                        evaluate: bool | None) -> dict[str, Any]:
    cfg, out = exp.config, exp.out_dir
    if _rank() == 0:
        dump_config(cfg, out / "config.yaml")
    exp.attach_kernels()
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
