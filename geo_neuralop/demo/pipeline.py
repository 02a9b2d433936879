"""Part 2 of the demo: data -> training -> evaluation against persistence -> pictures.

Two small problems, each run with the library's public pieces:

- flow past a cylinder: trajectories from our finite element solver on
  unstructured meshes of the DFG channel (varied Reynolds number and cylinder),
  learned by a :class:`~geo_neuralop.models.MeshNO`;
- shallow water on the rotating sphere (torch-harmonics' solver, random initial
  states), learned by a :class:`~geo_neuralop.models.LocalSFNO`.

Generated data and finished runs are reused, so a second ``make demo`` skips
straight to evaluation. A model that does not beat the persistence baseline
(predicting that nothing changes) fails the demo.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from geo_neuralop.data import generate_dataset, load_predictions
from geo_neuralop.training.config import ConfigError
from geo_neuralop.training.experiment import run_experiment
from geo_neuralop.utils import atomic_path
from geo_neuralop.viz import render_predictions

#: The model of each problem, as the table names it.
MODELS = {"cylinder": "MeshNO", "shallow_water": "LocalSFNO"}

CYLINDER_DATA = {"n_samples": 10, "params": {"target_vertices": 1200, "n_frames": 40,
                                            "reynolds_range": [80.0, 160.0]}}
SWE_DATA = {"n_samples": 40, "params": {"nlat": 32, "n_frames": 12}}


def cylinder_config(data: Path) -> dict[str, Any]:
    """MeshNO on the cylinder trajectories: one frame -> the next, residual."""
    return {
        "name": "demo_cylinder",
        "data": {"path": str(data), "input_steps": 1, "frame_step": 1, "conditioning": True,
                 "node_types": "auto"},
        "model": {"name": "mesh_no", "residual": True, "latent_shape": [48, 12],
                  "hidden_channels": 24, "n_layers": 3, "processor": "fno", "n_modes": [20, 8]},
        "trainer": {"epochs": 15, "batch_size": 4, "lr": 3.0e-3, "scheduler": "cosine",
                    "grad_clip": 1.0, "loss": "rel_l2"},
        "evaluation": {"split": "test", "rollout_steps": 10, "max_trajectories": 1,
                       "prediction_files": 1},
    }


def swe_config(data: Path) -> dict[str, Any]:
    """LocalSFNO on the shallow-water trajectories: one hour ahead, residual."""
    return {
        "name": "demo_shallow_water",
        "data": {"path": str(data), "input_steps": 1, "frame_step": 1},
        "model": {"name": "local_sfno", "residual": True, "lmax": 16, "hidden_channels": 16,
                  "n_layers": 3, "disco_radius": 0.3},
        "trainer": {"epochs": 15, "batch_size": 8, "lr": 3.0e-3, "scheduler": "cosine",
                    "grad_clip": 1.0, "loss": "rel_l2"},
        "evaluation": {"split": "test", "rollout_steps": 8, "max_trajectories": 1,
                       "prediction_files": 1},
    }


def _render(prediction_file: Path, out: Path) -> list[Path]:
    """Pictures of the last frame of a prediction file (mesh or globe, plus maps)."""
    pred = load_predictions(prediction_file)
    sphere = pred.cloud.manifold == "sphere"
    return render_predictions(pred, out, prediction_file.stem, sphere_map=sphere,
                              panel_size=300, width=900)


def run_pipeline(output_dir: Path, workers: int = 2, can_render: bool = True,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Generate both datasets, train both models, evaluate them and draw their predictions.

    Returns
    -------
    dict
        Per problem: ``data``, ``run``, ``train_s``, ``one_step`` (model and persistence
        relative L2), ``rollout`` (mean relative L2 of model and persistence, stable),
        ``beats_persistence`` and ``pictures``.
    """
    summary: dict[str, Any] = {}
    problems = (("cylinder", "cylinder", CYLINDER_DATA, cylinder_config),
                ("shallow_water", "swe", SWE_DATA, swe_config))
    for name, generator, data_spec, config_fn in problems:
        data = output_dir / "data" / name
        start = time.perf_counter()
        log(f"[{name}] data: {data}")
        generate_dataset(generator, data, n_samples=data_spec["n_samples"], seed=0,
                         workers=workers, params=data_spec["params"], progress=True, log=log)
        gen_s = time.perf_counter() - start
        run_dir = output_dir / "runs" / name
        start = time.perf_counter()
        resume = (run_dir / "model.pt").exists() or any(run_dir.glob("checkpoints/*.pt"))
        try:
            result = run_experiment(config_fn(data), run_dir, resume=resume)
        except ConfigError as error:  # an earlier demo version's run: start this one afresh
            if not resume:
                raise
            log(f"[{name}] earlier run has other settings ({error}); training afresh")
            result = run_experiment(config_fn(data), run_dir, overwrite=True)
        run_s = time.perf_counter() - start
        evaluation = result["evaluation"] or {}
        one = evaluation.get("one_step") or {}
        roll = evaluation.get("rollout") or {}
        pictures: list[str] = []
        if can_render:
            for file in evaluation.get("predictions") or []:
                pictures += [str(p) for p in _render(Path(file), output_dir / "pictures")]
        summary[name] = {
            "data": str(data), "generate_s": gen_s, "run": str(result["out_dir"]),
            "train_and_evaluate_s": run_s,
            "one_step_model": _rel(one.get("model")),
            "one_step_persistence": _rel(one.get("persistence")),
            "rollout_model": _nested(roll, "mean_rel_l2", "model"),
            "rollout_persistence": _nested(roll, "mean_rel_l2", "persistence"),
            "rollout_steps": roll.get("steps"),
            "rollout_stable": roll.get("stable"),
            "beats_persistence": bool(roll.get("beats_persistence", False)) and (
                _rel(one.get("model"), float("inf")) < _rel(one.get("persistence"), 0.0)),
            "predictions": [str(p) for p in evaluation.get("predictions") or []],
            "pictures": pictures,
        }
    return summary


def _rel(metrics: Any, default: float | None = None) -> float | None:
    if isinstance(metrics, dict):
        for key in ("rel_l2", "rel_l2_total", "total"):
            if key in metrics and isinstance(metrics[key], (int, float)):
                return float(metrics[key])
    if isinstance(metrics, (int, float)):
        return float(metrics)
    return default


def _nested(mapping: Any, *keys: str) -> float | None:
    for key in keys:
        if not isinstance(mapping, dict) or key not in mapping:
            return None
        mapping = mapping[key]
    return float(mapping) if isinstance(mapping, (int, float)) else _rel(mapping)


def print_summary(summary: dict[str, Any], output_dir: Path, seconds: float,
                  print_fn: Callable[[str], None] = print) -> bool:
    """Print the table of :func:`run_pipeline`'s summary, write ``summary.json`` and say
    whether both models beat persistence."""
    print_fn(f"\n{'problem':<15} {'model':<11} {'1-step rel L2':>14} {'persistence':>12} "
             f"{'rollout rel L2':>15} {'persistence':>12} {'stable':>7}  beats")
    for name, row in summary.items():
        print_fn(f"{name:<15} {MODELS[name]:<11} {_fmt(row['one_step_model']):>14} "
                 f"{_fmt(row['one_step_persistence']):>12} {_fmt(row['rollout_model']):>15} "
                 f"{_fmt(row['rollout_persistence']):>12} {str(row['rollout_stable']):>7}  "
                 f"{'yes' if row['beats_persistence'] else 'NO'}")
    with atomic_path(output_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    print_fn(f"\noutputs (total {seconds:.0f} s for this part):")
    for name, row in summary.items():
        print_fn(f"  {name}: data {row['data']}, run {row['run']} "
                 f"(train + evaluate {row['train_and_evaluate_s']:.0f} s)")
        for path in row["predictions"] + row["pictures"]:
            print_fn(f"    {path}")
    print_fn(f"  summary: {output_dir / 'summary.json'}")
    losers = [name for name, row in summary.items() if not row["beats_persistence"]]
    if losers:
        print_fn(f"demo FAILED: {losers} did not beat the persistence baseline")
        return False
    print_fn("demo passed: both models beat persistence in one step and over the rollout")
    return True


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
