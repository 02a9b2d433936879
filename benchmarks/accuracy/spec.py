"""What a study is: datasets, models, one training recipe, evaluations, the claims it tests.

A study is plain data (frozen dataclasses of JSON-able values), so its settings can
be hashed: a finished run is reused only while the hash of everything that
produced it (study settings of that run, datasets, code) is unchanged. A model
is one :class:`ModelEntry`: a label, a registered model name and its constructor
arguments; peers are registered by :mod:`benchmarks.accuracy.peers`, so adding a
model family to a study is one more entry in its ``models`` list.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["BUDGETS", "Claim", "DatasetSpec", "ExtraEval", "ModelEntry", "StudySpec",
           "canonical_hash", "run_key", "slug", "tune_tag"]

#: ``epochs``: every model trains the study's epochs; ``time``: every model trains for
#: the wall-clock the reference model needs for them (epochs from measured epoch times).
BUDGETS = ("epochs", "time")


def canonical_hash(value: Any) -> str:
    """SHA-256 (hex, 16 characters) of a JSON value with sorted keys."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def slug(label: str) -> str:
    """File-name form of a label: ``"LocalSFNO (DISCO)" -> "localsfno_disco"``."""
    text = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    if not text:
        raise ValueError(f"label {label!r} has no letters or digits")
    return text


def run_key(label: str, seed: int, epochs: int, tag: str = "") -> str:
    """File name of a run: ``<label slug>__s<seed>__e<epochs>[__<tag>]``.

    >>> run_key("LocalNO (DISCO)", 1, 8, "lr0.0005")
    'localno_disco__s1__e8__lr0.0005'
    """
    return f"{slug(label)}__s{seed}__e{epochs}" + (f"__{tag}" if tag else "")


def tune_tag(spec: StudySpec, value: Any) -> str:
    """The key suffix of a tuned setting: empty for the study's own value, else e.g.
    ``lr0.0005``."""
    if not spec.tune_values or value == spec.trainer.get(spec.tune_key):
        return ""
    return f"{spec.tune_key}{value:g}"


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset made by ``geo_neuralop.data.generate_dataset``.

    Attributes
    ----------
    generator : str
        One of ``geo_neuralop.data.generate.GENERATORS``.
    n_samples : int
    params : dict
        Generator parameters (the rest are the generator's defaults).
    seed : int
        Dataset seed: sample ``i`` depends only on ``(seed, i)`` and ``params``.
    split_fractions : tuple of float
        Train / val / test fractions (contiguous index ranges).
    stride_of : str, optional
        Key of a regular-grid dataset of the same study with the same generator
        settings except ``resolution``: this dataset is its every ``k``-th grid
        point, written without solving again (identical to generating it, since the
        ``ns2d`` generator stores every ``k``-th point of its solver grid).
    """

    generator: str
    n_samples: int
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    stride_of: str | None = None

    def identity(self) -> dict[str, Any]:
        """The values that define the data (``stride_of`` does not change them)."""
        return {"generator": self.generator, "n_samples": self.n_samples,
                "params": dict(self.params), "seed": self.seed,
                "split_fractions": list(self.split_fractions)}

    def folder_name(self) -> str:
        """``<generator>_<hash of identity>``: studies with the same data share it."""
        return f"{self.generator}_{canonical_hash(self.identity())}"


@dataclass(frozen=True)
class ModelEntry:
    """One model of a study.

    Attributes
    ----------
    label : str
        Name in tables and plots (unique in the study).
    config : dict
        ``{"name": <registered model>, **constructor arguments}``; channel counts
        and the grid description come from the data.
    library : str
        Whose implementation: ``"geo_neuralop"``, ``"neuraloperator"`` or
        ``"torch-harmonics"``.
    width_key : str, optional
        Constructor argument tuned so that the parameter count matches the
        study's reference model (None: used as given).
    note : str
        One line for the table's notes.
    baseline : str, optional
        Label of the model this one's gain is measured against (default: the
        study's reference), e.g. the FNO twin of a LocalNO variant.
    seeds : tuple of int, optional
        Seeds of this model when not the study's (ablations run on fewer seeds).
    data : dict, optional
        Overrides of the study's ``data`` section for this model (e.g. more
        training windows in a data-size ablation).
    """

    label: str
    config: Mapping[str, Any]
    library: str = "geo_neuralop"
    width_key: str | None = "hidden_channels"
    note: str = ""
    baseline: str | None = None
    seeds: tuple[int, ...] | None = None
    data: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if "name" not in self.config:
            raise ValueError(f"model {self.label!r}: config needs a registered 'name'")
        slug(self.label)


@dataclass(frozen=True)
class ExtraEval:
    """The trained models evaluated on another dataset (resolution, meshes).

    Attributes
    ----------
    key : str
        Short name (file names, JSON keys), e.g. ``"res128"``.
    label : str
        Column title, e.g. ``"128x128 (zero-shot)"``.
    dataset : str
        Key of the dataset in the study.
    x : float
        Abscissa of the error-vs-resolution plot (grid points per side, vertices).
    models : tuple of str, optional
        Labels evaluated (None: every model); models that cannot run on the other
        data (fixed-shape peers) are left out here.
    rollout_steps : int
        Rollout steps on that data (0: one step only).
    forces : bool
        Also compute drag/lift from the predicted fields (cylinder data).
    """

    key: str
    label: str
    dataset: str
    x: float
    models: tuple[str, ...] | None = None
    rollout_steps: int = 0
    forces: bool = False


@dataclass(frozen=True)
class Claim:
    """A published claim the study tests: ``candidate`` has at most ``(1 - reduction)``
    times the error of ``baseline``."""

    candidate: str
    baseline: str
    reduction: float
    source: str
    metric: str = "one_step"


@dataclass(frozen=True)
class StudySpec:
    """A study: datasets, models, one training recipe for all, and evaluations.

    Attributes
    ----------
    name, title : str
    description : str
        What is compared and why (one paragraph, for the report).
    datasets : dict of str to DatasetSpec
    train_dataset : str
        Key of the dataset whose train/val splits train every model; its test
        split is the main evaluation.
    models : tuple of ModelEntry
    reference : str
        Label of the baseline: its parameter count is matched, its time per epoch
        sets the wall-clock budget, gains are relative to it.
    data : dict
        The experiment's ``data`` section without ``path``.
    trainer : dict
        The experiment's ``trainer`` section (``epochs`` is the equal-epoch budget).
    evaluation : dict
        The experiment's ``evaluation`` section (test split).
    extra_evals : tuple of ExtraEval
    forces : bool
        Drag/lift from the predicted rollouts of the main test split (cylinder).
    claims : tuple of Claim
    seeds : tuple of int
    budgets : tuple of str
        Subset of :data:`BUDGETS`.
    param_tolerance : float
        Allowed relative difference of parameter counts to the reference.
    readme_plot : {"rollout", "resolution", "efficiency", "forces"}
        The plot the README section shows.
    tune_key : str
        The trainer setting tuned per model (the learning rate).
    tune_values : tuple of float
        Its candidate values, the study's ``trainer`` value among them (empty: no
        tuning). Every model gets the same tuning budget: one run per value on the
        first seed at equal epochs; the value with the lowest validation loss is
        used for all of that model's runs.
    """

    name: str
    title: str
    description: str
    datasets: Mapping[str, DatasetSpec]
    train_dataset: str
    models: tuple[ModelEntry, ...]
    reference: str
    data: Mapping[str, Any]
    trainer: Mapping[str, Any]
    evaluation: Mapping[str, Any]
    extra_evals: tuple[ExtraEval, ...] = ()
    forces: bool = False
    claims: tuple[Claim, ...] = ()
    seeds: tuple[int, ...] = (0, 1, 2)
    budgets: tuple[str, ...] = BUDGETS
    param_tolerance: float = 0.10
    readme_plot: str = "rollout"
    tune_key: str = "lr"
    tune_values: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        labels = [m.label for m in self.models]
        slugs = [slug(label) for label in labels]
        if len(set(slugs)) != len(slugs):
            raise ValueError(f"study {self.name!r}: model labels must be unique (as file "
                             f"names), got {labels}")
        if self.reference not in labels:
            raise ValueError(f"study {self.name!r}: reference {self.reference!r} is not one "
                             f"of its models {labels}")
        keys = set(self.datasets)
        if self.train_dataset not in keys:
            raise ValueError(f"study {self.name!r}: train_dataset {self.train_dataset!r} is "
                             f"not one of its datasets {sorted(keys)}")
        for ds in self.datasets.values():
            if ds.stride_of is not None and ds.stride_of not in keys:
                raise ValueError(f"study {self.name!r}: stride_of {ds.stride_of!r} is not "
                                 f"one of its datasets")
        for extra in self.extra_evals:
            if extra.dataset not in keys:
                raise ValueError(f"study {self.name!r}: extra evaluation {extra.key!r} uses "
                                 f"unknown dataset {extra.dataset!r}")
            for label in extra.models or ():
                if label not in labels:
                    raise ValueError(f"study {self.name!r}: extra evaluation {extra.key!r} "
                                     f"names unknown model {label!r}")
        for entry in self.models:
            if entry.baseline is not None and entry.baseline not in labels:
                raise ValueError(f"study {self.name!r}: model {entry.label!r} has unknown "
                                 f"baseline {entry.baseline!r}")
            if entry.seeds is not None and not set(entry.seeds) <= set(self.seeds):
                raise ValueError(f"study {self.name!r}: model {entry.label!r} seeds "
                                 f"{entry.seeds} are not among the study's {self.seeds}")
        for claim in self.claims:
            for label in (claim.candidate, claim.baseline):
                if label not in labels:
                    raise ValueError(f"study {self.name!r}: claim names unknown model "
                                     f"{label!r}")
        unknown = set(self.budgets) - set(BUDGETS)
        if unknown or not self.budgets:
            raise ValueError(f"study {self.name!r}: budgets must be a non-empty subset of "
                             f"{BUDGETS}, got {self.budgets}")
        if "epochs" not in self.trainer:
            raise ValueError(f"study {self.name!r}: trainer needs 'epochs'")
        if self.tune_values and self.trainer.get(self.tune_key) not in self.tune_values:
            raise ValueError(f"study {self.name!r}: tune_values {self.tune_values} must "
                             f"include the trainer's {self.tune_key} "
                             f"{self.trainer.get(self.tune_key)!r}")

    def model(self, label: str) -> ModelEntry:
        """The entry of a label (ValueError naming the labels if unknown)."""
        for entry in self.models:
            if entry.label == label:
                return entry
        raise ValueError(f"study {self.name!r} has no model {label!r}; its models are "
                         f"{[m.label for m in self.models]}")

    def select(self, labels: Sequence[str] | None) -> tuple[ModelEntry, ...]:
        """The entries of ``labels`` (all when None), in study order."""
        if not labels:
            return self.models
        wanted = {self.model(label).label for label in labels}
        return tuple(m for m in self.models if m.label in wanted)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (datasets and models included)."""
        return json.loads(json.dumps(asdict(self), default=str))
