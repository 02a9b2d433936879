"""Experiment configs: YAML files with ``data``, ``model``, ``trainer`` and ``evaluation`` sections.

A config names a dataset (made by ``geo-neuralop generate``), a registered
model with its constructor arguments, the :class:`~geo_neuralop.training.TrainerConfig`
settings and what evaluation reports::

    name: swe_local_sfno            # optional; default: the file name
    data:
      path: datasets/swe_small      # dataset folder with card.yaml (required)
      input_steps: 1
    model:
      name: local_sfno              # a registered model (required)
      lmax: 16                      # constructor arguments; in/out channels come from the data
      hidden_channels: 32
    trainer:
      epochs: 20
      lr: 1.0e-3
    evaluation:
      rollout_steps: 10

:func:`load_config` reads the file, applies ``--set key.path=value`` overrides
and calls :func:`validate_config`, which fills defaults and reports *every*
problem at once, each with its key path: wrong types
(``model.hidden_channels: expected int, got 'abc'``), unknown keys with the
closest known name (``trainer.epoch: unknown key; did you mean 'epochs'?``),
missing required keys, and a dataset path that holds no dataset. Model
arguments are checked against the type annotations of the model's
constructor, trainer settings against :class:`TrainerConfig`.

YAML note: plain PyYAML reads ``1e-3`` as a *string* (YAML 1.1 wants ``1.0e-3``);
the loader here reads every number written in scientific notation as a float.

The schema is written by hand on purpose: pydantic and OmegaConf structured configs were
tried on the same inputs and neither gives these messages (key path, value, closest key,
every problem at once) without as much translation code; OmegaConf also turns strings
into numbers silently. The comparison is in ``docs/design/config_schema.md``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import math
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from geo_neuralop.models.registry import get_model_class, list_models
from geo_neuralop.training.trainer_config import TrainerConfig
from geo_neuralop.utils import atomic_path
from geo_neuralop.utils.yaml_values import load_yaml, yaml_error_location

__all__ = [
    "DATA_KEYS",
    "EVALUATION_KEYS",
    "SECTIONS",
    "TRAINER_EXTRA_KEYS",
    "ConfigError",
    "apply_overrides",
    "dump_config",
    "load_config",
    "read_yaml",
    "validate_config",
]

SECTIONS = ("data", "model", "trainer", "evaluation")
TOP_LEVEL = ("name", *SECTIONS)

#: Constructor arguments the experiment fills from the data when the config omits them
#: (per model family, see :data:`geo_neuralop.models.registry.FAMILIES`).
INFERRED_MODEL_KEYS = {
    "grid": ("in_channels", "out_channels", "domain", "periodic", "n_dim"),
    "sphere": ("in_channels", "out_channels", "grid"),
    "mesh": ("in_channels", "out_channels", "pos_dim"),
}

#: Keys of the ``model`` section that are not constructor arguments.
MODEL_RESERVED = ("name", "residual")

LOSSES = ("rel_l2", "abs_l2", "rel_h1", "abs_h1", "rel_sobolev", "abs_sobolev")

_REQUIRED = object()


class ConfigError(ValueError):
    """One or more problems in a config; ``errors`` lists them, each starting with its key path."""

    def __init__(self, errors: Sequence[str], source: str | None = None) -> None:
        self.errors = list(errors)
        self.source = source
        where = f"invalid config {source}" if source else "invalid config"
        if len(self.errors) == 1:
            message = f"{where}: {self.errors[0]}"
        else:
            message = f"{where} ({len(self.errors)} problems):\n" + "\n".join(
                f"  {e}" for e in self.errors)
        super().__init__(message)


# --------------------------------------------------------------------------------------
# schema of the data and evaluation sections
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One config key: its type (a typing hint), default, extra check and description."""

    hint: Any
    default: Any
    help: str
    check: Any = None  # callable(value) -> error text or None


def _positive(value: Any) -> str | None:
    return None if value is None or value >= 1 else f"must be at least 1, got {value!r}"


def _non_negative(value: Any) -> str | None:
    return None if value is None or value >= 0 else f"must be >= 0, got {value!r}"


def _node_types(value: Any) -> str | None:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return None
    return f"must be 'auto' or a non-negative int, got {value!r}"


def _auto_or_bool(value: Any) -> str | None:
    return None if value in ("auto", True, False) else \
        f"must be true, false or 'auto', got {value!r}"


def _residual(value: Any) -> str | None:
    return None if value in ("auto", True, False) else \
        f"must be true, false or 'auto', got {value!r}"


def _choice(*options: Any):
    def check(value: Any) -> str | None:
        return None if value in options else f"must be one of {list(options)}, got {value!r}"
    return check


def _finite(value: Any) -> str | None:
    return None if math.isfinite(value) else f"must be a finite number, got {value!r}"


def _positive_number(value: Any) -> str | None:
    if value is None or (math.isfinite(value) and value > 0):
        return None
    return f"must be a positive number, got {value!r}"


DATA_KEYS: dict[str, Key] = {
    "path": Key(str, _REQUIRED, "dataset folder (with card.yaml) made by `geo-neuralop "
                "generate`; relative paths are taken from the current folder"),
    "input_steps": Key(int, 1, "frames given to the model (time-dependent data)", _positive),
    "frame_step": Key(int, 1, "frames between the model's input and its target (and between "
                      "input frames)", _positive),
    "normalize": Key(bool, True, "normalize fields with the dataset's normalizer (statistics "
                     "of the training split; stored with the model)"),
    "verify": Key(bool, True, "check the SHA-256 of every dataset file against the card"),
    "conditioning": Key(bool, True, "append the card's per-sample scalars (e.g. the Reynolds "
                        "number), standardized, as constant input channels"),
    "node_types": Key(int | str, "auto", "one-hot node-type channels for mesh models: the "
                      "number of types, 0 for none, or 'auto' (from the data)", _node_types),
    "val_split": Key(str | None, "val", "split evaluated after each epoch (null: none)"),
    "max_train_samples": Key(int | None, None, "use at most this many training samples "
                             "(evenly spaced; null: all)", _positive),
    "max_val_samples": Key(int | None, None, "use at most this many validation samples",
                           _positive),
    "precompute_kernels": Key(bool | str, "auto", "build the per-mesh kernels of mesh models "
                              "(MeshNO, MeshGraphNet) once per geometry in the data pipeline "
                              "(DataLoader workers) and keep them in a kernel store, so the "
                              "training step builds none: 'auto' (models that have them), true "
                              "or false (the model's own caches)", _auto_or_bool),
    "kernel_store": Key(str | None, None, "folder of that kernel store; runs whose models build "
                        "the same kernels can share one (e.g. beside the dataset). null: "
                        "<out_dir>/kernel_store"),
}

EVALUATION_KEYS: dict[str, Key] = {
    "split": Key(str, "test", "split to evaluate"),
    "after_training": Key(bool, True, "evaluate at the end of `geo-neuralop train`"),
    "checkpoint": Key(str, "best", "which checkpoint to evaluate after training: 'best' "
                      "(lowest validation loss, if any) or 'last'", _choice("best", "last")),
    "rollout_steps": Key(int | None, None, "autoregressive steps of the rollout (time-dependent "
                         "data; null: as many as the trajectories allow, 0: no rollout)",
                         _non_negative),
    "rollout_start": Key(int, 0, "frame of each trajectory where the rollout starts (skip "
                         "start-up transients)", _non_negative),
    "max_samples": Key(int | None, None, "one-step metrics on at most this many samples",
                       _positive),
    "max_trajectories": Key(int | None, None, "roll out at most this many trajectories",
                            _positive),
    "prediction_files": Key(int, 2, "prediction files (HDF5, for `geo-neuralop render`) to "
                            "write: one per trajectory, or per sample for static data",
                            _non_negative),
    "batch_size": Key(int | None, None, "batch size of the one-step evaluation (null: the "
                      "trainer's)", _positive),
    "blowup_factor": Key(float | None, 1e3, "a rollout fails when max |state| exceeds this "
                         "times max |initial state| (null: only NaN/inf)", _positive_number),
    "device": Key(str, "auto", "'auto' (CUDA if available), 'cpu' or 'cuda[:i]'"),
}

TRAINER_EXTRA_KEYS: dict[str, Key] = {
    "loss": Key(str, "rel_l2", "training loss: relative/absolute L2, H1 or spectral Sobolev "
                "H^s (H1 and Sobolev on grids and spheres only), with the data's quadrature "
                "weights", _choice(*LOSSES)),
    "sobolev_s": Key(float, -1.0, "order s of the rel_sobolev/abs_sobolev loss (negative, e.g. "
                     "-1 for H^-1, in the Spectral-Refiner fine-tuning)", _finite),
    "noise_std": Key(float, 0.0, "std of Gaussian noise added to the input frames during "
                     "training (normalized units; steadies rollouts)", _non_negative),
}


# --------------------------------------------------------------------------------------
# type checking against typing hints
# --------------------------------------------------------------------------------------


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def matches(value: Any, hint: Any) -> bool:
    """Whether a plain YAML value fits a typing hint (int, float, str, X | None, Sequence[X] ...).

    ``float`` accepts ints; ``int`` rejects bools; unknown hints accept anything.
    """
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    if hint is None or hint is type(None):
        return value is None
    if _is_union(hint):
        return any(matches(value, h) for h in typing.get_args(hint))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    origin = typing.get_origin(hint) or hint
    args = typing.get_args(hint)
    if origin in (list, tuple, Sequence, typing.Sequence) or (
            isinstance(origin, type) and issubclass(origin, Sequence) and origin is not str):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(
                matches(v, h) for v, h in zip(value, args, strict=True))
        return not args or all(matches(v, args[0]) for v in value)
    if origin in (dict, Mapping, typing.Mapping) or (
            isinstance(origin, type) and issubclass(origin, Mapping)):
        return isinstance(value, dict)
    return True


def describe(hint: Any) -> str:
    """Readable name of a typing hint: ``int``, ``float or null``, ``list of int`` ..."""
    if hint is Any or hint is inspect.Parameter.empty:
        return "any value"
    if hint is None or hint is type(None):
        return "null"
    if _is_union(hint):
        parts = [describe(h) for h in typing.get_args(hint)]
        nulls = [p for p in parts if p == "null"]
        return " or ".join([p for p in parts if p != "null"] + nulls)
    if hint in (bool, int, float, str):
        return {bool: "true/false"}.get(hint, hint.__name__)
    origin = typing.get_origin(hint) or hint
    args = typing.get_args(hint)
    if origin in (dict, Mapping, typing.Mapping):
        return "a mapping"
    if isinstance(origin, type) and issubclass(origin, Sequence):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} values ({', '.join(describe(a) for a in args)})"
        return f"list of {describe(args[0])}" if args else "a list"
    return getattr(hint, "__name__", str(hint))


def _suggest(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"known keys: {', '.join(sorted(known))}"


def _check_section(section: str, given: Mapping[str, Any], schema: Mapping[str, Key],
                   errors: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in given.items():
        if key not in schema:
            errors.append(f"{section}.{key}: unknown key; {_suggest(str(key), list(schema))}")
            continue
        spec = schema[key]
        if not matches(value, spec.hint):
            errors.append(f"{section}.{key}: expected {describe(spec.hint)}, got {value!r}")
            continue
        if spec.check is not None:
            problem = spec.check(value)
            if problem:
                errors.append(f"{section}.{key}: {problem}")
                continue
        out[key] = value
    for key, spec in schema.items():
        if key in out or key in given:
            continue
        if spec.default is _REQUIRED:
            errors.append(f"{section}.{key}: missing (required): {spec.help}")
        else:
            out[key] = copy.deepcopy(spec.default)
    return out


# --------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------


def _constructor_hints(cls: type) -> tuple[dict[str, Any], list[str], bool]:
    """Annotated constructor arguments, the required ones, and whether it takes ``**kwargs``."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    try:
        hints = typing.get_type_hints(cls.__init__)
    except (NameError, TypeError, AttributeError):  # an annotation that cannot be resolved
        hints = {}
    accepted: dict[str, Any] = {}
    required: list[str] = []
    var_kw = False
    for p in params:
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            var_kw = True
        elif p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            accepted[p.name] = hints.get(p.name, Any)
            if p.default is inspect.Parameter.empty:
                required.append(p.name)
    return accepted, required, var_kw


def _check_model(given: Any, errors: list[str]) -> dict[str, Any]:
    if not isinstance(given, Mapping):
        errors.append(f"model: expected a mapping, got {given!r}")
        return {}
    out = dict(given)
    name = given.get("name")
    if name is None:
        errors.append(f"model.name: missing (required): one of {', '.join(list_models())}")
        return out
    if not isinstance(name, str):
        errors.append(f"model.name: expected str, got {name!r}")
        return out
    try:
        cls = get_model_class(name)
    except ValueError:
        close = difflib.get_close_matches(name, list_models(), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else f"available: {', '.join(list_models())}"
        errors.append(f"model.name: unknown model {name!r}; {hint}")
        return out
    registered = getattr(cls, "registered_name", name)
    out["name"] = registered
    family = getattr(cls, "family", None)
    if family is None:
        with_family = [n for n in list_models() if getattr(get_model_class(n), "family", None)]
        errors.append(f"model.name: {registered!r} has no data adapter; models with one: "
                      f"{', '.join(with_family)}")
        return out
    residual = given.get("residual", "auto")
    problem = _residual(residual)
    if problem:
        errors.append(f"model.residual: {problem}")
    out["residual"] = residual
    accepted, required, var_kw = _constructor_hints(cls)
    for key, value in given.items():
        if key in MODEL_RESERVED:
            continue
        if key not in accepted:
            if not var_kw:
                errors.append(f"model.{key}: unknown argument of {registered!r}; "
                              f"{_suggest(str(key), [*accepted, *MODEL_RESERVED])}")
            continue
        if not matches(value, accepted[key]):
            errors.append(f"model.{key}: expected {describe(accepted[key])}, got {value!r}")
    inferred = INFERRED_MODEL_KEYS[family]
    for key in required:
        if key not in given and key not in inferred:
            errors.append(f"model.{key}: missing (required by {registered!r}, type "
                          f"{describe(accepted[key])})")
    return out


def _trainer_schema() -> dict[str, Key]:
    hints = typing.get_type_hints(TrainerConfig)
    schema = {}
    for f in dataclasses.fields(TrainerConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        hint = hints.get(f.name, Any)
        if f.name == "collate":  # YAML can only name one
            hint = str
        if f.name == "out_dir":  # None: --out, else outputs/runs/<name>
            hint, default = str | None, None
        schema[f.name] = Key(hint, default, "")
    schema.update(TRAINER_EXTRA_KEYS)
    return schema


def _check_trainer(given: Any, errors: list[str]) -> dict[str, Any]:
    if not isinstance(given, Mapping):
        errors.append(f"trainer: expected a mapping, got {given!r}")
        return {}
    schema = _trainer_schema()
    out = _check_section("trainer", given, schema, errors)
    for key, value in out.items():  # ranges and choices, with TrainerConfig's own messages
        if key in TRAINER_EXTRA_KEYS or key not in given or value is None and key == "out_dir":
            continue
        try:
            TrainerConfig.from_dict({key: value}, path="trainer")
        except (ValueError, TypeError) as error:
            errors.append(str(error))
    return out


def validate_config(raw: Any, source: str | None = None, check_paths: bool = True
                    ) -> dict[str, Any]:
    """Check a config and fill the defaults of the data, trainer and evaluation sections.

    Parameters
    ----------
    raw : mapping
        The parsed YAML.
    source : str, optional
        File name used in messages (and as the default ``name``).
    check_paths : bool
        Check that ``data.path`` holds a dataset (a folder with ``card.yaml``).

    Returns
    -------
    dict
        ``{"name", "data", "model", "trainer", "evaluation"}``; the model section
        holds ``name``, ``residual`` and the constructor arguments given.

    Raises
    ------
    ConfigError
        Listing every problem, each as ``section.key: what is wrong``.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError([f"the config must be a mapping of sections {list(SECTIONS)}, got "
                           f"{type(raw).__name__}"], source)
    errors: list[str] = []
    for key in raw:
        if key not in TOP_LEVEL:
            errors.append(f"{key}: unknown section; {_suggest(str(key), TOP_LEVEL)}")
    name = raw.get("name")
    if name is None:
        name = Path(source).stem if source else "experiment"
    elif not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        errors.append(f"name: expected a name of letters, digits, '_', '-' or '.', got {name!r}")
    out: dict[str, Any] = {"name": name}
    for section, schema in (("data", DATA_KEYS), ("evaluation", EVALUATION_KEYS)):
        given = raw.get(section)
        if given is None and section == "evaluation":  # optional; `evaluation:` alone too
            given = {}
        if given is None:
            errors.append(f"{section}: missing section")
            out[section] = {}
            continue
        if not isinstance(given, Mapping):
            errors.append(f"{section}: expected a mapping, got {given!r}")
            out[section] = {}
            continue
        out[section] = _check_section(section, given, schema, errors)
    if raw.get("model") is None:
        errors.append("model: missing section")
        out["model"] = {}
    else:
        out["model"] = _check_model(raw["model"], errors)
    out["trainer"] = _check_trainer(raw.get("trainer", {}) or {}, errors)
    path = out["data"].get("path")
    if check_paths and isinstance(path, str):
        problem = dataset_problem(path)
        if problem:
            errors.append(f"data.path: {problem}")
    if errors:
        raise ConfigError(errors, source)
    return out


def dataset_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a dataset folder (None when it has a card)."""
    p = Path(path)
    if not p.exists():
        return (f"no dataset at {str(path)!r} (relative paths are taken from the current "
                f"folder, {os.getcwd()}); make it with `geo-neuralop generate GENERATOR "
                f"--out {path}`")
    if not p.is_dir():
        return f"{str(path)!r} is a file, not a dataset folder"
    if not (p / "card.yaml").exists():
        return (f"{str(path)!r} holds no dataset card (card.yaml): an unfinished or foreign "
                f"folder; run `geo-neuralop generate GENERATOR --out {path}` to finish it")
    return None


# --------------------------------------------------------------------------------------
# YAML files and overrides
# --------------------------------------------------------------------------------------


def read_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML text (floats in scientific notation included); errors name the line."""
    try:
        return load_yaml(text)
    except yaml.YAMLError as error:
        where = yaml_error_location(error)
        joint = " at " if where.startswith("line ") else ": "
        raise ConfigError([f"YAML syntax error{joint}{where}"], source) from error


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``raw`` with ``key.path=value`` assignments applied (values read as YAML).

    Raises
    ------
    ConfigError
        For an assignment without ``=`` or one that descends into a non-mapping.
    """
    out = copy.deepcopy(dict(raw))
    errors = []
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            errors.append(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. trainer.epochs=5")
            continue
        value = read_yaml(text, f"--set {item}") if text.strip() else None
        parts = key.split(".")
        node = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                errors.append(f"--set {item!r}: {'.'.join(parts[:depth + 1])} is "
                              f"{child!r}, not a section")
                break
            node = child
        else:
            node[parts[-1]] = value
    if errors:
        raise ConfigError(errors)
    return out


def load_config(source: str | os.PathLike | Mapping[str, Any], overrides: Sequence[str] = (),
                check_paths: bool = True) -> dict[str, Any]:
    """Read (if a path), override and validate a config; see :func:`validate_config`.

    Parameters
    ----------
    source : path or mapping
        A YAML file or an already parsed config.
    overrides : sequence of str
        ``"section.key=value"`` assignments applied before validation.
    check_paths : bool
        Check that the dataset folder exists.

    Raises
    ------
    ConfigError
        Missing or unreadable file, YAML syntax errors, or invalid settings.
    """
    if isinstance(source, Mapping):
        raw, name = dict(source), None
    else:
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise ConfigError([f"config file {name!r} does not exist"
                               if not path.exists() else f"{name!r} is not a file"])
        raw = read_yaml(path.read_text(encoding="utf-8"), name)
        if raw is None:
            raw = {}
        if isinstance(raw, Mapping) and "name" not in raw:
            raw = {"name": path.stem, **raw}
    if overrides:
        if not isinstance(raw, Mapping):
            raise ConfigError([f"the config must be a mapping, got {type(raw).__name__}"], name)
        raw = apply_overrides(raw, overrides)
    return validate_config(raw, source=name, check_paths=check_paths)


def dump_config(config: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write a config as YAML (atomically); :func:`load_config` reads it back unchanged."""
    path = Path(path)
    ordered = {k: config[k] for k in TOP_LEVEL if k in config}
    ordered.update({k: v for k, v in config.items() if k not in ordered})
    text = yaml.dump(_plain(ordered), Dumper=_Dumper, sort_keys=False,
                     default_flow_style=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


class _Dumper(yaml.SafeDumper):
    """Block-style mappings; lists of scalars on one line (``n_modes: [16, 16]``)."""


def _represent_list(dumper: yaml.SafeDumper, value: list) -> yaml.Node:
    flow = all(not isinstance(v, (list, dict)) for v in value) or all(
        isinstance(v, list) and all(not isinstance(u, (list, dict)) for u in v) for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
