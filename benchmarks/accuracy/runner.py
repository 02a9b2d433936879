"""Running a study: datasets, matched parameter counts, training runs, their result files.

Every (model, seed, epochs) is one run of :func:`geo_neuralop.training.run_experiment`
in ``<work>/runs/<study>/<key>/`` (checkpoints: an interrupted run resumes), followed
by the study's extra evaluations. Its numbers go to
``<results>/<study>/runs/<key>.json`` with the run's *fingerprint*: hashes of its
config (experiment config, datasets, evaluations) and of the code that produced
it (geo_neuralop's sources by subpackage, this harness's run-time modules, peer
versions). A later invocation

- skips a run whose result file has the same fingerprint (done),
- resumes a run whose folder holds checkpoints of the same fingerprint,
- refuses (:class:`StaleResultError`) a result or a partial run with another
  fingerprint, naming what changed, unless ``rerun_stale`` is set.

Tuning (``StudySpec.tune_values``): every model first trains once per candidate
learning rate on the first seed at equal epochs; the value with the lowest
validation loss (``tuning.json``) is used for all its runs, so every model gets the
same tuning budget. Tuning runs (and the time budget's calibration runs) made by code
that has changed since are used like the report uses them (kept and listed), so a code
change does not hold back the later seeds; runs made for another setting are not.

Budgets: ``epochs`` trains every model for the study's epochs; ``time`` gives every
model the wall-clock the reference model needs for them on this machine, as
epochs: ``round(E * t_ref / t_model)`` with the median epoch times of the
calibration seed's equal-epoch runs, frozen in ``budget.json``. A model whose
time-budget epochs equal ``E`` reuses its equal-epoch run.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import hashlib
import json
import math
import os
import shutil
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import geo_neuralop
from geo_neuralop.data import load_predictions, read_trajectory
from geo_neuralop.data.storage import sample_path
from geo_neuralop.training.adapters import build_data_spec, load_split
from geo_neuralop.training.config import ConfigError, load_config
from geo_neuralop.training.evaluation import evaluate_model, load_trained_model
from geo_neuralop.training.experiment import build_model, run_experiment
from geo_neuralop.utils import atomic_path

from . import peers
from .datasets import ensure_datasets
from .forces import cylinder_boundary, force_coefficients, force_errors
from .spec import ExtraEval, ModelEntry, StudySpec, canonical_hash, run_key, slug, tune_tag

__all__ = ["RUN_FORMAT", "RunPlan", "StaleResultError", "StudyPaths", "code_fingerprint",
           "match_parameters", "parameter_count", "plan_runs", "run_study",
           "time_budget_epochs"]

RUN_FORMAT = "geo_neuralop.accuracy_run"
BUDGET_FILE = "budget.json"
PARAMS_FILE = "params.json"
TUNING_FILE = "tuning.json"
#: Harness modules whose code changes the numbers (the report and the CLI do not).
RUNTIME_MODULES = ("peers.py", "datasets.py", "forces.py", "runner.py")


class StaleResultError(RuntimeError):
    """A result file or a partial run was made with another config or code."""


@dataclass(frozen=True)
class StudyPaths:
    """Where a study works (datasets, checkpoints) and where its results go."""

    work: Path
    results: Path

    def study_results(self, study: str) -> Path:
        return self.results / study

    def run_results(self, study: str, key: str) -> Path:
        return self.results / study / "runs" / f"{key}.json"

    def run_dir(self, study: str, key: str) -> Path:
        return self.work / "runs" / study / key


# ------------------------------------------------------------------------------ hashing
def _hash_files(paths: Sequence[Path], root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(str(path.relative_to(root)).encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def code_fingerprint() -> dict[str, Any]:
    """Hashes of the code that produces a run's numbers.

    ``parts``: one hash per geo_neuralop subpackage (and its top-level modules as
    ``geo_neuralop``), one for the harness's run-time modules
    (:data:`RUNTIME_MODULES`), and the installed peer versions; ``total`` hashes
    them all.
    """
    package = Path(geo_neuralop.__file__).resolve().parent
    parts: dict[str, Any] = {}
    top = [p for p in package.glob("*.py")]
    parts["geo_neuralop"] = _hash_files(top, package)
    for sub in sorted(p for p in package.iterdir() if p.is_dir() and
                      (p / "__init__.py").exists()):
        parts[f"geo_neuralop.{sub.name}"] = _hash_files(list(sub.rglob("*.py")), package)
    here = Path(__file__).resolve().parent
    parts["benchmarks.accuracy"] = _hash_files([here / m for m in RUNTIME_MODULES], here)
    parts["versions"] = peers.peer_versions()
    return {"total": canonical_hash(parts), "parts": parts}


# ----------------------------------------------------------------------- parameters
def parameter_count(model: torch.nn.Module) -> int:
    """Real scalars of a model's parameters (a complex weight counts twice)."""
    return int(sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters()))


def _count(config: Mapping[str, Any], data_spec) -> int:
    return parameter_count(build_model(dict(config), data_spec))


def match_parameters(entries: Sequence[ModelEntry], reference: str, data_spec,
                     tolerance: float, log: Callable[[str], None] = print
                     ) -> dict[str, dict[str, Any]]:
    """Width of every model so that its parameter count is closest to the reference's.

    The reference is used as configured; an entry with ``width_key`` gets the
    integer width whose count is closest to the reference count (the count grows with
    the width; the search starts at the configured width, stays below 4096 and skips
    widths the model rejects).

    Returns
    -------
    dict
        Per label: ``config`` (with the chosen width), ``params``, ``ratio`` (to the
        reference) and ``within`` (``|ratio - 1| <= tolerance``).
    """
    by_label = {e.label: e for e in entries}
    target = _count(by_label[reference].config, data_spec)
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        config = dict(entry.config)
        if entry.label != reference and entry.width_key is not None:
            config = _closest_width(config, entry.width_key, target, data_spec)
        params = target if entry.label == reference else _count(config, data_spec)
        ratio = params / target
        out[entry.label] = {"config": config, "params": params, "ratio": ratio,
                            "within": abs(ratio - 1.0) <= tolerance}
        log(f"  {entry.label}: {params:,} parameters ({ratio:.3f} x the reference)"
            + ("" if entry.width_key is None or entry.label == reference
               else f", {entry.width_key}={config[entry.width_key]}"))
    return out


def _closest_width(config: dict, key: str, target: int, data_spec) -> dict:
    cache: dict[int, int | None] = {}

    def count(width: int) -> int | None:
        if width not in cache:
            try:
                cache[width] = _count({**config, key: width}, data_spec)
            except (ConfigError, ValueError, TypeError, RuntimeError, AssertionError):
                cache[width] = None
        return cache[width]

    def usable(width: int) -> tuple[int, int] | None:
        for w in range(width, width + 4):  # skip widths the model rejects
            c = count(w)
            if c is not None:
                return w, c
        return None

    # bracket the target by doubling or halving from the configured width (no huge builds)
    lo = hi = max(2, int(config.get(key, 2)))
    while hi < 4096 and (usable(hi) is None or usable(hi)[1] < target):
        lo, hi = hi, 2 * hi
    while lo > 2 and (usable(lo) is None or usable(lo)[1] >= target):
        lo, hi = max(2, lo // 2), lo
    while hi - lo > 1:  # smallest usable width whose count reaches the target
        mid = (lo + hi) // 2
        found = usable(mid)
        if found is None or found[1] >= target:
            hi = mid
        else:
            lo = mid
    candidates = [c for c in (usable(lo), usable(hi)) if c is not None]
    if not candidates:
        raise ValueError(f"no {key} in [2, 4096] builds the model {config['name']!r}")
    best = min(candidates, key=lambda wc: abs(wc[1] - target))
    return {**config, key: best[0]}


# ------------------------------------------------------------------------------ plans
@dataclass
class RunPlan:
    """One training run of a study."""

    study: str
    label: str
    seed: int
    epochs: int
    config: dict[str, Any]
    params: int
    extra_evals: tuple[ExtraEval, ...]
    forces: bool
    tag: str = ""

    @property
    def key(self) -> str:
        return run_key(self.label, self.seed, self.epochs, self.tag)



    def config_hash(self, datasets: Mapping[str, Any]) -> str:
        return canonical_hash({"config": self.config, "datasets": datasets,
                               "extra_evals": [e.__dict__ for e in self.extra_evals],
                               "forces": self.forces})


def _experiment_config(spec: StudySpec, label: str, model_config: Mapping[str, Any],
                       seed: int, epochs: int, tuned: Any = None) -> dict[str, Any]:
    """The experiment config of one run (the data path is filled in at run time);
    ``tuned``: the model's value of the study's tuned trainer setting."""
    trainer = {"progress": False, "checkpoint_every_steps": 200, **copy.deepcopy(
        dict(spec.trainer)), "epochs": int(epochs), "seed": int(seed)}
    if tuned is not None:
        trainer[spec.tune_key] = tuned
    data = {**copy.deepcopy(dict(spec.data)), **copy.deepcopy(dict(spec.model(label).data
                                                                    or {}))}
    return {"name": f"{spec.name}_{slug(label)}_s{seed}_e{epochs}",
            "data": {**data, "path": f"<{spec.train_dataset}>"},
            "model": copy.deepcopy(dict(model_config)), "trainer": trainer,
            "evaluation": copy.deepcopy(dict(spec.evaluation))}


def plan_runs(spec: StudySpec, matched: Mapping[str, Mapping[str, Any]], seeds: Sequence[int],
              epochs: Mapping[str, int], labels: Sequence[str],
              tuned: Mapping[str, Any] | None = None) -> list[RunPlan]:
    """Runs of ``labels`` x ``seeds`` with the given epochs per label (seed-major);
    ``tuned`` gives a label its value of the tuned trainer setting."""
    plans = []
    for seed in seeds:
        for label in labels:
            own = spec.model(label).seeds
            if own is not None and seed not in own:
                continue
            value = (tuned or {}).get(label)
            extras = tuple(e for e in spec.extra_evals if e.models is None or label in e.models)
            config = _experiment_config(spec, label, matched[label]["config"], seed,
                                        epochs[label], value)
            plans.append(RunPlan(spec.name, label, int(seed), int(epochs[label]), config,
                                 int(matched[label]["params"]), extras, spec.forces,
                                 tune_tag(spec, value) if value is not None else ""))
    return plans


def time_budget_epochs(epoch_s: Mapping[str, float], reference: str, epochs: int
                       ) -> dict[str, int]:
    """Epochs per model for the wall-clock of ``epochs`` epochs of the reference.

    >>> time_budget_epochs({"a": 2.0, "b": 4.0, "c": 0.5}, "a", 10)
    {'a': 10, 'b': 5, 'c': 40}
    """
    if reference not in epoch_s:
        raise ValueError(f"no epoch time for the reference {reference!r}")
    budget = epochs * epoch_s[reference]
    out = {}
    for label, seconds in epoch_s.items():
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"epoch time of {label!r} must be positive, got {seconds!r}")
        out[label] = max(1, int(math.floor(budget / seconds + 0.5)))
    return out


# --------------------------------------------------------------------------- the study
def _read_json(path: Path) -> dict | None:
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_finite(payload), indent=1) + "\n", encoding="utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return _finite(value.item())
    return value


def _changed_parts(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [k for k in keys if old.get(k) != new.get(k)]


def staleness(record: Mapping[str, Any], fingerprint: Mapping[str, Any]) -> str | None:
    """Why a stored fingerprint differs from the current one (None: it does not)."""
    old = record.get("fingerprint", {})
    reasons = []
    if old.get("config") != fingerprint["config"]:
        reasons.append("its config changed")
    if old.get("code") != fingerprint["code"]:
        parts = _changed_parts(old.get("code_parts", {}), fingerprint["code_parts"])
        reasons.append(f"the code changed ({', '.join(parts) or 'unknown parts'})")
    return "; ".join(reasons) or None


def same_config(record: Mapping[str, Any], fingerprint: Mapping[str, Any]) -> bool:
    """Whether a finished run was made for the same setting (config and data) as
    ``fingerprint``, whatever code made it.

    Decisions taken from the calibration seed's runs (the tuned value, the frozen time
    budget) follow the rule of the report: a run made by code that has changed since is
    kept and listed, one made for another setting is not. So a code change does not
    hold back the later seeds; ``--rerun-stale`` on the calibration seed redoes both.
    """
    return record.get("fingerprint", {}).get("config") == fingerprint["config"]


@contextlib.contextmanager
def study_lock(directory: Path) -> Iterator[None]:
    """One process per study folder at a time (a lock file naming the owner's pid)."""
    directory.mkdir(parents=True, exist_ok=True)
    lock = directory / ".lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or "0")
                os.kill(pid, 0)
            except (ValueError, ProcessLookupError):
                lock.unlink(missing_ok=True)  # its process is gone
                continue
            except PermissionError:
                pass
            raise RuntimeError(f"{directory} is in use by process {pid} (lock {lock}); wait "
                               f"for it to finish") from None
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


class StudyRunner:
    """Runs the plans of one study (see the module docstring)."""

    def __init__(self, spec: StudySpec, paths: StudyPaths, *, rerun_stale: bool = False,
                 workers: int = 1, log: Callable[[str], None] = print) -> None:
        self.spec, self.paths, self.rerun_stale = spec, paths, rerun_stale
        self.workers, self.log = workers, log
        self.code = code_fingerprint()
        self.roots: dict[str, Path] = {}
        self.dataset_ids = {k: d.identity() for k, d in spec.datasets.items()}

    # ---- preparation ----------------------------------------------------------------
    def prepare(self) -> None:
        """Generate or confirm the datasets."""
        self.log(f"[{self.spec.name}] datasets")
        self.roots = ensure_datasets(self.spec.datasets, self.paths.work,
                                     workers=self.workers, log=self.log)

    def _config_with_path(self, config: Mapping[str, Any]) -> dict[str, Any]:
        cfg = copy.deepcopy(dict(config))
        cfg["data"]["path"] = str(self.roots[self.spec.train_dataset])
        return cfg

    def matched(self) -> dict[str, dict[str, Any]]:
        """Parameter-matched configs (cached in ``params.json`` by the hash of the study's
        models and data)."""
        spec = self.spec
        ident = canonical_hash({"models": [(m.label, dict(m.config), m.width_key)
                                           for m in spec.models],
                                "reference": spec.reference, "data": dict(spec.data),
                                "dataset": self.dataset_ids[spec.train_dataset],
                                "code": self.code["total"]})
        path = self.paths.study_results(spec.name) / PARAMS_FILE
        cached = _read_json(path)
        if cached and cached.get("hash") == ident:
            return cached["models"]
        self.log(f"[{spec.name}] matching parameter counts to {spec.reference!r}")
        cfg = load_config(self._config_with_path(_experiment_config(
            spec, spec.reference, spec.model(spec.reference).config, 0, 1)))
        train = load_split(cfg["data"]["path"], "train", cfg["data"], verify=False)
        data_spec = build_data_spec(cfg, train)  # one model family per study
        models = match_parameters(spec.models, spec.reference, data_spec,
                                  spec.param_tolerance, log=self.log)
        _write_json(path, {"hash": ident, "reference": spec.reference,
                           "tolerance": spec.param_tolerance, "models": models})
        return models

    # ---- one run ----------------------------------------------------------------------
    def fingerprint(self, plan: RunPlan) -> dict[str, Any]:
        return {"config": plan.config_hash(self.dataset_ids), "code": self.code["total"],
                "code_parts": self.code["parts"]}

    def status(self, plan: RunPlan) -> tuple[str, str | None]:
        """``("done" | "todo" | "stale", reason)`` of a plan."""
        record = _read_json(self.paths.run_results(plan.study, plan.key))
        fingerprint = self.fingerprint(plan)
        if record is not None:
            reason = staleness(record, fingerprint)
            return ("stale", f"{self.paths.run_results(plan.study, plan.key)}: {reason}") \
                if reason else ("done", None)
        started = _read_json(self.paths.run_dir(plan.study, plan.key) / "study_run.json")
        if started is not None:
            reason = staleness(started, fingerprint)
            if reason:
                return "stale", (f"partial run {self.paths.run_dir(plan.study, plan.key)}: "
                                 f"{reason}")
        return "todo", None

    def run(self, plan: RunPlan) -> dict[str, Any]:
        """Train, evaluate and write the result file of one plan (resuming a partial run)."""
        fingerprint = self.fingerprint(plan)
        run_dir = self.paths.run_dir(plan.study, plan.key)
        state, reason = self.status(plan)
        if state == "stale":
            if not self.rerun_stale:
                raise StaleResultError(reason)
            self.log(f"  rerunning stale {plan.key}: {reason}")
            shutil.rmtree(run_dir, ignore_errors=True)
            self.paths.run_results(plan.study, plan.key).unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(run_dir / "study_run.json", {"fingerprint": fingerprint,
                                                  "config": plan.config})
        train_dir = run_dir / "train"  # the trainer's own run folder (marked and locked)
        resume = any((train_dir / "checkpoints").glob("*.pt"))
        load_start = os.getloadavg()[0]
        clock = time.perf_counter()
        self.log(f"  {'resuming' if resume else 'training'} {plan.label} seed {plan.seed}, "
                 f"{plan.epochs} epochs ({plan.params:,} parameters)")
        result = run_experiment(self._config_with_path(plan.config), train_dir, resume=resume,
                                overwrite=not resume)
        train_s = time.perf_counter() - clock
        model, experiment = load_trained_model(result["checkpoint"])
        record = {
            "format": RUN_FORMAT, "version": 1, "study": plan.study, "label": plan.label,
            "key": plan.key, "seed": plan.seed, "epochs": plan.epochs,
            "model": plan.config["model"], "trainer": plan.config["trainer"],
            "params": plan.params, "fingerprint": fingerprint,
            "train": _train_summary(result["history"], train_s),
            "test": _summarize(result["evaluation"]),
            "extras": {},
            "load_average": [round(load_start, 2), round(os.getloadavg()[0], 2)],
            "threads": torch.get_num_threads(),
            "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        if plan.forces:
            record["forces"] = self._guarded(self._forces, result["evaluation"],
                                             self.spec.train_dataset)
        for extra in plan.extra_evals:
            record["extras"][extra.key] = self._guarded(self._extra, model, experiment,
                                                        extra, run_dir)
        _write_json(self.paths.run_results(plan.study, plan.key), record)
        self.log(f"  done {plan.key}: test one-step rel L2 "
                 f"{record['test']['one_step'].get('rel_l2', float('nan')):.4g} in "
                 f"{train_s:.0f} s")
        return record

    def _guarded(self, fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
        """``fn(*args)``, or ``{"error": ...}`` when it fails (the trained run is kept)."""
        try:
            return fn(*args)
        except Exception as error:  # an evaluation the model cannot do is a result too
            self.log(f"  evaluation {getattr(fn, '__name__', fn)} failed: "
                     f"{type(error).__name__}: {error}")
            return {"error": f"{type(error).__name__}: {str(error)[:300]}"}

    def _extra(self, model: torch.nn.Module, experiment: Mapping[str, Any], extra: ExtraEval,
               run_dir: Path) -> dict[str, Any]:
        """One-step (and rollout) errors on another dataset's test split."""
        out_dir = run_dir / f"evaluation_{extra.key}" if extra.forces else None
        settings = {"prediction_files": 10**6 if extra.forces else 0}
        evaluation = evaluate_model(model, experiment, data=self.roots[extra.dataset],
                                    split="test", rollout_steps=extra.rollout_steps,
                                    out_dir=out_dir, settings=settings)
        out = _summarize(evaluation)
        if extra.forces:
            out["forces"] = self._forces(evaluation, extra.dataset)
        return out

    def _forces(self, evaluation: Mapping[str, Any], dataset_key: str) -> dict[str, Any]:
        """Drag/lift errors of the rollout prediction files of an evaluation."""
        files = evaluation.get("predictions") or []
        roll = evaluation.get("rollout") or {}
        indices = roll.get("trajectories", [])
        per_model, per_floor, series = [], [], None
        for path, index in zip(files, indices, strict=False):
            pred = load_predictions(path)
            traj = read_trajectory(sample_path(self.roots[dataset_key], index))
            solver = traj.params["solver"]
            names = list(pred.field_names)
            boundary = cylinder_boundary(traj.pos, traj.faces, traj.static["node_type"],
                                         solver["center"])

            def coefficients(frames: np.ndarray, names=names, boundary=boundary,
                             solver=solver) -> tuple[np.ndarray, np.ndarray]:
                u, v, p = (frames[..., names.index(n)] for n in ("u", "v", "p"))
                return force_coefficients(boundary, u, v, p, solver["nu"], solver["u_mean"],
                                          solver["diameter"])

            done = pred.prediction.shape[0]
            true_c = coefficients(pred.truth[:done])
            pred_c = coefficients(pred.prediction)
            times = np.asarray(pred.times[:done])
            solver_c = (np.interp(times, traj.series["force_times"], traj.series["drag"]),
                        np.interp(times, traj.series["force_times"], traj.series["lift"]))
            per_model.append(force_errors(pred_c, true_c))
            per_floor.append(force_errors(true_c, solver_c))
            if series is None:
                series = {"trajectory": int(index), "times": times.tolist(),
                          "drag": {"solver": solver_c[0].tolist(), "truth": true_c[0].tolist(),
                                   "model": pred_c[0].tolist()},
                          "lift": {"solver": solver_c[1].tolist(), "truth": true_c[1].tolist(),
                                   "model": pred_c[1].tolist()}}
        if not per_model:
            return {}

        def mean(rows: list[dict[str, float]]) -> dict[str, float]:
            return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}

        return {"trajectories": len(per_model), "model_vs_truth": mean(per_model),
                "postprocessing_vs_solver": mean(per_floor), "series": series}


def _train_summary(history: Sequence[Mapping[str, Any]], wall_s: float) -> dict[str, Any]:
    epoch_s = [float(r.get("epoch_time_s", math.nan)) for r in history]
    return {"wall_s": wall_s, "epoch_s": epoch_s,
            "median_epoch_s": statistics.median(epoch_s) if epoch_s else None,
            "train_loss": [float(r.get("train_loss", math.nan)) for r in history],
            "val_loss": [float(r.get("val_loss", math.nan)) for r in history]}


def _summarize(evaluation: Mapping[str, Any] | None) -> dict[str, Any]:
    """The numbers of an :func:`evaluate_model` result the study keeps (small)."""
    if not evaluation:
        return {}
    one = evaluation.get("one_step") or {}
    keep = lambda d: {k: v for k, v in (d or {}).items()  # noqa: E731
                      if k.startswith(("rel_l2", "rel_h1"))}
    out: dict[str, Any] = {"samples": one.get("samples"), "one_step": keep(one.get("model")),
                           "persistence": keep(one.get("persistence"))}
    roll = evaluation.get("rollout")
    if roll:
        out["rollout"] = {
            "steps": roll["steps"], "stable": roll["stable"],
            "failure_step": roll["failure_step"],
            "trajectories": len(roll["trajectories"]),
            "mean_rel_l2": roll["mean_rel_l2"],
            "model": {k: v for k, v in roll["model"].items() if k.startswith("rel_l2")},
            "persistence": {k: v for k, v in roll["persistence"].items()
                            if k == "rel_l2"},
        }
    return out


# ------------------------------------------------------------------------------ driver
def run_study(spec: StudySpec, paths: StudyPaths, *, seeds: Sequence[int] | None = None,
              budgets: Sequence[str] | None = None, labels: Sequence[str] | None = None,
              rerun_stale: bool = False, workers: int = 1,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume, or confirm) a study's runs; return what was done.

    Parameters
    ----------
    spec : StudySpec
    paths : StudyPaths
    seeds : sequence of int, optional
        Subset of the study's seeds (default all).
    budgets : sequence of str, optional
        Subset of the study's budgets (default all).
    labels : sequence of str, optional
        Subset of the models (default all).
    rerun_stale : bool
        Delete and rerun stale results instead of refusing.

    Returns
    -------
    dict
        ``ran``, ``skipped`` (keys), ``deferred`` (time-budget runs waiting for the
        calibration runs) and ``wall_s``.

    Raises
    ------
    StaleResultError
        Before anything is trained, when a planned run is stale and ``rerun_stale``
        is False.
    """
    seeds = list(spec.seeds if seeds is None else seeds)
    budgets = list(spec.budgets if budgets is None else budgets)
    unknown = sorted(set(seeds) - set(spec.seeds))
    if unknown:
        raise ValueError(f"--seeds: study {spec.name!r} has seeds {list(spec.seeds)}, got "
                         f"{unknown}")
    bad = sorted(set(budgets) - set(spec.budgets))
    if bad:
        raise ValueError(f"--budgets: study {spec.name!r} has budgets {list(spec.budgets)}, "
                         f"got {bad}")
    entries = spec.select(labels)
    clock = time.perf_counter()
    runner = StudyRunner(spec, paths, rerun_stale=rerun_stale, workers=workers, log=log)
    summary: dict[str, Any] = {"ran": [], "skipped": [], "deferred": []}
    with study_lock(paths.work / "runs" / spec.name):
        runner.prepare()
        matched = runner.matched()
        outside = [f"{k} ({v['ratio']:.2f}x)" for k, v in matched.items() if not v["within"]]
        if outside:
            log(f"[{spec.name}] parameter counts outside +-{spec.param_tolerance:.0%} of "
                f"the reference: {', '.join(outside)}")
        labels_all = [m.label for m in entries]
        epochs = int(spec.trainer["epochs"])
        seed0 = calibration_seed(spec)
        if spec.tune_values and seed0 in seeds:  # the same tuning runs for every model
            tuning = [p for value in spec.tune_values for p in plan_runs(
                spec, matched, [seed0], dict.fromkeys(labels_all, epochs), labels_all,
                dict.fromkeys(labels_all, value))]
            _refuse_stale(runner, tuning)
            for plan in tuning:
                _run_or_skip(runner, plan, summary)
        tuned = _tuned_values(runner, matched, log)
        if tuned is None:
            summary["deferred"] = [m.label for m in entries]
            summary["wall_s"] = time.perf_counter() - clock
            return summary
        plans = plan_runs(spec, matched, seeds, dict.fromkeys(labels_all, epochs),
                          labels_all, tuned)
        # the equal-epoch runs come first (also needed to calibrate the time budget)
        _refuse_stale(runner, plans)
        for plan in plans:
            _run_or_skip(runner, plan, summary)
        if "time" in budgets:
            budget = _time_budget(runner, matched, tuned, log)
            if budget is None:
                summary["deferred"] = [m.label for m in entries]
            else:
                timed = [label for label in labels_all if label in budget["epochs"]]
                time_plans = [p for p in plan_runs(spec, matched, seeds, budget["epochs"],
                                                   timed, tuned) if p.epochs != epochs]
                _refuse_stale(runner, time_plans)
                for plan in time_plans:
                    _run_or_skip(runner, plan, summary)
    summary["wall_s"] = time.perf_counter() - clock
    return summary


def _refuse_stale(runner: StudyRunner, plans: Sequence[RunPlan]) -> None:
    if runner.rerun_stale:
        return
    stale = [reason for plan in plans for state, reason in [runner.status(plan)]
             if state == "stale"]
    if stale:
        raise StaleResultError(
            f"{len(stale)} result(s) of study {runner.spec.name!r} were made with another "
            f"config or code; rerun them with --rerun-stale (or move them away):\n  "
            + "\n  ".join(stale))


def _run_or_skip(runner: StudyRunner, plan: RunPlan, summary: dict[str, Any]) -> None:
    state, _ = runner.status(plan)
    if state == "done":
        summary["skipped"].append(plan.key)
        return
    try:
        runner.run(plan)
    except (StaleResultError, KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # a run that fails (divergence, a model's own error) is a result
        runner.log(f"  FAILED {plan.key}: {type(error).__name__}: {error}")
        record = {"format": RUN_FORMAT, "version": 1, "study": plan.study, "label": plan.label,
                  "key": plan.key, "seed": plan.seed, "epochs": plan.epochs,
                  "model": plan.config["model"], "trainer": plan.config["trainer"],
                  "params": plan.params, "fingerprint": runner.fingerprint(plan),
                  "test": {}, "extras": {},
                  "failed": {"type": type(error).__name__, "message": str(error)[:500]}}
        _write_json(runner.paths.run_results(plan.study, plan.key), record)
        summary.setdefault("failed", []).append(plan.key)
    summary["ran"].append(plan.key)


def calibration_seed(spec: StudySpec) -> int:
    """The seed whose equal-epoch runs set the time budget (the study's first)."""
    return int(spec.seeds[0])


def best_loss(record: Mapping[str, Any] | None) -> float:
    """The lowest validation loss of a run record (inf for a failed or missing one)."""
    losses = [v for v in _get_list(record, "train", "val_loss")
              if v is not None and math.isfinite(v)]
    return min(losses) if losses else math.inf


def _get_list(record: Mapping[str, Any] | None, *keys: str) -> list:
    value: Any = record or {}
    for key in keys:
        value = value.get(key, {}) if isinstance(value, Mapping) else {}
    return list(value) if isinstance(value, list) else []


def _tuned_values(runner: StudyRunner, matched: Mapping[str, Mapping[str, Any]],
                  log: Callable[[str], None]) -> dict[str, Any] | None:
    """Each model's value of the tuned setting (``tuning.json``); the study's own value
    for every model without tuning; None while tuning runs are missing."""
    spec, paths = runner.spec, runner.paths
    labels = [m.label for m in spec.models]
    if not spec.tune_values:
        return dict.fromkeys(labels, spec.trainer.get(spec.tune_key))
    epochs = int(spec.trainer["epochs"])
    seed = calibration_seed(spec)
    losses: dict[str, dict[str, float]] = {label: {} for label in labels}
    hashes = {}
    for value in spec.tune_values:
        for plan in plan_runs(spec, matched, [seed], dict.fromkeys(labels, epochs), labels,
                              dict.fromkeys(labels, value)):
            record = _read_json(paths.run_results(spec.name, plan.key))
            if record is None or not same_config(record, runner.fingerprint(plan)):
                log(f"[{spec.name}] waiting for the tuning runs of seed {seed} (run "
                    f"--seeds {seed}): {plan.key} is not done")
                return None
            losses[plan.label][f"{value:g}"] = best_loss(record)
            hashes[plan.key] = runner.fingerprint(plan)["config"]
    default = spec.trainer.get(spec.tune_key)
    chosen = {label: min(spec.tune_values, key=lambda v, label=label:
                         (losses[label][f"{v:g}"], v != default))
              if losses[label] else default for label in labels}
    path = paths.study_results(spec.name) / TUNING_FILE
    stored = _read_json(path)
    ident = canonical_hash(hashes)
    if not stored or stored.get("hash") != ident:
        _write_json(path, {"hash": ident, "key": spec.tune_key, "values": list(spec.tune_values),
                           "seed": seed, "epochs": epochs, "best_val_loss": losses,
                           "chosen": chosen})
        log(f"[{spec.name}] tuned {spec.tune_key}: {chosen}")
    return chosen


def _time_budget(runner: StudyRunner, matched: Mapping[str, Mapping[str, Any]],
                 tuned: Mapping[str, Any], log: Callable[[str], None]
                 ) -> dict[str, Any] | None:
    """The frozen time budget (``budget.json``), computed once the calibration runs exist."""
    spec, paths = runner.spec, runner.paths
    epochs = int(spec.trainer["epochs"])
    all_labels = [m.label for m in spec.models]
    seed = calibration_seed(spec)
    plans = plan_runs(spec, matched, [seed], dict.fromkeys(all_labels, epochs), all_labels,
                      tuned)
    ident = canonical_hash({p.label: runner.fingerprint(p)["config"] for p in plans})
    path = paths.study_results(spec.name) / BUDGET_FILE
    stored = _read_json(path)
    if stored and stored.get("hash") == ident:
        return stored
    epoch_s = {}
    for plan in plans:
        record = _read_json(paths.run_results(spec.name, plan.key))
        if record is None or not same_config(record, runner.fingerprint(plan)):
            log(f"[{spec.name}] time budget deferred: seed {seed}'s equal-epoch run of "
                f"{plan.label!r} is not done (run it with --seeds {seed})")
            return None
        if record.get("failed"):  # no time-budget run for a model that failed
            continue
        epoch_s[plan.label] = float(record["train"]["median_epoch_s"])
    per_model = time_budget_epochs(epoch_s, spec.reference, epochs)
    budget = {"hash": ident, "reference": spec.reference, "epochs_reference": epochs,
              "calibration_seed": seed, "median_epoch_s": epoch_s,
              "budget_s": epochs * epoch_s[spec.reference], "epochs": per_model}
    _write_json(path, budget)
    log(f"[{spec.name}] time budget {budget['budget_s']:.0f} s: epochs {per_model}")
    return budget
