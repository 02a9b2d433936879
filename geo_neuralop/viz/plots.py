"""Training curves and error-versus-horizon plots with matplotlib."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from geo_neuralop.utils import atomic_path


def read_metrics(source: str | Path | Sequence[Mapping[str, float]]) -> list[dict]:
    """Metric rows from a JSONL or CSV file, or a list of dicts (one row per epoch)."""
    if not isinstance(source, (str, Path)):
        return [dict(row) for row in source]
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no metrics file at {path}")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            return [{k: float(v) for k, v in row.items() if v not in ("", None)}
                    for row in csv.DictReader(f)]
    raise ValueError(f"metrics file must be .jsonl or .csv, got {path.name}")


def plot_training_curves(
    source: str | Path | Sequence[Mapping[str, float]],
    path: str | Path,
    keys: Sequence[str] | None = None,
    x: str = "epoch",
    log: bool = True,
) -> Path:
    """Plot metric columns (default: every column with 'loss' or 'error' in its name) vs ``x``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(source)
    if not rows:
        raise ValueError("no metric rows to plot")
    columns = sorted({k for row in rows for k in row})
    if keys is None:
        keys = [k for k in columns if ("loss" in k or "error" in k) and k != x]
    missing = [k for k in keys if k not in columns]
    if missing:
        raise ValueError(f"unknown metric(s) {missing}; available: {columns}")
    if not keys:
        raise ValueError(f"no loss or error columns among {columns}; pass keys=")
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for key in keys:
        xs = [row.get(x, i) for i, row in enumerate(rows) if key in row]
        ys = [row[key] for row in rows if key in row]
        ax.plot(xs, ys, marker="o", markersize=3, label=key)
    ax.set_xlabel(x)
    if log:
        ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def plot_error_vs_horizon(
    errors: Mapping[str, Sequence[float]],
    path: str | Path,
    dt: float = 1.0,
    ylabel: str = "relative L2 error",
    log: bool = True,
) -> Path:
    """Rollout error against the number of steps (times ``dt``), one line per model/baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not errors:
        raise ValueError("errors is empty: give {label: [error at step 1, 2, ...]}")
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for label, values in errors.items():
        values = np.asarray(values, dtype=float)
        steps = np.arange(1, values.size + 1) * dt
        ax.plot(steps, values, marker="o", markersize=3, label=label)
        bad = ~np.isfinite(values)
        if bad.any():
            first = steps[int(np.argmax(bad))]
            ax.axvline(first, color="tab:red", linestyle="--", linewidth=1.5)
            ax.annotate(f"{label}: non-finite from {first:g}", (first, 0.5),
                        xycoords=("data", "axes fraction"), rotation=90, color="tab:red",
                        ha="right", va="center", fontsize=8)
    ax.set_xlabel("horizon" + (" (steps)" if dt == 1.0 else ""))
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
