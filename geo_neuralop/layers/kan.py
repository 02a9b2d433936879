"""Kolmogorov-Arnold network layers with B-spline edge functions, in plain torch.

A KAN layer maps ``x [..., in]`` to ``y_j = sum_i phi_ij(x_i)`` where every edge
function is ``phi_ij(t) = a_ij silu(t) + sum_g c_ijg B_g(t)``: a learned
combination of a smooth base function and uniform B-splines of degree ``p`` on
``grid_size`` intervals of ``grid_range`` (Liu et al., "KAN: Kolmogorov-Arnold
Networks", 2024). The spline part is linear in its coefficients, so a single
layer fits a 1-D function by least squares with the usual ``O(h^(p+1))``
B-spline accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["KAN", "KANLinear", "bspline_basis"]


def bspline_basis(x: torch.Tensor, knots: torch.Tensor, order: int) -> torch.Tensor:
    """B-spline basis functions of degree ``order`` on the given knots (Cox-de Boor).

    Parameters
    ----------
    x : torch.Tensor, shape [...]
        Evaluation points.
    knots : torch.Tensor, shape [n_knots]
        Non-decreasing knots ``t_0 .. t_{n_knots - 1}``.
    order : int
        Polynomial degree ``p`` (3: cubic).

    Returns
    -------
    torch.Tensor, shape [..., n_knots - order - 1]
        ``B_j(x)``, supported on ``[t_j, t_{j + p + 1})``; they sum to one on
        ``[t_p, t_{n_knots - p - 1})`` (partition of unity). The loop runs over the
        degree only (``p`` steps), vectorized over points and knots.
    """
    if order < 0:
        raise ValueError(f"order must be non-negative, got {order}")
    t = knots.to(x.dtype)
    xe = x.unsqueeze(-1)
    basis = ((xe >= t[:-1]) & (xe < t[1:])).to(x.dtype)
    for p in range(1, order + 1):
        left_den = t[p:-1] - t[: -p - 1]
        right_den = t[p + 1:] - t[1:-p]
        left = (xe - t[: -p - 1]) / torch.where(left_den > 0, left_den, torch.ones_like(left_den))
        right = (t[p + 1:] - xe) / torch.where(right_den > 0, right_den,
                                               torch.ones_like(right_den))
        basis = left * basis[..., :-1] + right * basis[..., 1:]
    return basis


class KANLinear(nn.Module):
    """One Kolmogorov-Arnold layer: a learned B-spline plus SiLU function on every edge.

    Parameters
    ----------
    in_features, out_features : int
    grid_size : int
        Number of uniform knot intervals on ``grid_range``.
    spline_order : int
        Degree of the B-splines (3: cubic).
    grid_range : (float, float)
        Interval where the splines form a partition of unity; outside it only
        the SiLU part acts.
    base : bool
        Include the ``a_ij silu(x_i)`` term.

    Notes
    -----
    Shapes: forward: ``x [..., in_features]`` -> ``[..., out_features]``.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.layers.kan import KANLinear
    >>> layer = KANLinear(2, 5, grid_size=6)
    >>> layer(torch.rand(10, 2) * 2 - 1).shape
    torch.Size([10, 5])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        grid_size: int = 8,
        spline_order: int = 3,
        grid_range: Sequence[float] = (-1.0, 1.0),
        base: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features),
                            ("grid_size", grid_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if isinstance(spline_order, bool) or not isinstance(spline_order, int) or spline_order < 0:
            raise ValueError(f"spline_order must be a non-negative int, got {spline_order!r}")
        lo, hi = (float(v) for v in grid_range)
        if not hi > lo:
            raise ValueError(f"grid_range must be (lo, hi) with hi > lo, got {tuple(grid_range)}")
        self.in_features = in_features
        self.out_features = out_features
        self.grid_size = grid_size
        self.spline_order = spline_order
        self.grid_range = (lo, hi)
        h = (hi - lo) / grid_size
        knots = lo + h * torch.arange(-spline_order, grid_size + spline_order + 1,
                                      dtype=torch.float64)
        self.register_buffer("knots", knots.to(torch.get_default_dtype()), persistent=False)
        n_basis = grid_size + spline_order
        self.spline_weight = nn.Parameter(
            torch.randn(out_features, in_features, n_basis) * (0.5 / math.sqrt(in_features))
        )
        if base:
            self.base_weight = nn.Parameter(
                torch.randn(out_features, in_features) * math.sqrt(1.0 / in_features)
            )
        else:
            self.register_parameter("base_weight", None)

    @property
    def num_basis(self) -> int:
        """Number of B-spline functions per edge (``grid_size + spline_order``)."""
        return self.grid_size + self.spline_order

    def basis(self, x: torch.Tensor) -> torch.Tensor:
        """B-spline values ``[..., in_features, num_basis]`` at ``x [..., in_features]``."""
        return bspline_basis(x, self.knots, self.spline_order)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"x must have {self.in_features} features in its last axis, got {tuple(x.shape)}"
            )
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_features)
        spline = self.basis(flat).reshape(flat.shape[0], -1)
        out = spline @ self.spline_weight.reshape(self.out_features, -1).t()
        if self.base_weight is not None:
            out = out + F.silu(flat) @ self.base_weight.t()
        return out.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, grid_size={self.grid_size}, "
                f"spline_order={self.spline_order}, grid_range={self.grid_range}")


class KAN(nn.Sequential):
    """A stack of :class:`KANLinear` layers, ``widths = [in, hidden..., out]``.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.layers.kan import KAN
    >>> KAN([1, 8, 4])(torch.zeros(3, 1)).shape
    torch.Size([3, 4])
    """

    def __init__(self, widths: Sequence[int], grid_size: int = 8, spline_order: int = 3,
                 grid_range: Sequence[float] = (-1.0, 1.0)) -> None:
        widths = list(widths)
        if len(widths) < 2:
            raise ValueError(f"widths must list an input and an output width, got {widths}")
        super().__init__(*[
            KANLinear(a, b, grid_size=grid_size, spline_order=spline_order, grid_range=grid_range)
            for a, b in zip(widths[:-1], widths[1:], strict=True)
        ])
