"""Argument checks shared by every floor: each raises a ``TypeError``/``ValueError`` naming the
argument and the offending value.

NumPy integer and float scalars are accepted wherever Python ones are (and returned as
Python values), so ``np.int64(4)`` works as a grid size.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

__all__ = [
    "as_tuple",
    "check_domain",
    "check_positive_int",
    "check_positive_number",
    "is_int",
    "is_number",
    "layer_flags",
    "per_axis",
]


def is_int(value: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A real number (Python or NumPy int or float), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as a Python int, checked to be an integer of at least ``minimum``."""
    if not is_int(value) or int(value) < minimum:
        what = "a positive int" if minimum == 1 else f"an int of at least {minimum}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def check_positive_number(name: str, value: Any, allow_zero: bool = False) -> float:
    """``value`` as a Python float, checked to be finite and positive (or zero)."""
    if not is_number(value) or not math.isfinite(float(value)) or (
            float(value) < 0 if allow_zero else float(value) <= 0):
        what = "a finite non-negative number" if allow_zero else "a finite positive number"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return float(value)


def as_tuple(value: int | Sequence[int], name: str) -> tuple[int, ...]:
    """An int or a sequence of ints as a tuple of Python ints.

    Examples
    --------
    >>> as_tuple(3, "n_modes"), as_tuple([8, 4], "n_modes")
    ((3,), (8, 4))
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a sequence of ints, got {value!r}")
    if is_int(value):
        return (int(value),)
    try:
        out = tuple(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int or a sequence of ints, got {value!r}") from None
    for i, v in enumerate(out):
        if not is_int(v):
            raise TypeError(f"{name}[{i}] must be an int, got {v!r}")
    return tuple(int(v) for v in out)


def per_axis(value: Any, n_dim: int, name: str) -> tuple:
    """A scalar repeated ``n_dim`` times, or a sequence checked to have ``n_dim`` entries."""
    if value is None or isinstance(value, (bool, str)) or is_number(value):
        return (value,) * n_dim
    out = tuple(value)
    if len(out) != n_dim:
        raise ValueError(f"{name} needs {n_dim} entries (one per axis), got {value!r}")
    return out


def check_domain(domain: Any, n_dim: int,
                 name: str = "domain") -> tuple[tuple[float, float], ...]:
    """A physical box: ``n_dim`` finite ``(lo, hi)`` pairs with ``lo < hi``.

    ``None`` is the unit box; a single ``(lo, hi)`` pair is used for every axis.

    Examples
    --------
    >>> check_domain([(0, 2), (0, 1)], 2)
    ((0.0, 2.0), (0.0, 1.0))
    >>> check_domain((0, 1), 3)
    ((0.0, 1.0), (0.0, 1.0), (0.0, 1.0))
    """
    if domain is None:
        return ((0.0, 1.0),) * n_dim
    try:
        items = list(domain)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of (lo, hi) pairs, got {domain!r}") from None
    if len(items) == 2 and all(is_number(v) for v in items):
        items = [tuple(items)] * n_dim
    out = []
    for axis, pair in enumerate(items):
        try:
            lo, hi = pair
        except (TypeError, ValueError):
            raise ValueError(f"{name}[{axis}] must be a (lo, hi) pair, got {pair!r}") from None
        if not (is_number(lo) and is_number(hi)):
            raise TypeError(f"{name}[{axis}] must hold numbers, got {pair!r}")
        lo, hi = float(lo), float(hi)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"{name}[{axis}] = {pair!r} must be finite")
        if not hi > lo:
            raise ValueError(f"{name}[{axis}] = ({lo}, {hi}) must have hi > lo")
        out.append((lo, hi))
    if len(out) != n_dim:
        raise ValueError(f"{name} has {len(out)} axes but {n_dim} are needed, got {domain!r}")
    return tuple(out)


def layer_flags(value: bool | Sequence[bool], n_layers: int, name: str) -> list[bool]:
    """One flag per block from a bool or a per-block sequence of bools."""
    if isinstance(value, bool):
        return [value] * n_layers
    flags = list(value)
    if len(flags) != n_layers or not all(isinstance(v, bool) for v in flags):
        raise ValueError(f"{name} must be a bool or {n_layers} bools (one per block), got "
                         f"{value!r}")
    return flags
