"""Per-field Gaussian normalizers fitted on a dataset's training split.

For every stored scalar field the normalizer keeps a mean and a standard
deviation computed over all training trajectories, frames and points, each point
weighted by its quadrature weight (so a sphere grid's crowded polar rows or a
mesh's refined region do not dominate): ``mean = sum w x / sum w`` and
``std^2 = sum w (x - mean)^2 / sum w``, with ``sum`` over frames and trajectories
too. They are saved as ``normalizer.json`` next to the data and listed in the
dataset card.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from geo_neuralop.utils import atomic_path

NORMALIZER_FORMAT = "geo_neuralop.normalizer"


class FieldNormalizer:
    """Mean and standard deviation per named field; ``encode`` maps to zero mean, unit std.

    Parameters
    ----------
    mean, std : dict of str to float
        Per field. The standard deviation of a constant field (zero, or below
        ``1e-12 |mean|``: round-off) is replaced by 1.
    fitted_on : str
        Description of the data it was fitted on (e.g. ``"train"``).

    Examples
    --------
    >>> import torch
    >>> norm = FieldNormalizer({"u": 1.0, "p": 10.0}, {"u": 2.0, "p": 5.0})
    >>> x = torch.tensor([[3.0, 20.0]])
    >>> norm.encode(x, ["u", "p"]).tolist()
    [[1.0, 2.0]]
    >>> norm.decode(norm.encode(x, ["u", "p"]), ["u", "p"]).tolist()
    [[3.0, 20.0]]
    """

    def __init__(self, mean: dict[str, float], std: dict[str, float], fitted_on: str = "",
                 counts: dict[str, float] | None = None) -> None:
        if set(mean) != set(std):
            raise ValueError(f"mean and std name different fields: {sorted(mean)} vs "
                             f"{sorted(std)}")
        for name in mean:
            m, s = float(mean[name]), float(std[name])
            if not math.isfinite(m) or not math.isfinite(s) or s < 0:
                raise ValueError(f"field {name!r}: mean {m} and std {s} must be finite, std >= 0")
        self.mean = {k: float(v) for k, v in mean.items()}
        self.std = {k: (float(v) if float(v) > 1e-12 * abs(self.mean[k]) and float(v) > 0
                        else 1.0) for k, v in std.items()}
        self.fitted_on = fitted_on
        self.counts = dict(counts or {})

    @property
    def names(self) -> list[str]:
        return list(self.mean)

    def stats(self, names: Sequence[str], dtype: torch.dtype = torch.float32,
              device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean [C], std [C])`` tensors for ``names`` in that order."""
        missing = [n for n in names if n not in self.mean]
        if missing:
            raise ValueError(f"the normalizer has no statistics for {missing}; it has "
                             f"{self.names}")
        mean = torch.tensor([self.mean[n] for n in names], dtype=dtype, device=device)
        std = torch.tensor([self.std[n] for n in names], dtype=dtype, device=device)
        return mean, std

    def encode(self, x: torch.Tensor, names: Sequence[str], dim: int = -1) -> torch.Tensor:
        """``(x - mean) / std`` with channels of ``x`` along ``dim`` named by ``names``."""
        mean, std = self._broadcast(x, names, dim)
        return (x - mean) / std

    def decode(self, x: torch.Tensor, names: Sequence[str], dim: int = -1) -> torch.Tensor:
        """Inverse of :meth:`encode`: ``x * std + mean``."""
        mean, std = self._broadcast(x, names, dim)
        return x * std + mean

    def _broadcast(self, x: torch.Tensor, names: Sequence[str], dim: int):
        if x.shape[dim] != len(names):
            raise ValueError(f"x has {x.shape[dim]} channels along dim {dim} but "
                             f"{len(names)} names were given: {list(names)}")
        mean, std = self.stats(names, x.dtype, x.device)
        shape = [1] * x.dim()
        shape[dim] = len(names)
        return mean.reshape(shape), std.reshape(shape)

    # --- fitting ----------------------------------------------------------------------
    @classmethod
    def fit(cls, samples: Iterable[tuple[dict[str, np.ndarray], np.ndarray]],
            fitted_on: str = "") -> FieldNormalizer:
        """Fit from ``(fields, weights)`` pairs: ``fields[name]`` is ``[F, N]``, weights ``[N]``.

        Uses per-sample weighted sums combined exactly (Chan et al.'s parallel
        update), in float64.
        """
        total: dict[str, float] = {}
        mean: dict[str, float] = {}
        m2: dict[str, float] = {}
        for fields, weights in samples:
            w = np.asarray(weights, dtype=np.float64)
            for name, value in fields.items():
                x = np.asarray(value, dtype=np.float64).reshape(-1, w.shape[0])
                wb = np.broadcast_to(w, x.shape)
                n_b = float(wb.sum())
                mean_b = float((wb * x).sum() / n_b)
                m2_b = float((wb * (x - mean_b) ** 2).sum())
                n_a = total.get(name, 0.0)
                if n_a == 0.0:
                    total[name], mean[name], m2[name] = n_b, mean_b, m2_b
                    continue
                delta = mean_b - mean[name]
                n = n_a + n_b
                mean[name] += delta * n_b / n
                m2[name] += m2_b + delta**2 * n_a * n_b / n
                total[name] = n
        if not total:
            raise ValueError("cannot fit a normalizer on no samples")
        std = {k: math.sqrt(max(m2[k] / total[k], 0.0)) for k in total}
        return cls(mean, std, fitted_on=fitted_on, counts=total)

    # --- persistence ------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": NORMALIZER_FORMAT, "fitted_on": self.fitted_on,
                "weighting": "quadrature", "fields": {
                    n: {"mean": self.mean[n], "std": self.std[n],
                        "total_weight": self.counts.get(n)} for n in self.names}}

    @classmethod
    def from_dict(cls, data: dict) -> FieldNormalizer:
        if not isinstance(data, dict) or data.get("format") != NORMALIZER_FORMAT:
            raise ValueError("not a geo_neuralop normalizer (format key missing or different)")
        fields = data["fields"]
        return cls({n: v["mean"] for n, v in fields.items()},
                   {n: v["std"] for n, v in fields.items()}, fitted_on=data.get("fitted_on", ""),
                   counts={n: v.get("total_weight") for n, v in fields.items()
                           if v.get("total_weight") is not None})

    def save(self, path: str | os.PathLike) -> Path:
        """Write JSON atomically."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> FieldNormalizer:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError, KeyError, ValueError) as error:
            raise ValueError(f"{path} is not a readable normalizer file: {error}") from error

    def __repr__(self) -> str:
        body = ", ".join(f"{n}: {self.mean[n]:.4g} ± {self.std[n]:.4g}" for n in self.names)
        return f"FieldNormalizer({body}; fitted on {self.fitted_on or '?'})"
