"""Regular grids from the 1-D coordinate arrays other formats store (The Well, PDEBench).

A stored axis is a list of node coordinates. :func:`grid_from_axes` checks that each is
uniformly spaced and describes the grid as a :class:`~geo_neuralop.geometry.GridSpec`
with the same nodes: a non-periodic axis spans its first to its last node (trapezoid
weights), a periodic axis spans ``n`` spacings from its first node (the end point is the
first one again). Cell-centred data (PDEBench, nodes half a cell inside the box) thus
keep their exact positions; their trapezoid weights cover the box less half a cell on
each side.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from geo_neuralop.geometry.grid_spec import GridSpec

__all__ = ["grid_arrays", "grid_from_axes"]


def grid_from_axes(axes: Sequence[np.ndarray], names: Sequence[str],
                   periodic: Sequence[bool], where: str = "") -> GridSpec:
    """The :class:`GridSpec` whose nodes are the given uniformly spaced axes.

    Parameters
    ----------
    axes : sequence of 1-D arrays
        Node coordinates per axis, increasing.
    names : sequence of str
        Axis names, for messages.
    periodic : sequence of bool
    where : str
        Message prefix (the file).

    Raises
    ------
    ValueError
        An axis that is not 1-D, has fewer than 2 nodes, is not increasing or is not
        uniformly spaced (naming the axis and the worst node).
    """
    shape, domain = [], []
    for values, name, per in zip(axes, names, periodic, strict=True):
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 1 or x.shape[0] < 2:
            raise ValueError(f"{where}coordinate {name!r} must be 1-D with at least 2 nodes, "
                             f"got shape {x.shape}")
        step = np.diff(x)
        if not (step > 0).all():
            raise ValueError(f"{where}coordinate {name!r} is not increasing (index "
                             f"{int(np.argmax(step <= 0)) + 1})")
        h = (x[-1] - x[0]) / (x.shape[0] - 1)
        deviation = np.abs(x - (x[0] + h * np.arange(x.shape[0])))
        if deviation.max() > 1e-4 * h:
            raise ValueError(f"{where}coordinate {name!r} is not uniformly spaced (node "
                             f"{int(np.argmax(deviation))} is {deviation.max():.3g} off a "
                             f"spacing of {h:.6g}); regular grid models need uniform axes")
        shape.append(x.shape[0])
        domain.append((float(x[0]), float(x[0] + h * (x.shape[0] if per else x.shape[0] - 1))))
    return GridSpec(tuple(shape), tuple(domain), tuple(bool(p) for p in periodic))


def grid_arrays(spec: GridSpec) -> tuple[np.ndarray, np.ndarray, dict]:
    """``pos [N, d]`` (C order), ``weights [N]`` and the storage grid description."""
    mesh = torch.meshgrid(*spec.axis_nodes(), indexing="ij")
    pos = torch.stack([m.reshape(-1) for m in mesh], dim=-1).numpy()
    weights = spec.weights(dtype=torch.float64).reshape(-1).numpy()
    description = {"kind": "regular", "shape": list(spec.shape),
                   "domain": [[lo, hi] for lo, hi in spec.domain],  # type: ignore[union-attr]
                   "periodic": list(spec.periodic)}  # type: ignore[arg-type]
    return pos, weights, description
