"""Model registry: build any geo_neuralop model from its name and a plain config dict.

A model class is registered with :func:`register_model`, which also records the
arguments every instance was built with in ``model.config`` (a dict of plain
values, defaults filled in), so ``get_model(name, **model.config)`` rebuilds an
identical architecture and checkpoints can store it. :func:`get_model` builds a
model from keyword arguments (a YAML config or a checkpoint's ``config``).

Examples
--------
>>> import torch
>>> from geo_neuralop.models.registry import get_model, list_models, register_model
>>> @register_model("doc_linear", family="grid")
... class DocLinear(torch.nn.Module):
...     def __init__(self, in_channels: int, out_channels: int = 1) -> None:
...         super().__init__()
...         self.linear = torch.nn.Linear(in_channels, out_channels)
>>> "doc_linear" in list_models()
True
>>> get_model("doc_linear", in_channels=3).config
{'in_channels': 3, 'out_channels': 1}
>>> DocLinear.family
'grid'
>>> get_model("doc_linear", in_channel=3)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
TypeError: model 'doc_linear' got unknown config key 'in_channel'; accepted keys: in_channels, ...
>>> unregister_model("doc_linear")
"""

from __future__ import annotations

import functools
import inspect
import numbers
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch

__all__ = [
    "FAMILIES",
    "accepted_keys",
    "check_plain",
    "get_model",
    "get_model_class",
    "list_models",
    "model_name",
    "plain_value",
    "register_model",
    "unregister_model",
]

T = TypeVar("T", bound=type)

_REGISTRY: dict[str, type[torch.nn.Module]] = {}
_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

#: How a model sees the data: ``grid`` (``[B, C, *spatial]`` on a regular grid),
#: ``sphere`` (``[B, C, nlat, nlon]`` on a latitude-longitude grid) or ``mesh``
#: (PyG batches of point clouds with ``x [N, C]``); ``None`` for models without a
#: data adapter (they can still be built, saved and loaded).
FAMILIES = ("grid", "sphere", "mesh")


def register_model(name: str, family: str | None = None) -> Callable[[T], T]:
    """Class decorator that registers a model under ``name`` and records its arguments.

    The decorated class's ``__init__`` is wrapped so that every instance gets
    ``self.config``: the arguments it was built with, defaults included, as
    plain values (tuples become lists). Subclasses that are registered
    themselves record their own arguments (the outermost registered class wins).

    Parameters
    ----------
    name : str
        Lower-case identifier (letters, digits, underscores; starts with a letter),
        for example ``"fno"`` or ``"mesh_graph_net"``.
    family : {"grid", "sphere", "mesh"}, optional
        How the model sees the data (see :data:`FAMILIES`); stored as the class
        attribute ``family`` and used by the experiment's data adapters.

    Returns
    -------
    Callable
        The decorator; it returns the class (with ``registered_name`` and
        ``family`` set).

    Raises
    ------
    ValueError
        If ``name`` is not a lower-case identifier, or is already registered for
        a different class.
    TypeError
        If ``name`` is not a string or the decorated object is not an
        ``nn.Module`` subclass.
    """
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, got {type(name).__name__}")
    if not _NAME_PATTERN.match(name):
        raise ValueError(
            f"model name must be lower-case letters, digits and underscores starting with a "
            f"letter, got {name!r}"
        )
    if family is not None and family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES} or None, got {family!r}")

    def decorator(cls: T) -> T:
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            raise TypeError(
                f"register_model({name!r}) decorates torch.nn.Module subclasses, got {cls!r}"
            )
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls and not _same_definition(existing, cls):
            raise ValueError(
                f"model name {name!r} is already registered for "
                f"{existing.__module__}.{existing.__qualname__}; cannot register "
                f"{cls.__module__}.{cls.__qualname__} under the same name"
            )
        if "__init__" in cls.__dict__ and not getattr(cls.__init__, "_records_config", False):
            cls.__init__ = _recording_init(cls, cls.__init__)  # type: ignore[misc]
        _REGISTRY[name] = cls
        cls.registered_name = name  # type: ignore[attr-defined]
        cls.family = family  # type: ignore[attr-defined]
        return cls

    return decorator


def _float_parameters(init: Callable[..., None]) -> set[str]:
    """Names of the arguments annotated ``float`` (or ``float | None``): ints given there are
    recorded as floats, so a config holds the values the model computes with."""
    try:
        hints = typing.get_type_hints(init)
    except (NameError, TypeError, AttributeError):  # an annotation that cannot be resolved
        return set()
    out = set()
    for name, hint in hints.items():
        args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union,
                                                                    types.UnionType) else (hint,)
        if float in args and int not in args:
            out.add(name)
    return out


def _recording_init(cls: type, init: Callable[..., None]) -> Callable[..., None]:
    signature = inspect.signature(init)
    floats = _float_parameters(init)

    @functools.wraps(init)
    def __init__(self: torch.nn.Module, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if type(self) is cls or not hasattr(self, "config"):
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            config: dict[str, Any] = {}
            for key, value in list(bound.arguments.items())[1:]:  # drop self
                if signature.parameters[key].kind is inspect.Parameter.VAR_KEYWORD:
                    config.update({k: plain_value(v, f"{key}[{k!r}]") for k, v in value.items()})
                elif signature.parameters[key].kind is not inspect.Parameter.VAR_POSITIONAL:
                    if key in floats and isinstance(value, int) and not isinstance(value, bool):
                        value = float(value)
                    config[key] = plain_value(value, key)
            self.config = config

    __init__._records_config = True  # type: ignore[attr-defined]
    return __init__


def plain_value(value: Any, where: str = "value") -> Any:
    """``value`` with tuples as lists and NumPy scalars as Python ones (see :func:`check_plain`).

    Raises
    ------
    TypeError
        Naming the path of an entry that has no plain form (a tensor, a module).
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [plain_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {str(k): plain_value(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(f"{where} = {value!r} of type {type(value).__name__} is not a plain value "
                    "(None, bool, int, float, str, list, tuple or dict); model constructor "
                    "arguments must be plain so that checkpoints can store them")


def _same_definition(a: type, b: type) -> bool:
    # A module re-import (importlib.reload, doctest collection) redefines the class.
    return a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__


def unregister_model(name: str) -> None:
    """Remove ``name`` from the registry (for tests and interactive experiments).

    Raises
    ------
    ValueError
        If ``name`` is not registered.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available models: {_available()}")
    del _REGISTRY[name]


def list_models() -> list[str]:
    """Sorted names of all registered models."""
    return sorted(_REGISTRY)


def _available() -> str:
    return ", ".join(list_models()) or "(none)"


def get_model_class(name: str) -> type[torch.nn.Module]:
    """The class registered under ``name``.

    Raises
    ------
    ValueError
        If ``name`` is unknown; the message lists the available names.
    """
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, got {type(name).__name__}")
    cls = _REGISTRY.get(name)
    if cls is None:
        cls = _REGISTRY.get(name.lower().replace("-", "_"))
    if cls is None:
        raise ValueError(f"unknown model {name!r}; available models: {_available()}")
    return cls


def accepted_keys(cls: type) -> tuple[list[str], list[str], bool]:
    """Constructor keyword names, the required ones, and whether it takes ``**kwargs``."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # drop self
    accepted, required, var_kw = [], [], False
    for p in params:
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            var_kw = True
        elif p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            accepted.append(p.name)
            if p.default is inspect.Parameter.empty:
                required.append(p.name)
    return accepted, required, var_kw


def get_model(name: str, **config: Any) -> torch.nn.Module:
    """Build the model registered under ``name`` from keyword arguments.

    Parameters
    ----------
    name : str
        A registered name (see :func:`list_models`).
    **config
        Constructor arguments of the model.

    Returns
    -------
    torch.nn.Module
        The new model (in training mode, on the CPU, float32 unless the model's
        config says otherwise).

    Raises
    ------
    ValueError
        If ``name`` is unknown (the message lists the available models), or the
        model rejects a config value.
    TypeError
        If a config key is not a constructor argument of the model, or a required
        one is missing (the message names the key and the model).
    """
    cls = get_model_class(name)
    registered = getattr(cls, "registered_name", name)
    accepted, required, var_kw = accepted_keys(cls)
    if not var_kw:
        unknown = [k for k in config if k not in accepted]
        if unknown:
            plural = "s" if len(unknown) > 1 else ""
            raise TypeError(
                f"model {registered!r} got unknown config key{plural} "
                f"{', '.join(repr(k) for k in unknown)}; accepted keys: {', '.join(accepted)}"
            )
    missing = [k for k in required if k not in config]
    if missing:
        raise TypeError(
            f"model {registered!r} is missing required config key(s) "
            f"{', '.join(repr(k) for k in missing)}"
        )
    return cls(**config)


def model_name(model: torch.nn.Module | type) -> str:
    """The registered name of a model instance or class.

    Raises
    ------
    TypeError
        If the model's class is not registered (subclasses of a registered class
        must be registered themselves, since their constructor may differ).
    """
    cls = model if isinstance(model, type) else type(model)
    for name, registered in _REGISTRY.items():
        if registered is cls:
            return name
    for name, registered in _REGISTRY.items():
        if _same_definition(registered, cls):
            return name
    raise TypeError(
        f"{cls.__module__}.{cls.__qualname__} is not a registered model; decorate it with "
        f"@register_model(name). Registered models: {_available()}"
    )


_PLAIN_SCALARS = (bool, int, float, str, type(None))


def check_plain(value: Any, where: str = "config") -> None:
    """Check that ``value`` holds only plain Python values (JSON/YAML-like).

    Allowed: ``None``, bool, int, float, str, and lists, tuples and dicts
    (with string keys) of those. Such values survive ``torch.load(...,
    weights_only=True)`` and YAML round trips.

    Raises
    ------
    TypeError
        Naming the path of the first offending entry, e.g. ``config['layers'][2]``.
    """
    if isinstance(value, _PLAIN_SCALARS):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has a non-string key {key!r}; keys must be str")
            check_plain(item, f"{where}[{key!r}]")
        return
    raise TypeError(
        f"{where} = {value!r} of type {type(value).__name__} is not a plain value "
        "(None, bool, int, float, str, list, tuple or dict)"
    )
