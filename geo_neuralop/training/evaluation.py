"""Evaluation of trained models: one-step and rollout errors, prediction files, the table.

:func:`evaluate_model` reports, in normalized units, the per-sample relative errors
of one step on every window of a split (with the persistence forecast for
time-dependent data), and the rollout from frame ``rollout_start`` of each
trajectory for ``rollout_steps`` steps with blow-up detection; it writes
``metrics.json`` and prediction files (physical units) for ``geo-neuralop render``.
:func:`load_trained_model` rebuilds a model and its experiment from a run folder,
checkpoint or ``model.pt``; :func:`format_results` prints the table.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from geo_neuralop.data import save_predictions
from geo_neuralop.geometry.triangulation import with_grid_faces
from geo_neuralop.models.checkpoint import FORMAT as MODEL_FORMAT
from geo_neuralop.models.checkpoint import build_checked_model, load_model, read_checkpoint
from geo_neuralop.training.adapters import (
    DataSpec,
    check_family,
    even_subset,
    geometry_of,
    load_split,
    make_adapter,
    static_features,
    trajectory_headers,
)
from geo_neuralop.training.batches import move_to_device
from geo_neuralop.training.checkpointing import FORMAT as TRAIN_FORMAT
from geo_neuralop.training.checkpointing import check_format, load_checkpoint
from geo_neuralop.training.config import ConfigError, dataset_problem
from geo_neuralop.training.distributed import select_device
from geo_neuralop.training.metrics import MetricAverager
from geo_neuralop.training.rollout import rollout
from geo_neuralop.utils import atomic_path

__all__ = [
    "EXPERIMENT_FORMAT",
    "evaluate_checkpoint",
    "evaluate_model",
    "format_results",
    "load_trained_model",
]


#: Value of the ``"format"`` entry of the experiment description stored in checkpoints.
EXPERIMENT_FORMAT = "geo_neuralop.experiment"


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
        check_format(state, str(path))
        # a run trained with ema_decay is evaluated with its weight average
        model = build_checked_model(experiment["model_name"], state["model_config"],
                                    state.get("ema_model") or state["model"],
                                    path).to(map_location)
    else:
        raise ValueError(f"{path} is not a geo_neuralop checkpoint (format="
                         f"{state.get('format')!r})")
    if not isinstance(experiment, dict) or experiment.get("format") != EXPERIMENT_FORMAT:
        raise ValueError(f"{path} holds no experiment description (config and data); "
                         f"evaluate needs a model written by geo-neuralop train")
    model.eval()
    return model, {**experiment, "checkpoint": str(path)}


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
            inputs, target, quadrature = adapter.batch_fn(move_to_device(batch, device))
            pred = adapter.forward(model, inputs)
            model_avg.update(metric(pred, target, quadrature=quadrature))
            if with_persistence:
                base_avg.update(metric(adapter.persistence(inputs), target,
                                       quadrature=quadrature))
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
    headers = trajectory_headers(Path(dataset.root), indices)
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

    clock = time.perf_counter()
    result = rollout(adapter.step_fn(model, static, context), x0, steps, targets=tg,
                     metric_fn=metric_fn, blowup_factor=blowup, channel_dim=1)
    elapsed = time.perf_counter() - clock
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


def _write_predictions(out_dir: Path, spec: DataSpec, adapter, clouds, truth, prediction,
                       times, sizes, names: Sequence[str], limit: int, prefix: str
                       ) -> list[str]:
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
        save_predictions(path, with_grid_faces(clouds[i]), t, p, list(names), times[i][:done])
        paths.append(str(path))
    return paths


def _static_predictions(model, adapter, spec: DataSpec, dataset, limit: int,
                        device: torch.device, out_dir: Path, split: str) -> list[str]:
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
            cloud = with_grid_faces(dataset.cloud(int(sample.trajectory)))
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
    dataset = load_split(data, split, {"input_steps": spec.input_steps,
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
    device = select_device(ev.get("device", "auto"))
    model = model.to(device).eval()
    batch_size = ev.get("batch_size") or cfg["trainer"].get("eval_batch_size") or \
        cfg["trainer"].get("batch_size", 8)
    subset = even_subset(dataset, ev.get("max_samples"))
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
        origin = f" from frame {roll['start_frame']}" if roll.get("start_frame") else ""
        lines.append(f"rollout ({len(roll['trajectories'])} trajectories, {roll['steps']} "
                     f"steps{origin}, relative L2 per step)")
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
