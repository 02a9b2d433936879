"""Quadrature objects: integrals (and gradient integrals) of fields per sample and channel.

A :class:`Quadrature` is what losses and metrics take instead of loose
keywords: it knows how fields are laid out and how to integrate them.

- :class:`PointQuadrature`: fields ``[N, C]`` on a point cloud or a PyG batch of
  clouds (built with :meth:`PointQuadrature.from_cloud`), integrated per graph.
- :class:`GridQuadrature`: fields ``[B, C, *shape]`` on a :class:`GridSpec`
  (gradients by finite differences with the physical spacing).
- :class:`SphereQuadrature`: fields ``[B, C, nlat, nlon]`` on a
  :class:`SphereGridSpec` (gradients through the spherical harmonic transform).

:func:`as_quadrature` turns a point cloud, a batch, or a grid description into one.
"""

from __future__ import annotations

from typing import Any

import torch

from geo_neuralop.geometry.grid_spec import GridSpec, SphereGridSpec
from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.utils.cache import BoundedCache

__all__ = ["GridQuadrature", "PointQuadrature", "Quadrature", "SphereQuadrature",
           "as_quadrature"]


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """At least float32: integrals stay accurate under half-precision autocast."""
    return torch.promote_types(x.dtype, torch.float32)


class Quadrature:
    """Integrates non-negative point values per sample and channel (an abstract base)."""

    #: ``"points"`` for ``[N, C]`` fields, ``"grid"`` for ``[B, C, *spatial]``.
    layout: str = ""

    def integrate(self, values: torch.Tensor) -> torch.Tensor:
        """``sum_i w_i values_i`` per sample and channel: ``[B, C]``."""
        raise NotImplementedError

    def check_fields(self, x: torch.Tensor, name: str = "pred") -> None:
        """Raise ``ValueError`` if ``x`` does not have this quadrature's field layout."""
        raise NotImplementedError

    def gradient_integrals(self, error: torch.Tensor, target: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, C]`` integrals of ``|grad error|^2`` and ``|grad target|^2`` from the fields.

        Raises
        ------
        ValueError
            When this discretization cannot differentiate (point clouds: pass
            gradient fields to the H1 functions instead).
        """
        raise ValueError(f"{type(self).__name__} cannot compute gradients of point values; "
                         "pass gradient fields (pred_grad, target_grad) of shape [N, C, d]")

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        return self.integrate(values)


class PointQuadrature(Quadrature):
    """Quadrature on one point cloud or a PyG batch of clouds.

    Parameters
    ----------
    weights : torch.Tensor, shape [N]
        Quadrature weights of the points.
    batch : torch.Tensor, shape [N], optional
        Graph index of each point (PyG's ``batch`` vector); default one graph.
    num_graphs : int, optional
        Number of graphs (default ``batch.max() + 1``).

    Examples
    --------
    >>> import torch
    >>> q = PointQuadrature(torch.full((4,), 0.25))
    >>> q.integrate(torch.ones(4, 2))
    tensor([[1., 1.]])
    """

    layout = "points"

    def __init__(self, weights: torch.Tensor, batch: torch.Tensor | None = None,
                 num_graphs: int | None = None) -> None:
        if not isinstance(weights, torch.Tensor) or weights.dim() != 1:
            raise ValueError(f"weights must be a tensor of shape [N], got "
                             f"{getattr(weights, 'shape', weights)!r}")
        n = weights.shape[0]
        if batch is None:
            batch = torch.zeros(n, dtype=torch.long, device=weights.device)
            num_graphs = 1
        else:
            if tuple(batch.shape) != (n,):
                raise ValueError(f"batch must have shape [{n}], got {tuple(batch.shape)}")
            batch = batch.to(device=weights.device, dtype=torch.long)
            if num_graphs is None:
                num_graphs = int(batch.max()) + 1 if n > 0 else 0
        self.weights, self.batch, self.num_graphs = weights, batch, int(num_graphs)

    @classmethod
    def from_cloud(cls, cloud: Any) -> PointQuadrature:
        """From a :class:`PointCloud` or a PyG batch of them (its ``batch`` vector)."""
        batch = getattr(cloud, "batch", None)
        num_graphs = int(cloud.num_graphs) if batch is not None else None
        return cls(cloud.weights, batch, num_graphs)

    def check_fields(self, x: torch.Tensor, name: str = "pred") -> None:
        n = self.weights.shape[0]
        if x.dim() not in (1, 2) or x.shape[0] != n:
            raise ValueError(f"{name} must have shape [{n}] or [{n}, C] (one row per point), "
                             f"got {tuple(x.shape)}")

    def integrate(self, values: torch.Tensor) -> torch.Tensor:
        self.check_fields(values, "values")
        v = values if values.dim() == 2 else values[:, None]
        w = self.weights.to(device=v.device, dtype=v.dtype)
        out = torch.zeros(self.num_graphs, v.shape[1], dtype=v.dtype, device=v.device)
        return out.index_add_(0, self.batch.to(v.device), w[:, None] * v)

    def __repr__(self) -> str:
        return f"PointQuadrature({self.weights.shape[0]} points, {self.num_graphs} graphs)"


class GridQuadrature(Quadrature):
    """Quadrature of fields ``[B, C, *shape]`` on a regular grid.

    Parameters
    ----------
    spec : GridSpec
        The grid; its weights are used unless ``weights`` is given.
    weights : torch.Tensor, shape [*shape] or [B, *shape], optional
        Other weights (e.g. per-sample weights of a batch).

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.geometry import GridSpec
    >>> q = GridQuadrature(GridSpec((8,), domain=(0.0, 2.0), periodic=True))
    >>> q.integrate(torch.ones(3, 1, 8)).flatten().tolist()
    [2.0, 2.0, 2.0]
    """

    layout = "grid"

    def __init__(self, spec: GridSpec | SphereGridSpec,
                 weights: torch.Tensor | None = None) -> None:
        self.spec = spec
        shape = tuple(spec.shape)
        if weights is not None:
            if tuple(weights.shape) != shape and not (
                    weights.dim() == len(shape) + 1 and tuple(weights.shape[1:]) == shape):
                raise ValueError(f"grid weights must have shape {list(shape)} or "
                                 f"[B, {', '.join(map(str, shape))}], got "
                                 f"{list(weights.shape)}")
        self._given = weights
        self._weights: BoundedCache[torch.Tensor] = BoundedCache(4)

    def weights(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Weights ``[B or 1, 1, *shape]`` in ``dtype`` on ``device`` (cached)."""
        def build() -> torch.Tensor:
            w = self.spec.weights(dtype=torch.float64) if self._given is None else self._given
            w = w.to(device=device, dtype=dtype)
            return (w[None] if w.dim() == len(self.spec.shape) else w)[:, None]
        if self._given is not None:
            return build()  # may change between calls when it is a view of a batch
        return self._weights.get_or_build((dtype, str(device)), build)

    def check_fields(self, x: torch.Tensor, name: str = "pred") -> None:
        shape = tuple(self.spec.shape)
        if x.dim() != len(shape) + 2 or tuple(x.shape[2:]) != shape:
            raise ValueError(f"{name} must have shape [B, C, {', '.join(map(str, shape))}] on "
                             f"this grid, got {tuple(x.shape)}")
        if self._given is not None and self._given.dim() == len(shape) + 1 and \
                self._given.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"{name} has {x.shape[0]} samples but the weights have "
                             f"{self._given.shape[0]}")

    def integrate(self, values: torch.Tensor) -> torch.Tensor:
        self.check_fields(values, "values")
        w = self.weights(values.dtype, values.device)
        return (w * values).sum(dim=tuple(range(2, values.dim())))

    def gradient_integrals(self, error: torch.Tensor, target: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(self.spec, GridSpec):  # pragma: no cover - SphereQuadrature overrides
            raise ValueError("gradients need a GridSpec")
        de, dy = self.spec.gradient(error), self.spec.gradient(target)
        return self.integrate((de * de).sum(2)), self.integrate((dy * dy).sum(2))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec})"


class SphereQuadrature(GridQuadrature):
    """Quadrature of fields ``[B, C, nlat, nlon]`` on a latitude-longitude sphere grid.

    Gradient integrals use the spherical harmonic transform (torch-harmonics):
    ``int |grad f|^2 = sum_lm l (l + 1) |f_lm|^2`` with orthonormal harmonics, over the
    degrees the grid resolves (:meth:`SphereGridSpec.resolved_degrees`).

    Parameters
    ----------
    spec : SphereGridSpec
    weights : torch.Tensor, optional
        As in :class:`GridQuadrature`.
    """

    def __init__(self, spec: SphereGridSpec, weights: torch.Tensor | None = None) -> None:
        if not isinstance(spec, SphereGridSpec):
            raise TypeError(f"spec must be a SphereGridSpec, got {type(spec).__name__}")
        super().__init__(spec, weights)
        self._transforms: BoundedCache[torch.nn.Module] = BoundedCache(4)

    def gradient_sq_norm(self, x: torch.Tensor) -> torch.Tensor:
        """``int |grad x|^2`` over the unit sphere per sample and channel, ``[B, C]``."""
        self.check_fields(x, "x")
        spec = self.spec
        dtype = x.dtype if x.dtype == torch.float64 else torch.float32

        def build() -> torch.nn.Module:
            import torch_harmonics as th

            lmax = spec.resolved_degrees()
            mmax = min(lmax, spec.nlon // 2 + 1)
            return th.RealSHT(spec.nlat, spec.nlon, lmax=lmax, mmax=mmax, grid=spec.grid,
                              norm="ortho").to(device=x.device, dtype=dtype)

        sht = self._transforms.get_or_build((dtype, str(x.device)), build)
        coeffs = sht(x.to(dtype))
        lmax, mmax = coeffs.shape[-2:]
        ell = torch.arange(lmax, device=x.device, dtype=dtype)
        mult = torch.full((mmax,), 2.0, device=x.device, dtype=dtype)
        mult[0] = 1.0  # m > 0 stands for +m and -m of a real field
        factor = (ell * (ell + 1.0))[:, None] * mult
        return (coeffs.abs() ** 2 * factor).sum(dim=(-2, -1))

    def gradient_integrals(self, error: torch.Tensor, target: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.gradient_sq_norm(error), self.gradient_sq_norm(target)


def as_quadrature(obj: Any) -> Quadrature:
    """A :class:`Quadrature` from a quadrature, a point cloud or batch, or a grid description.

    Raises
    ------
    TypeError
        For anything else (the message lists what is accepted).
    """
    if isinstance(obj, Quadrature):
        return obj
    if isinstance(obj, SphereGridSpec):
        return SphereQuadrature(obj)
    if isinstance(obj, GridSpec):
        return GridQuadrature(obj)
    if isinstance(obj, PointCloud) or (hasattr(obj, "weights") and hasattr(obj, "pos")):
        return PointQuadrature.from_cloud(obj)
    raise TypeError(f"quadrature must be a Quadrature, a PointCloud (or a PyG batch of them), a "
                    f"GridSpec or a SphereGridSpec, got {type(obj).__name__}")
