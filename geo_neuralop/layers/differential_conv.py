"""Differential convolutions: stencils that converge to derivatives under refinement.

- :class:`GridDifferentialConv` on regular grids: per axis, a learned zero-sum
  stencil divided by the physical grid width of that axis.
- :class:`PointDifferentialConv` on point clouds and the sphere: a DISCO kernel
  made zero-sum at every output point and divided by the kernel radius.

A zero-sum stencil annihilates constants, so ``sum_a W_a v(x + a h) / h ->
(sum_a a W_a) dv/dx`` as ``h -> 0``: the layer's limit is a learned first-order
differential operator, whatever the resolution it is evaluated at.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.kernels.disco import DiscoKernel, disco_kernel
from geo_neuralop.layers.disco_conv import DiscoConv

BOUNDARIES = {"periodic": "circular", "zero": "constant", "reflect": "reflect",
              "replicate": "replicate"}


class GridDifferentialConv(nn.Module):
    """Learned first-order differential operator on a regular grid.

    ``out = sum_d (W_d *_d x) / h_d`` where ``W_d [C_out, C_in, s]`` is a
    zero-sum stencil of ``s`` points along axis ``d`` and ``h_d`` the physical
    grid width of axis ``d`` computed from the input's resolution at every call.

    Parameters
    ----------
    in_channels, out_channels : int
    ndim : {1, 2, 3}
        Number of spatial axes.
    stencil_size : int
        Odd number of points per axis (default 3).
    domain_size : float or sequence of float
        Physical length of each axis (default 1).
    boundary : {"periodic", "zero", "reflect", "replicate"} or sequence
        Padding per axis. "periodic" uses ``h = L / n`` (the end point is not
        repeated); the others ``h = L / (n - 1)`` (both ends are grid points).

    Shapes
    ------
    forward(x): ``[B, C_in, n_1, ..., n_ndim] -> [B, C_out, n_1, ..., n_ndim]``.

    Examples
    --------
    >>> import torch, math
    >>> conv = GridDifferentialConv(1, 1, ndim=1, domain_size=2 * math.pi)
    >>> with torch.no_grad():
    ...     _ = conv.weight.copy_(torch.tensor([[[[-0.5, 0.0, 0.5]]]]))  # central difference
    >>> x = torch.linspace(0, 2 * math.pi, 257)[:-1]
    >>> y = conv(torch.sin(x)[None, None])
    >>> bool((y[0, 0] - torch.cos(x)).abs().max() < 1e-3)
    True
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ndim: int = 2,
        stencil_size: int = 3,
        domain_size: float | Sequence[float] = 1.0,
        boundary: str | Sequence[str] = "periodic",
    ) -> None:
        super().__init__()
        if ndim not in (1, 2, 3):
            raise ValueError(f"ndim must be 1, 2 or 3, got {ndim}")
        if stencil_size < 3 or stencil_size % 2 == 0:
            raise ValueError(f"stencil_size must be odd and at least 3, got {stencil_size}")
        sizes = (domain_size,) * ndim if isinstance(domain_size, (int, float)) else tuple(
            domain_size
        )
        if len(sizes) != ndim or any(not s > 0 for s in sizes):
            raise ValueError(f"domain_size must be {ndim} positive lengths, got {domain_size}")
        bounds = (boundary,) * ndim if isinstance(boundary, str) else tuple(boundary)
        if len(bounds) != ndim:
            raise ValueError(f"boundary needs {ndim} entries, got {boundary}")
        for b in bounds:
            if b not in BOUNDARIES:
                raise ValueError(f"boundary must be one of {sorted(BOUNDARIES)}, got {b!r}")
        self.in_channels, self.out_channels, self.ndim = in_channels, out_channels, ndim
        self.stencil_size, self.domain_size, self.boundary = stencil_size, sizes, bounds
        scale = 1.0 / math.sqrt(in_channels * stencil_size * ndim)
        self.weight = nn.Parameter(scale * torch.randn(ndim, out_channels, in_channels,
                                                       stencil_size))

    def grid_spacing(self, shape: Sequence[int]) -> tuple[float, ...]:
        """Physical grid width of each axis for an input of spatial ``shape``."""
        return tuple(
            length / (n if b == "periodic" else n - 1)
            for length, n, b in zip(self.domain_size, shape, self.boundary, strict=True)
        )

    def zero_sum_weight(self) -> torch.Tensor:
        """The stencils actually applied, ``[ndim, C_out, C_in, s]``, each summing to zero."""
        return self.weight - self.weight.mean(dim=-1, keepdim=True)

    def forward(self, x: torch.Tensor, spacing: Sequence[float] | None = None) -> torch.Tensor:
        """Apply the stencils.

        Parameters
        ----------
        x : torch.Tensor, shape [B, C_in, n_1, ..., n_ndim]
        spacing : sequence of float, optional
            Physical grid width of each axis; default :meth:`grid_spacing` of
            the input's shape (override when ``x`` covers more than
            ``domain_size``, e.g. after domain padding).

        Returns
        -------
        torch.Tensor, shape [B, C_out, n_1, ..., n_ndim]
        """
        if x.dim() != self.ndim + 2:
            raise ValueError(
                f"x must have shape [B, C, {', '.join(['n'] * self.ndim)}], got {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(f"x has {x.shape[1]} channels but the layer expects "
                             f"{self.in_channels}")
        spatial = x.shape[2:]
        half = self.stencil_size // 2
        for axis, (n, b) in enumerate(zip(spatial, self.boundary, strict=True)):
            if n <= half or (b == "reflect" and n <= half):
                raise ValueError(f"axis {axis} has {n} points; the stencil needs more than {half}")
        if spacing is None:
            h = self.grid_spacing(spatial)
        else:
            h = tuple(float(v) for v in spacing)
            if len(h) != self.ndim or not all(v > 0 for v in h):
                raise ValueError(f"spacing must be {self.ndim} positive widths, got {spacing!r}")
        weight = self.zero_sum_weight()
        conv = (F.conv1d, F.conv2d, F.conv3d)[self.ndim - 1]
        out = None
        for axis in range(self.ndim):
            pad = [0, 0] * self.ndim  # F.pad lists the last axis first
            pad[2 * (self.ndim - 1 - axis)] = half
            pad[2 * (self.ndim - 1 - axis) + 1] = half
            mode = BOUNDARIES[self.boundary[axis]]
            padded = F.pad(x, pad, mode=mode) if mode != "constant" else F.pad(x, pad)
            shape = [self.out_channels, self.in_channels] + [1] * self.ndim
            shape[2 + axis] = self.stencil_size
            term = conv(padded, weight[axis].reshape(shape)) / h[axis]
            out = term if out is None else out + term
        return out

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, ndim={self.ndim}, "
                f"stencil_size={self.stencil_size}, domain_size={self.domain_size}, "
                f"boundary={self.boundary}")


class PointDifferentialConv(DiscoConv):
    """Learned first-order differential operator on a point cloud or the sphere.

    A DISCO layer whose kernel (built by :meth:`build_kernel`, or by
    :func:`~geo_neuralop.kernels.disco_kernel` with ``differential=True``) is
    normalized per output point ("nodal"), made to sum to zero at every point
    and divided by the radius:

        out_i = sum_k theta_k sum_j psi_k(x_i, x_j) w_j (v_j - v_i) / (r N_ik),
        N_ik = sum_j |psi_k(x_i, x_j)| w_j,

    which tends to ``sum_k theta_k m_k . grad v`` with ``m_k`` the normalized
    first moment of ``psi_k`` on the unit disk, as the radius shrinks with the
    mesh. Takes the same arguments as :class:`DiscoConv` (bias off by default).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_shape=(3, 4),
                 basis="piecewise_linear", radius: float = 0.1, groups: int = 1,
                 bias: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_shape, basis, radius, groups, bias,
                         normalization="nodal")

    def build_kernel(self, src: PointCloud, dst: PointCloud | None = None,
                     **kwargs) -> DiscoKernel:
        """The differential kernel of ``src`` (``dst`` must be ``src`` or omitted)."""
        kwargs.setdefault("normalization", "nodal")
        return disco_kernel(src, dst, basis=self.basis, radius=self.radius, differential=True,
                            **kwargs)

    def forward(self, x: torch.Tensor, kernel: DiscoKernel) -> torch.Tensor:
        flag = getattr(kernel, "differential", False)  # a list or tensor in a PyG batch
        if isinstance(flag, torch.Tensor):
            flag = bool(flag.all())
        elif isinstance(flag, list):
            flag = all(flag)
        if not flag:
            raise ValueError("PointDifferentialConv needs a kernel built with differential=True "
                             "(use its build_kernel method)")
        return super().forward(x, kernel)
