"""Evaluation metrics built on the training losses, their averaging, and metric log files.

- :func:`error_metrics`: relative and absolute L2 (and H1 where gradients are
  available) errors per sample, total and per channel, from the same quadrature
  integrals as :mod:`geo_neuralop.training.losses`, so training and evaluation
  report the same numbers.
- :class:`MetricAverager`: sample-weighted means over batches (and over processes
  under ``torch.distributed``).
- :class:`MetricLog`: one record per epoch appended to ``metrics.jsonl`` (one
  JSON object a line, flushed and fsynced, so a kill can at worst cut the line
  being written) and mirrored to ``metrics.csv`` (rewritten atomically).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from geo_neuralop.geometry.grid_spec import GridSpec
from geo_neuralop.geometry.integration import (
    GridQuadrature,
    Quadrature,
    SphereQuadrature,
    as_quadrature,
)
from geo_neuralop.training.losses import error_integrals
from geo_neuralop.utils import atomic_path


def error_metrics(
    pred: torch.Tensor,
    target: torch.Tensor,
    quadrature: Any,
    *,
    pred_grad: torch.Tensor | None = None,
    target_grad: torch.Tensor | None = None,
    h1: bool | None = None,
    channel_names: Sequence[str] | None = None,
    eps: float = 1e-12,
) -> dict[str, torch.Tensor]:
    """Relative/absolute L2 and H1 errors of every sample, total and per channel.

    Parameters
    ----------
    pred, target, quadrature, pred_grad, target_grad
        As in :func:`geo_neuralop.training.losses.h1_error`.
    h1 : bool, optional
        Compute H1 errors. Default: when gradients are available (gradient
        fields given, or a grid or sphere quadrature that can differentiate).
    channel_names : sequence of str, optional
        Names of the ``C`` channels (default ``"0"``, ``"1"``, ...).
    eps : float
        Floor of target norms in relative errors.

    Returns
    -------
    dict of str to torch.Tensor, each shape [B]
        Per sample (graph of a PyG batch, or grid batch entry), detached:
        ``"rel_l2"``, ``"abs_l2"``, ``"rel_l2/<channel>"``, ``"abs_l2/<channel>"``
        and, with H1, ``"rel_h1"``, ``"abs_h1"`` and their per-channel values.
        Absolute values are in field units times ``volume^(1/2)``.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.geometry import PointQuadrature
    >>> y = torch.ones(4, 2)
    >>> m = error_metrics(1.5 * y, y, PointQuadrature(torch.full((4,), 0.25)),
    ...                   channel_names=["u", "v"])
    >>> sorted(m), float(m["rel_l2/u"][0])
    (['abs_l2', 'abs_l2/u', 'abs_l2/v', 'rel_l2', 'rel_l2/u', 'rel_l2/v'], 0.5)
    """
    quad = as_quadrature(quadrature)
    if h1 is None:
        h1 = pred_grad is not None or _can_differentiate(quad)
    with torch.no_grad():
        parts = error_integrals(
            pred.detach(), target.detach(), quad, gradients=h1,
            pred_grad=None if pred_grad is None else pred_grad.detach(),
            target_grad=None if target_grad is None else target_grad.detach(),
        )
    n_channels = parts["err"].shape[1]
    if channel_names is None:
        channel_names = [str(c) for c in range(n_channels)]
    channel_names = list(channel_names)
    if len(channel_names) != n_channels:
        raise ValueError(f"channel_names has {len(channel_names)} names but the fields have "
                         f"{n_channels} channels")
    norms = {"l2": (parts["err"], parts["ref"])}
    if h1:
        norms["h1"] = (parts["err"] + parts["grad_err"], parts["ref"] + parts["grad_ref"])
    out: dict[str, torch.Tensor] = {}
    for name, (err, ref) in norms.items():
        out[f"rel_{name}"] = err.sum(1).sqrt() / ref.sum(1).sqrt().clamp_min(eps)
        out[f"abs_{name}"] = err.sum(1).sqrt()
        for c, cname in enumerate(channel_names):
            out[f"rel_{name}/{cname}"] = err[:, c].sqrt() / ref[:, c].sqrt().clamp_min(eps)
            out[f"abs_{name}/{cname}"] = err[:, c].sqrt()
    return out


def _can_differentiate(quad: Quadrature) -> bool:
    """Whether the quadrature supplies gradients of its fields (grids with enough nodes)."""
    if isinstance(quad, SphereQuadrature):
        return True
    if isinstance(quad, GridQuadrature) and isinstance(quad.spec, GridSpec):
        return all(n >= (1 if p else 3) for n, p in zip(quad.spec.shape, quad.spec.periodic,
                                                          strict=True))
    return False


class MetricAverager:
    """Sample-weighted running means of named metrics.

    ``update`` takes per-sample values (``[B]`` tensors) or batch means with a
    count; ``compute`` returns the mean over every sample seen, summed over all
    processes when ``torch.distributed`` is initialized and ``distributed=True``.
    Sums are kept in float64 on the CPU.

    Examples
    --------
    >>> import torch
    >>> avg = MetricAverager()
    >>> avg.update({"err": torch.tensor([1.0, 2.0])})
    >>> avg.update({"err": 6.0}, count=1)
    >>> avg.compute()
    {'err': 3.0}
    """

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, float] = {}

    def update(self, values: Mapping[str, Any], count: int | None = None) -> None:
        """Add per-sample tensors ``[B]`` or, with ``count``, batch means (scalars)."""
        for name, value in values.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and count is None:
                v = value.detach().to(torch.float64).cpu()
                total, n = float(v.sum()), int(v.numel())
            else:
                if count is None:
                    raise ValueError(f"metric {name!r} is a scalar: pass count= (the number "
                                     f"of samples it averages)")
                total, n = float(value) * count, int(count)
            self.sums[name] = self.sums.get(name, 0.0) + total
            self.counts[name] = self.counts.get(name, 0) + n

    def compute(self, distributed: bool = True) -> dict[str, float]:
        """Means per metric (NaN for a metric with no samples)."""
        names = sorted(self.sums)
        use_dist = distributed and dist.is_available() and dist.is_initialized()
        if use_dist:
            # a process may have seen no sample (and so no names): agree on the union
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, names)
            names = sorted(set().union(*gathered))
        sums = torch.tensor([self.sums.get(k, 0.0) for k in names], dtype=torch.float64)
        counts = torch.tensor([self.counts.get(k, 0) for k in names], dtype=torch.float64)
        if use_dist and names:
            backend = dist.get_backend()
            device = (torch.device("cuda", torch.cuda.current_device())
                      if backend == "nccl" else torch.device("cpu"))
            both = torch.stack([sums, counts]).to(device)
            dist.all_reduce(both)
            sums, counts = both.cpu()
        out = {}
        for k, s, c in zip(names, sums.tolist(), counts.tolist(), strict=True):
            out[k] = s / c if c > 0 else math.nan
        return out

    def reset(self) -> None:
        self.sums.clear()
        self.counts.clear()


def _json_safe(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf": strict JSON has no such numbers
    return value


class MetricLog:
    """Per-epoch metric records in ``<dir>/metrics.jsonl`` and ``<dir>/metrics.csv``.

    Parameters
    ----------
    directory : str or Path
        Folder of the two files (created if missing).

    Notes
    -----
    Each record is appended to the JSONL file as one line, then flushed and
    fsynced: a kill can only cut the line being written, never earlier ones,
    and :func:`read_jsonl` skips a cut last line. The CSV file is rewritten
    atomically from all records after each append. :meth:`rewrite` replaces both
    files (used on resume, from the history stored in the checkpoint).
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.jsonl_path = self.directory / "metrics.jsonl"
        self.csv_path = self.directory / "metrics.csv"

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record (a flat mapping of names to numbers or strings)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        line = json.dumps({k: _json_safe(v) for k, v in record.items()}) + "\n"
        with open(self.jsonl_path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self._write_csv(read_jsonl(self.jsonl_path))

    def rewrite(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Replace both files by exactly ``records``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps({k: _json_safe(v) for k, v in r.items()}) + "\n"
                       for r in records)
        with atomic_path(self.jsonl_path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        self._write_csv(read_jsonl(self.jsonl_path))

    def _write_csv(self, records: Sequence[Mapping[str, Any]]) -> None:
        columns: list[str] = []
        for r in records:
            columns.extend(k for k in r if k not in columns)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for r in records:
            writer.writerow(dict(r))
        with atomic_path(self.csv_path) as tmp:
            tmp.write_text(buf.getvalue(), encoding="utf-8")


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of a JSONL file; a cut (unparsable) last line is skipped.

    Raises
    ------
    ValueError
        If a line other than the last is not valid JSON (naming the line).
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}: line {i + 1} is not valid JSON ({exc})") from exc
    return records
