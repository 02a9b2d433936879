"""Tables, plots and the README section of the studies, from their result files only.

:func:`write_report` reads ``<results>/<study>/runs/*.json`` (written by the
runner), averages every metric over the seeds that finished (mean and sample
standard deviation), and writes

- ``<study>/summary.json``: the aggregates (per model and budget),
- ``<study>/summary.md``: the tables (both budgets), gains, claims, notes,
- ``<study>/rollout.png``: relative L2 error against the rollout step (equal epochs),
- ``<study>/resolution.png``: error against resolution (zero-shot evaluations),
- ``<study>/efficiency.png``: error against time per epoch (static data),

and :func:`write_readme` gathers the studies' main tables and plots into
``<results>/README.md``, the proposed "Results" section of the project README.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from geo_neuralop.utils import atomic_path

from .spec import StudySpec, run_key, tune_tag

__all__ = ["aggregate", "load_runs", "mean_std", "splice_readme", "write_readme",
           "write_report"]

NA = "–"


def mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean, sample standard deviation (``ddof=1``; None for one value) and count of the
    finite values.

    >>> mean_std([1.0, 2.0, 3.0])
    {'mean': 2.0, 'std': 1.0, 'n': 3}
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return {"mean": None, "std": None, "n": 0}
    std = statistics.stdev(finite) if len(finite) > 1 else None
    return {"mean": statistics.fmean(finite), "std": std, "n": len(finite)}


def load_runs(folder: Path) -> list[dict[str, Any]]:
    """The run records of a study's results folder."""
    runs = folder / "runs"
    if not runs.is_dir():
        return []
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(runs.glob("*.json"))]


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _get(record: Mapping[str, Any], *keys: str) -> Any:
    value: Any = record
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def _rollout_mean(record: Mapping[str, Any], where: Sequence[str] = ("test",)) -> float | None:
    roll = _get(record, *where, "rollout")
    if not roll or not roll.get("stable", False):
        return None if not roll else math.inf
    return _get(roll, "mean_rel_l2", "model")


def _metrics(record: Mapping[str, Any], spec: StudySpec) -> dict[str, float | None]:
    """The scalar metrics of one run (keys are the table's columns)."""
    out: dict[str, float | None] = {}
    one = _get(record, "test", "one_step") or {}
    for key, value in one.items():
        out[f"one_step/{key}"] = value
    roll = _get(record, "test", "rollout")
    if roll:
        out["rollout/mean"] = _rollout_mean(record)
        out["rollout/stable"] = 1.0 if roll.get("stable") else 0.0
        steps = _get(roll, "model", "rel_l2") or []
        out["rollout/last"] = steps[-1] if steps and steps[-1] is not None else None
        persistence = _get(roll, "mean_rel_l2", "persistence")
        out["rollout/persistence"] = persistence
    persistence_one = _get(record, "test", "persistence", "rel_l2")
    if persistence_one is not None:
        out["one_step/persistence"] = persistence_one
    for key, extra in (record.get("extras") or {}).items():
        out[f"{key}/one_step"] = _get(extra, "one_step", "rel_l2")
        if extra.get("rollout"):
            out[f"{key}/rollout"] = _rollout_mean(record, ("extras", key))
        for name in ("drag_rel", "lift_rel"):
            out[f"{key}/forces/{name}"] = _get(extra, "forces", "model_vs_truth", name)
    for name in ("drag_rel", "lift_rel", "drag_mean_rel", "lift_amplitude_rel"):
        out[f"forces/{name}"] = _get(record, "forces", "model_vs_truth", name)
        out[f"forces_floor/{name}"] = _get(record, "forces", "postprocessing_vs_solver", name)
    out["train/median_epoch_s"] = _get(record, "train", "median_epoch_s")
    out["train/wall_s"] = _get(record, "train", "wall_s")
    return {k: v for k, v in out.items() if v is not None}


def aggregate(spec: StudySpec, records: Sequence[Mapping[str, Any]],
              budget: Mapping[str, Any] | None, params: Mapping[str, Any] | None,
              fresh: Mapping[str, str | None] | None = None,
              tuning: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Per model and budget: mean/std/n of every metric over the finished seeds.

    ``fresh`` (key -> None, "config" or "code") says why a record's fingerprint
    differs from the current study's: records of another config are left out,
    records of older code are kept and listed (``older_code_runs``).
    """
    epochs = int(spec.trainer["epochs"])
    by_key = {r["key"]: r for r in records}
    out: dict[str, Any] = {"study": spec.name, "title": spec.title, "reference": spec.reference,
                           "epochs": epochs, "seeds": list(spec.seeds), "models": {},
                           "budget": budget, "tuning": tuning, "stale_runs": [],
                           "older_code_runs": []}
    default = spec.trainer.get(spec.tune_key)
    for entry in spec.models:
        value = _get(tuning or {}, "chosen", entry.label) if spec.tune_values else None
        tag = "" if value is None else tune_tag(spec, value)
        model: dict[str, Any] = {"library": entry.library, "note": entry.note,
                                 spec.tune_key: default if value is None else value,
                                 "tuned": value is not None,
                                 "baseline": entry.baseline or spec.reference,
                                 "params": _get(params or {}, "models", entry.label, "params"),
                                 "params_ratio": _get(params or {}, "models", entry.label,
                                                      "ratio"),
                                 "budgets": {}}
        budgets = {"epochs": epochs}
        if budget is not None and entry.label in budget.get("epochs", {}):
            budgets["time"] = int(budget["epochs"][entry.label])
        for name, e in budgets.items():
            rows = []
            for seed in entry.seeds or spec.seeds:
                key = run_key(entry.label, seed, e, tag)
                if key not in by_key:
                    continue
                why = (fresh or {}).get(key)
                if why == "config":  # made for another setting of this study: left out
                    out["stale_runs"].append(key)
                    continue
                if why == "code":  # kept, and listed: the code has changed since
                    out["older_code_runs"].append(key)
                rows.append(by_key[key])
            failed = [r["key"] for r in rows if r.get("failed")]
            rows = [r for r in rows if not r.get("failed")]
            metrics: dict[str, list[float]] = {}
            for row in rows:
                for k, v in _metrics(row, spec).items():
                    metrics.setdefault(k, []).append(v)
            curves = _curves(rows)
            model["budgets"][name] = {"epochs": e, "seeds": [r["seed"] for r in rows],
                                      "failed": failed,
                                      "metrics": {k: mean_std(v) for k, v in metrics.items()},
                                      "curves": curves}
        out["models"][entry.label] = model
    out["claims"] = [_claim(out, c) for c in spec.claims]
    used = [r for r in records if r.get("train")]
    out["compute"] = {"runs": len(used),
                      "run_seconds": float(sum(r["train"].get("wall_s", 0.0) for r in used))}
    return out


def _curves(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-step rollout errors (mean/std over seeds) and per-trajectory force series."""
    curves: dict[str, Any] = {}
    per_seed = [_get(r, "test", "rollout", "model", "rel_l2") for r in rows]
    per_seed = [s for s in per_seed if s]
    if per_seed:
        n = max(len(s) for s in per_seed)
        curves["rollout"] = [mean_std([s[t] if t < len(s) else None for s in per_seed])
                             for t in range(n)]
        base = _get(rows[0], "test", "rollout", "persistence", "rel_l2")
        if base:
            curves["persistence"] = base
    series = [_get(r, "forces", "series") for r in rows]
    if series and series[0]:
        curves["forces"] = series[0]
    return curves


def _value(agg: Mapping[str, Any], label: str, metric: str, budget: str = "epochs"
           ) -> dict[str, Any]:
    return _get(agg, "models", label, "budgets", budget, "metrics", metric) or \
        {"mean": None, "std": None, "n": 0}


def _claim(agg: Mapping[str, Any], claim) -> dict[str, Any]:
    metric = "one_step/rel_l2" if claim.metric == "one_step" else "rollout/mean"
    cand, base = _value(agg, claim.candidate, metric), _value(agg, claim.baseline, metric)
    measured = None
    verdict = "not run"
    if cand["mean"] is not None and base["mean"] not in (None, 0) and \
            math.isfinite(cand["mean"]) and math.isfinite(base["mean"]):
        measured = 1.0 - cand["mean"] / base["mean"]
        if measured >= claim.reduction:
            verdict = "reproduced"
        elif measured > 0:
            verdict = "smaller gain"
        else:
            verdict = "not reproduced"
        if cand["std"] is not None and base["std"] is not None and \
                abs(cand["mean"] - base["mean"]) <= cand["std"] + base["std"]:
            verdict += " (difference within the seeds' spread)"
        elif cand["n"] < 2 or base["n"] < 2:
            verdict += " (one seed)"
    return {"candidate": claim.candidate, "baseline": claim.baseline, "metric": claim.metric,
            "claimed": claim.reduction, "measured": measured, "verdict": verdict,
            "source": claim.source, "n": [cand["n"], base["n"]]}


# --------------------------------------------------------------------------- formatting
def fmt(stat: Mapping[str, Any] | None, digits: int = 3) -> str:
    """``mean ± std`` (``mean`` alone for one seed; ``–`` for none).

    >>> fmt({"mean": 0.12345, "std": 0.0061, "n": 3})
    '0.123 ± 0.006'
    """
    if not stat or stat.get("mean") is None:
        return NA
    mean = stat["mean"]
    if not math.isfinite(mean):
        return "unstable"
    text = _num(mean, digits)
    if stat.get("std") is not None:
        text += f" ± {_num(stat['std'], digits, like=mean)}"
    return text


def _num(value: float, digits: int, like: float | None = None) -> str:
    ref = abs(like if like is not None else value)
    if ref == 0 or 1e-3 <= ref < 1e4:
        decimals = max(0, digits - 1 - int(math.floor(math.log10(ref)))) if ref else digits
        return f"{value:.{decimals}f}"
    return f"{value:.{digits - 1}e}"


def _static(spec: StudySpec) -> bool:
    """Whether the study's data are input/target pairs (no time steps)."""
    from geo_neuralop.data import GENERATORS

    return GENERATORS[spec.datasets[spec.train_dataset].generator].task["kind"] == "static"


def _columns(spec: StudySpec, agg: Mapping[str, Any], compact: bool = False
             ) -> list[tuple[str, str]]:
    """(metric key, column title) of the study's main table (``compact``: the README's)."""
    present: set[str] = set()
    for model in agg["models"].values():
        for b in model["budgets"].values():
            present |= set(b["metrics"])
    step = "" if _static(spec) else "one-step "
    cols = [("one_step/rel_l2", f"{step}rel. L2")]
    if "one_step/rel_h1" in present and not compact:
        cols.append(("one_step/rel_h1", f"{step}rel. H1"))
    if "rollout/mean" in present:
        steps = spec.evaluation.get("rollout_steps")
        cols.append(("rollout/mean", f"{steps}-step rollout, mean rel. L2"))
    for extra in spec.extra_evals:
        cols.append((f"{extra.key}/one_step", f"{extra.label}: {step}rel. L2"))
        if extra.rollout_steps:
            cols.append((f"{extra.key}/rollout", f"{extra.label}: rollout"))
    if spec.forces:
        cols += [("forces/drag_rel", "drag error"), ("forces/lift_rel", "lift error")]
    return [c for c in cols if c[0] in present]


def _channel_columns(agg: Mapping[str, Any]) -> list[str]:
    keys: set[str] = set()
    for model in agg["models"].values():
        for b in model["budgets"].values():
            keys |= {k for k in b["metrics"] if k.startswith("one_step/rel_l2/")}
    return sorted(keys)


def main_table(spec: StudySpec, agg: Mapping[str, Any], budget: str = "epochs",
               compact: bool = False) -> str:
    """The markdown table of one budget."""
    cols = _columns(spec, agg, compact)
    timed = compact and any("time" in m["budgets"] for m in agg["models"].values())
    tuned_col = bool(spec.tune_values) and not compact
    header = ["model", "params", "s / epoch"] + ([] if compact else ["epochs"]) + ["seeds"]
    if tuned_col:
        header.append(spec.tune_key)
    header += [t for _, t in cols]
    if timed:
        header.append(f"{cols[0][1]}, equal wall-clock (epochs)")
    if not compact:
        header.append("gain vs baseline")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, model in agg["models"].items():
        b = model["budgets"].get(budget)
        if b is None:
            continue
        params = model["params"]
        p_text = NA if params is None else f"{params:,}"
        epoch_s = _value(agg, label, "train/median_epoch_s", budget)
        row = [label + ("" if model["library"] == "geo_neuralop" else f" [{model['library']}]"),
               p_text, fmt(epoch_s, 2)] + ([] if compact else [str(b["epochs"])])
        row.append(str(len(b["seeds"])))
        if tuned_col:
            row.append(f"{model[spec.tune_key]:g}" + ("" if model["tuned"] else " (untuned)"))
        row += [fmt(_value(agg, label, key, budget)) for key, _ in cols]
        if timed:
            t = model["budgets"].get("time")
            row.append(NA if t is None else
                       f"{fmt(_value(agg, label, cols[0][0], 'time'))} ({t['epochs']})")
        if not compact:
            row.append(_gain(agg, label, model["baseline"], budget))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _gain(agg: Mapping[str, Any], label: str, baseline: str, budget: str) -> str:
    if label == baseline:
        return "(baseline)"
    a = _value(agg, label, "one_step/rel_l2", budget)["mean"]
    b = _value(agg, baseline, "one_step/rel_l2", budget)["mean"]
    if a is None or b in (None, 0):
        return NA
    return f"{100 * (1 - a / b):+.0f}% vs {baseline}"


def channel_table(agg: Mapping[str, Any]) -> str | None:
    keys = _channel_columns(agg)
    if len(keys) < 2:
        return None
    header = ["model"] + [k.split("/")[-1] for k in keys]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label in agg["models"]:
        lines.append("| " + " | ".join([label] + [fmt(_value(agg, label, k)) for k in keys])
                     + " |")
    return "\n".join(lines)


def tuning_table(spec: StudySpec, agg: Mapping[str, Any]) -> str | None:
    """Lowest validation loss per model and candidate value (first seed, equal epochs)."""
    tuning = agg.get("tuning")
    if not spec.tune_values or not tuning:
        return None
    values = [f"{v:g}" for v in spec.tune_values]
    lines = [f"Every model trained once per {spec.tune_key} on seed {tuning['seed']} "
             f"({tuning['epochs']} epochs); the value with the lowest validation loss "
             f"(bold) is used for all its runs.", "",
             "| model | " + " | ".join(f"{spec.tune_key} {v}" for v in values) + " |",
             "|" + "---|" * (len(values) + 1)]
    for label in agg["models"]:
        losses = _get(tuning, "best_val_loss", label) or {}
        chosen = _get(tuning, "chosen", label)
        cells = []
        for v, text in zip(spec.tune_values, values, strict=True):
            loss = losses.get(text)
            cell = NA if loss is None else ("diverged" if not math.isfinite(loss) else
                                            f"{loss:.4g}")
            cells.append(f"**{cell}**" if v == chosen else cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def claims_table(agg: Mapping[str, Any]) -> str | None:
    if not agg["claims"]:
        return None
    lines = ["| claim | source | claimed reduction | measured (equal epochs) | verdict |",
             "|---|---|---|---|---|"]
    for c in agg["claims"]:
        measured = NA if c["measured"] is None else f"{100 * c['measured']:+.0f}%"
        lines.append(f"| {c['candidate']} vs {c['baseline']} ({c['metric'].replace('_', '-')})"
                     f" | {c['source']} | {100 * c['claimed']:.0f}% | {measured} | "
                     f"{c['verdict']} |")
    return "\n".join(lines)


def losses(spec: StudySpec, agg: Mapping[str, Any]) -> list[str]:
    """Plain statements of where our models lose (equal epochs, one-step error)."""
    out = []
    step = "" if _static(spec) else "one-step "
    for metric, what in (("one_step/rel_l2", f"{step}error"),
                         ("rollout/mean", "rollout error")):
        def err(label: str, metric: str = metric) -> float | None:
            return _value(agg, label, metric)["mean"]

        ours = [m.label for m in spec.models if m.library == "geo_neuralop"
                and err(m.label) is not None]
        peers = [m.label for m in spec.models if m.library != "geo_neuralop"
                 and err(m.label) is not None]
        if not ours:
            continue
        best_ours = min(ours, key=err)
        for peer in peers:
            if err(peer) < err(best_ours):
                out.append(f"{peer} has a lower {what} than our best model, {best_ours} "
                           f"({fmt(_value(agg, peer, metric))} vs "
                           f"{fmt(_value(agg, best_ours, metric))}).")
    for claim in agg["claims"]:
        if claim["verdict"].startswith(("smaller gain", "not reproduced")):
            out.append(f"{claim['candidate']} vs {claim['baseline']} "
                       f"({claim['metric'].replace('_', '-')}): {claim['verdict']}, "
                       f"{100 * claim['measured']:+.0f}% where {claim['source']} reports "
                       f"{100 * claim['claimed']:.0f}%.")
    for label in agg["models"]:
        stable = _value(agg, label, "rollout/stable")
        if stable["mean"] is not None and stable["mean"] < 1:
            out.append(f"{label}: the rollout blew up in {1 - stable['mean']:.0%} of the seeds.")
    return out


# -------------------------------------------------------------------------------- plots
def _plot_rollout(spec: StudySpec, agg: Mapping[str, Any], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    drawn = False
    persistence = None
    for label, model in agg["models"].items():
        curve = _get(model, "budgets", "epochs", "curves", "rollout")
        if not curve:
            continue
        steps = list(range(1, len(curve) + 1))
        mean = [c["mean"] if c["mean"] is not None else math.nan for c in curve]
        std = [c["std"] or 0.0 for c in curve]
        style = "-" if model["library"] == "geo_neuralop" else "--"
        (line,) = ax.plot(steps, mean, style, marker=".", label=label)
        ax.fill_between(steps, [m - s for m, s in zip(mean, std, strict=True)],
                        [m + s for m, s in zip(mean, std, strict=True)],
                        color=line.get_color(), alpha=0.15, linewidth=0)
        persistence = persistence or _get(model, "budgets", "epochs", "curves", "persistence")
        drawn = True
    if not drawn:
        plt.close(fig)
        return False
    if persistence:
        ax.plot(range(1, len(persistence) + 1), persistence, ":", color="gray",
                label="persistence")
    ax.set_xlabel("rollout step")
    ax.set_ylabel("relative L2 error (test, mean over seeds)")
    ax.set_yscale("log")
    ax.set_title(f"{spec.name}: rollout error (dashed: peer libraries)", fontsize=10)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    _save(fig, path)
    return True


def _plot_resolution(spec: StudySpec, agg: Mapping[str, Any], path: Path) -> bool:
    if not spec.extra_evals:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train_x = _train_resolution(spec)
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    drawn = False
    for label, model in agg["models"].items():
        xs, ms, ss = [], [], []
        points = [(train_x, "one_step/rel_l2")] + [(e.x, f"{e.key}/one_step")
                                                   for e in spec.extra_evals]
        for x, key in points:
            v = _value(agg, label, key)
            if v["mean"] is not None and x is not None:
                xs.append(x)
                ms.append(v["mean"])
                ss.append(v["std"] or 0.0)
        if len(xs) < 2:
            continue
        style = "-" if model["library"] == "geo_neuralop" else "--"
        ax.errorbar(xs, ms, yerr=ss, fmt=style + "o", capsize=3, label=label)
        drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("grid points per side" if spec.datasets[spec.train_dataset].generator
                  != "cylinder" else "mesh vertices")
    ax.set_ylabel("one-step relative L2 error (test)")
    ax.set_title(f"{spec.name}: zero-shot resolution transfer (dashed: peers)", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    _save(fig, path)
    return True


def _train_resolution(spec: StudySpec) -> float | None:
    params = spec.datasets[spec.train_dataset].params
    for key in ("resolution", "nlat", "target_vertices"):
        if key in params:
            return float(params[key])
    return None


def _plot_efficiency(spec: StudySpec, agg: Mapping[str, Any], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    drawn = False
    for label in agg["models"]:
        t = _value(agg, label, "train/median_epoch_s")
        e = _value(agg, label, "one_step/rel_l2")
        if t["mean"] is None or e["mean"] is None:
            continue
        ax.errorbar([t["mean"]], [e["mean"]], yerr=[e["std"] or 0.0], fmt="o", capsize=3,
                    label=label)
        drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xlabel("seconds per training epoch (this machine, 1 thread)")
    ax.set_ylabel("relative L2 error (test)")
    ax.set_title(f"{spec.name}: error vs training cost (equal epochs)", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    return True


def _plot_forces(spec: StudySpec, agg: Mapping[str, Any], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(6.4, 5.0), sharex=True)
    drawn = False
    for label, model in agg["models"].items():
        series = _get(model, "budgets", "epochs", "curves", "forces")
        if not series:
            continue
        for ax, name in zip(axes, ("drag", "lift"), strict=True):
            if not drawn:
                ax.plot(series["times"], series[name]["solver"], "k-", lw=2, label="solver")
                ax.plot(series["times"], series[name]["truth"], "k:", label="true fields")
            ax.plot(series["times"], series[name]["model"], "-", lw=1, label=label)
        drawn = True
    if not drawn:
        plt.close(fig)
        return False
    axes[0].set_ylabel("C_D")
    axes[1].set_ylabel("C_L")
    axes[1].set_xlabel("time (s)")
    axes[0].set_title(f"{spec.name}: drag and lift from the rollouts (first seed, first "
                      f"test trajectory)", fontsize=10)
    axes[1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    _save(fig, path)
    return True


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


# ------------------------------------------------------------------------------ reports
def write_report(spec: StudySpec, folder: Path,
                 fresh: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """Aggregate a study's results folder and write its summary files and plots."""
    records = load_runs(folder)
    agg = aggregate(spec, records, _read(folder / "budget.json"), _read(folder / "params.json"),
                    fresh, _read(folder / "tuning.json"))
    plots = {}
    for name, plot in (("rollout", _plot_rollout), ("resolution", _plot_resolution),
                       ("efficiency", _plot_efficiency), ("forces", _plot_forces)):
        if name == "efficiency" and any("rollout/mean" in m["budgets"].get("epochs", {}).get(
                "metrics", {}) for m in agg["models"].values()):
            continue
        if plot(spec, agg, folder / f"{name}.png"):
            plots[name] = f"{name}.png"
    agg["plots"] = plots
    agg["description"] = spec.description
    agg["losses"] = losses(spec, agg)
    with atomic_path(folder / "summary.json") as tmp:
        tmp.write_text(json.dumps(agg, indent=1, default=str) + "\n", encoding="utf-8")
    with atomic_path(folder / "summary.md") as tmp:
        tmp.write_text(study_markdown(spec, agg, folder), encoding="utf-8")
    return agg


def study_markdown(spec: StudySpec, agg: Mapping[str, Any], folder: Path | None = None) -> str:
    """The full markdown report of one study."""
    lines = [f"# {spec.title} (`{spec.name}`)", "", spec.description, ""]
    lines += [_budget_text(spec, agg), ""]
    lines += ["## Equal epochs", "", main_table(spec, agg, "epochs"), ""]
    if any("time" in m["budgets"] for m in agg["models"].values()):
        lines += ["## Equal wall-clock", "", main_table(spec, agg, "time"), ""]
    tuning = tuning_table(spec, agg)
    if tuning:
        lines += ["## Tuning", "", tuning, ""]
    channels = channel_table(agg)
    if channels:
        lines += ["## One-step relative L2 per field (equal epochs)", "", channels, ""]
    claims = claims_table(agg)
    if claims:
        lines += ["## Published claims", "", claims, ""]
    if spec.forces:
        lines += ["## Drag and lift", "", _forces_text(agg), ""]
    floor = _latent_floor(folder)
    if floor:
        lines += ["## Latent-grid floor", "", floor, ""]
    for name, file in agg.get("plots", {}).items():
        lines += [f"![{name}]({file})", ""]
    lines += ["## Notes", ""] + [f"- {n}" for n in _notes(spec, agg, folder)] + [""]
    return "\n".join(lines)


def _latent_floor(folder: Path | None) -> str | None:
    """The table of ``latent_floor.json`` (``python -m benchmarks.accuracy.latent_floor``)."""
    data = _read(folder / "latent_floor.json") if folder else None
    if not data:
        return None
    lines = [f"The one-step change of the {data['split']} trajectories ({data['windows']} "
             f"windows) carried from the mesh to a latent grid and back (linear, then "
             f"bilinear interpolation), in the normalized units of the tables: the error "
             f"this round trip leaves, its share within two diameters of the cylinder, and "
             f"the error of predicting no change "
             f"(`python -m benchmarks.accuracy.latent_floor`).", "",
             "| latent grid | round-trip error | share near the cylinder | no-change error |",
             "|---|---|---|---|"]
    for name, v in data["shapes"].items():
        lines.append(f"| {name} | {v['floor']:.3f} | {v['near_share']:.0%} | "
                     f"{v['change']:.3f} |")
    return "\n".join(lines)


def _budget_text(spec: StudySpec, agg: Mapping[str, Any]) -> str:
    t = spec.trainer
    text = (f"Training: {t['epochs']} epochs, batch {t.get('batch_size')}, AdamW lr "
            f"{t.get('lr')} ({t.get('scheduler')}), loss {t.get('loss')}"
            + (f", input noise {t['noise_std']}" if t.get("noise_std") else "")
            + f", one CPU thread; mean ± sample std over seeds {list(spec.seeds)}. "
            f"Parameter counts matched to {spec.reference} within "
            f"±{spec.param_tolerance:.0%} by the width.")
    compute = agg.get("compute") or {}
    if compute.get("runs"):
        text += (f" Compute: {compute['runs']} runs, {compute['run_seconds'] / 3600:.1f} h of "
                 f"training and test evaluation in all on this machine (2 shared cores).")
    budget = agg.get("budget")
    if budget:
        text += (f" Equal wall-clock: {budget['budget_s']:.0f} s of training per model "
                 f"({spec.reference}'s {budget['epochs_reference']} epochs at its median "
                 f"{budget['median_epoch_s'][spec.reference]:.1f} s per epoch, seed "
                 f"{budget['calibration_seed']}), as epochs per model.")
    return text


def _forces_text(agg: Mapping[str, Any]) -> str:
    lines = ["Relative errors of the coefficients from predicted fields against those from "
             "the true fields (same surface integral), over the rollout; the last column is "
             "the surface integral on the true fields against the solver's own "
             "(volume-integral, P2) coefficients.", "",
             "| model | drag | lift | mean drag | lift amplitude | post-processing vs "
             "solver (drag / lift) |", "|---|---|---|---|---|---|"]
    for label in agg["models"]:
        floor_d = _value(agg, label, "forces_floor/drag_rel")
        floor_l = _value(agg, label, "forces_floor/lift_rel")
        lines.append("| " + " | ".join([
            label, fmt(_value(agg, label, "forces/drag_rel")),
            fmt(_value(agg, label, "forces/lift_rel")),
            fmt(_value(agg, label, "forces/drag_mean_rel")),
            fmt(_value(agg, label, "forces/lift_amplitude_rel")),
            f"{fmt(floor_d)} / {fmt(floor_l)}"]) + " |")
    return "\n".join(lines)


def _notes(spec: StudySpec, agg: Mapping[str, Any], folder: Path | None = None) -> list[str]:
    notes = []
    for label, model in agg["models"].items():
        ratio = model.get("params_ratio")
        if ratio is not None and abs(ratio - 1) > spec.param_tolerance:
            notes.append(f"{label}: {ratio:.2f}x the reference's parameters (outside "
                         f"±{spec.param_tolerance:.0%}).")
        if model["note"]:
            notes.append(f"{label}: {model['note']}.")
        for b in model["budgets"].values():
            for key in b.get("failed", []):
                record = _read(folder / "runs" / f"{key}.json") if folder else None
                why = _get(record or {}, "failed", "type") or "an error"
                notes.append(f"{label}: run {key} failed ({why}); left out.")
        done = len(model["budgets"].get("epochs", {}).get("seeds", []))
        wanted = len(spec.model(label).seeds or spec.seeds)
        if done < wanted:
            notes.append(f"{label}: {done} of {wanted} seeds finished (equal epochs).")
    if agg.get("stale_runs"):
        notes.append(f"{len(agg['stale_runs'])} result file(s) made with other settings were "
                     f"left out: {', '.join(sorted(agg['stale_runs']))}.")
    if agg.get("older_code_runs"):
        notes.append(f"{len(agg['older_code_runs'])} result file(s) were made by code that has "
                     f"changed since (kept; `--rerun-stale` redoes them).")
    notes += [f"Where we lose: {n}" for n in agg.get("losses", [])]
    notes.append("Errors are relative L2 norms of the normalized fields (quadrature-weighted), "
                 "averaged over the test samples; rollouts start at the first frame of each "
                 "test trajectory.")
    return notes


def write_readme(specs: Sequence[StudySpec], results: Path, findings: Mapping[str, str]
                 ) -> Path:
    """``<results>/README.md``: per study its main table (equal epochs), one plot, the
    claims and where our models lose, from the studies' ``summary.json``."""
    lines = ["## Results", "",
             "Accuracy studies run by `geo-neuralop study NAME` (benchmarks/accuracy/): every "
             "model trained by the same trainer on the same generated data, loss and epochs, "
             "parameter counts matched within ±10%; mean ± std over the seeds that finished. "
             "Every number below is read from the result files in "
             "`benchmarks/results/accuracy/`; each study's `summary.md` has the equal "
             "wall-clock table, per-field errors and notes.", ""]
    for spec in specs:
        agg = _read(results / spec.name / "summary.json")
        if agg is None:
            continue
        lines += [f"### {spec.title}", "", spec.description, ""]
        lines += [main_table(spec, agg, "epochs", compact=True), ""]
        plot = _readme_plot(spec, agg)
        if plot:
            lines += [f"![{spec.name}]({spec.name}/{plot})", ""]
        claims = claims_table(agg)
        if claims:
            lines += [claims, ""]
        floor = _latent_floor(results / spec.name)
        if floor:
            lines += [floor, ""]
        if spec.name in findings:
            lines += [findings[spec.name], ""]
        if agg.get("losses"):
            lines += ["Where our models lose:", ""] + [f"- {n}" for n in agg["losses"]] + [""]
        lines += [f"Full tables: [{spec.name}/summary.md]({spec.name}/summary.md).", ""]
    path = results / "README.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    return path


#: Markers of the project README's part that :func:`splice_readme` replaces.
README_BEGIN = "<!-- accuracy results: written by `geo-neuralop study`; do not edit -->"
README_END = "<!-- end of accuracy results -->"


def splice_readme(section: Path, readme: Path) -> bool:
    """Put the results section (``<results>/README.md``) into the project README.

    The text between :data:`README_BEGIN` and :data:`README_END` is replaced, with the
    section's relative links made relative to the README's folder. Returns False (and
    writes nothing) when the README has no markers.
    """
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        return False
    prefix = section.parent.resolve().relative_to(readme.parent.resolve()).as_posix()
    body = section.read_text(encoding="utf-8")
    body = re.sub(r"\]\((?!https?:|/|#)([^)]+)\)", lambda m: f"]({prefix}/{m.group(1)})", body)
    new = text[:start + len(README_BEGIN)] + "\n" + body.rstrip() + "\n" + text[end:]
    if new != text:
        with atomic_path(readme) as tmp:
            tmp.write_text(new, encoding="utf-8")
    return True


def _readme_plot(spec: StudySpec, agg: Mapping[str, Any]) -> str | None:
    plots = agg.get("plots", {})
    return plots.get(spec.readme_plot) or next(iter(plots.values()), None)
