"""The one reader of YAML text and of ``KEY=VALUE`` command-line settings.

``geo-neuralop train --set``, ``geo-neuralop generate --param``, config files and
dataset cards all go through :func:`load_yaml`, a safe loader (no Python tags, no
code runs) that reads numbers the way YAML 1.2 and people do: ``1e6``, ``5E-3``
and ``1e+2`` are floats (plain YAML 1.1, and so ``yaml.safe_load``, reads a
mantissa without a dot such as ``1e6`` as the *string* ``"1e6"``).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["YamlLoader", "load_yaml", "parse_assignment", "yaml_error_location"]


class YamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3``, ``5E+4`` and ``1e6`` as floats."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+][0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Parse YAML text with :class:`YamlLoader`.

    Raises
    ------
    yaml.YAMLError
        For invalid YAML or a tag the safe loader refuses (see :func:`yaml_error_location`).

    Examples
    --------
    >>> load_yaml("1e6"), load_yaml("[80, 1.6e2]"), load_yaml("galewsky")
    (1000000.0, [80, 160.0], 'galewsky')
    """
    return yaml.load(text, Loader=YamlLoader)  # noqa: S506 (a SafeLoader subclass)


def yaml_error_location(error: yaml.YAMLError) -> str:
    """``"line L, column C: problem"`` of a YAML error (or its text)."""
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(error, "problem", None) or str(error)
    return f"{where}{problem}"


def parse_assignment(item: str, option: str, example: str = "KEY=VALUE"
                     ) -> tuple[str, Any]:
    """Split a ``KEY=VALUE`` command-line setting and read VALUE with :func:`load_yaml`.

    An empty VALUE is None.

    Parameters
    ----------
    item : str
        The text the user gave.
    option : str
        The option's name for messages (``"--param"``).
    example : str
        Shown in the message of a malformed setting.

    Raises
    ------
    ValueError
        Naming the option and the setting, for a missing ``=`` or key, or a VALUE
        that is not valid YAML.

    Examples
    --------
    >>> parse_assignment("max_wind=1e2", "--param")
    ('max_wind', 100.0)
    """
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"{option} expects {example}, got {item!r}")
    if not text.strip():
        return key, None
    try:
        return key, load_yaml(text)
    except yaml.YAMLError as error:
        raise ValueError(f"{option} {item!r}: the value is not valid YAML "
                         f"({yaml_error_location(error)})") from error
