"""The one cache mechanism: a bounded least-recently-used map held by the object that uses it.

Layers keep their precomputed operators (sparse kernels, FFT stencils, ring
kernels, spherical harmonic transforms) in a :class:`BoundedCache` of a size
the caller chooses, keyed by everything the operator depends on (a geometry
fingerprint from :func:`fingerprint`, the kernel parameters, dtype, device).
Nothing is global, so two layers never evict each other's operators.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

import numpy as np
import torch

__all__ = ["BoundedCache", "fingerprint"]

V = TypeVar("V")


class BoundedCache(Generic[V]):
    """A least-recently-used map of at most ``maxsize`` entries.

    Parameters
    ----------
    maxsize : int
        Entries kept (at least 1); the least recently used one is dropped first.

    Examples
    --------
    >>> cache = BoundedCache(2)
    >>> cache.get_or_build("a", lambda: 1), cache.get_or_build("b", lambda: 2)
    (1, 2)
    >>> cache.get_or_build("c", lambda: 3)  # "a" is dropped
    3
    >>> "a" in cache, len(cache), cache.builds
    (False, 2, 3)
    """

    def __init__(self, maxsize: int = 16) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"cache size must be a positive int, got {maxsize!r}")
        self.maxsize = maxsize
        self.builds = 0  # how many entries were built (a measure of misses)
        self._items: OrderedDict[Hashable, V] = OrderedDict()

    def get_or_build(self, key: Hashable, build: Callable[[], V]) -> V:
        """The entry of ``key``, built with ``build()`` (and stored) when absent."""
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = build()
        self.builds += 1
        self._items[key] = value
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        """Forget every entry (e.g. after the owner moved to another device or dtype)."""
        self._items.clear()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._items)

    def __repr__(self) -> str:
        return f"BoundedCache({len(self)}/{self.maxsize} entries, {self.builds} builds)"


def fingerprint(*values: np.ndarray | torch.Tensor | float | int | str | None) -> str:
    """A short digest of arrays and scalars (shape, dtype and bytes), for cache keys.

    Examples
    --------
    >>> import numpy as np
    >>> fingerprint(np.zeros(3)) == fingerprint(np.zeros(3)), fingerprint(np.zeros(3)) == \
fingerprint(np.ones(3))
    (True, False)
    """
    h = hashlib.blake2b(digest_size=16)
    for value in values:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray):
            a = np.ascontiguousarray(value)
            h.update(f"A{a.shape}{a.dtype};".encode())
            h.update(a.tobytes())
        else:
            h.update(f"S{value!r};".encode())
    return h.hexdigest()
