"""The one checksum of the files this library writes from Python values: model files and
training checkpoints.

:func:`payload_digest` is the SHA-256 of a canonical byte encoding of a dict of plain
values and tensors (types, shapes, dtypes and bytes), so it does not depend on how
``torch.save`` lays out its zip archive. Writers store it under ``"sha256"``;
:func:`check_digest` recomputes it on reading and refuses a file without one or with
another one, so a weight or config edited by hand, or bits flipped on disk, never
load silently.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["DIGEST_KEY", "DigestError", "check_digest", "payload_digest"]

#: Key of the digest in a stored dict.
DIGEST_KEY = "sha256"


class DigestError(ValueError):
    """A stored dict has no digest, or one that does not match its contents."""


def _feed(value: Any, h: Any) -> None:
    """Feed a canonical byte encoding of ``value`` (plain values and tensors) to ``h``."""
    if isinstance(value, torch.Tensor):
        t = value.detach()
        if t.layout != torch.strided:
            t = t.to_dense()
        t = t.cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(value.shape)};".encode())
        if t.numel():
            h.update(t.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        h.update(f"D{len(value)};".encode())
        for key, item in value.items():
            _feed(key, h)
            _feed(item, h)
    elif isinstance(value, (list, tuple)):
        h.update(f"{'L' if isinstance(value, list) else 'U'}{len(value)};".encode())
        for item in value:
            _feed(item, h)
    else:
        h.update(f"{type(value).__name__}:{value!r};".encode())


def payload_digest(payload: Mapping[str, Any]) -> str:
    """Hex SHA-256 of every entry of ``payload`` except ``"sha256"`` (keys in sorted order).

    Examples
    --------
    >>> import torch
    >>> a = payload_digest({"w": torch.zeros(2), "name": "fno"})
    >>> a == payload_digest({"name": "fno", "w": torch.zeros(2)})
    True
    >>> a == payload_digest({"w": torch.tensor([0.0, 1e-30]), "name": "fno"})
    False
    """
    h = hashlib.sha256()
    for key in sorted(k for k in payload if k != DIGEST_KEY):
        _feed(key, h)
        _feed(payload[key], h)
    return h.hexdigest()


def check_digest(payload: Mapping[str, Any], source: str, what: str = "file") -> None:
    """Refuse a payload whose ``"sha256"`` entry is missing or differs from its contents.

    Raises
    ------
    DigestError
        Naming ``source``.
    """
    stored = payload.get(DIGEST_KEY)
    if stored is None:
        raise DigestError(
            f"{source} has no sha256 digest, but every {what} this library writes has one: "
            f"the file was edited or made by another program, so it is not loaded")
    if stored != payload_digest(payload):
        raise DigestError(
            f"cannot read {source}: corrupt or edited {what} (the sha256 digest of its contents "
            f"does not match the one stored when it was written)")
