"""``DiscoConv``: a discrete-continuous convolution on any point cloud."""

from __future__ import annotations

import math

import torch
from torch import nn

from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.kernels.basis import FilterBasis, get_basis
from geo_neuralop.kernels.disco import DiscoKernel, disco_kernel


class _SparseProduct(torch.autograd.Function):
    """``matrix @ x`` with the backward pass ``matrix_t @ grad`` (the kernel is fixed)."""

    @staticmethod
    def forward(ctx, matrix: torch.Tensor, matrix_t: torch.Tensor, x: torch.Tensor):
        ctx.matrix_t = matrix_t
        return torch.sparse.mm(matrix, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None, torch.sparse.mm(ctx.matrix_t, grad.contiguous())


def _as_batched(x: torch.Tensor, kernel: DiscoKernel, name: str = "x") -> tuple[torch.Tensor, bool]:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not isinstance(kernel, DiscoKernel):
        raise TypeError(f"kernel must be a DiscoKernel, got {type(kernel).__name__}")
    if x.dim() == 2:
        x, squeeze = x.unsqueeze(0), True
    elif x.dim() == 3:
        squeeze = False
    else:
        raise ValueError(
            f"{name} must have shape [B, N_src, C] or [N_src, C], got {tuple(x.shape)}"
        )
    if x.shape[1] != kernel.total_src:
        raise ValueError(
            f"{name} has {x.shape[1]} points but the kernel's source cloud has {kernel.total_src}"
        )
    return x, squeeze


def _responses_one(x: torch.Tensor, matrix: torch.Tensor, matrix_t: torch.Tensor,
                   n_dst: int, k: int) -> torch.Tensor:
    """Basis responses of one sample: ``x [N_src, C]`` -> ``[N_dst, K * C]`` (a free view)."""
    return _SparseProduct.apply(matrix, matrix_t, x).view(n_dst, k * x.shape[1])


def disco_basis_responses(x: torch.Tensor, kernel: DiscoKernel) -> torch.Tensor:
    """Integrals of the input against every basis function, at every output point.

    Parameters
    ----------
    x : torch.Tensor, shape [B, N_src, C]
    kernel : DiscoKernel

    Returns
    -------
    torch.Tensor, shape [N_dst, K, B, C]
        ``sum_j psi_k(x_i, x_j) w_j x_j`` (one sparse product per sample for all K).
    """
    b, _, c = x.shape
    x = x.contiguous()
    matrix, matrix_t = kernel.sparse_matrices(x.dtype, x.device)
    n, k = kernel.total_dst, kernel.num_basis
    ys = [_responses_one(x[i], matrix, matrix_t, n, k).view(n, k, c) for i in range(b)]
    return torch.stack(ys, dim=2)


class DiscoConv(nn.Module):
    """Discrete-continuous convolution ``(k * v)(x_i) = sum_j kappa(x_i, x_j) v(x_j) w_j``.

    The kernel ``kappa = sum_k theta_k psi_k`` is a learned combination of basis
    functions of compact support (radius ``radius``) evaluated in the local frame
    of each output point, so the layer is a quadrature of a continuous integral
    operator and converges as the point cloud is refined.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_shape : int or tuple
        Basis shape (see :class:`~geo_neuralop.kernels.PiecewiseLinearBasis`).
    basis : {"piecewise_linear", "morlet", "zernike"} or FilterBasis
    radius : float
        Support radius in the cloud's length units (radians on the sphere).
    groups : int
        Channel groups: weight ``[out_channels, in_channels / groups, K]``.
    bias : bool
    normalization : {"none", "mean", "nodal"}
        Used by :meth:`build_kernel`.

    Shapes
    ------
    forward(x, kernel): x ``[B, N_src, C_in]`` (or ``[N_src, C_in]``, e.g. a PyG
    batch with a block-diagonal batched kernel) -> ``[B, N_dst, C_out]`` (or
    ``[N_dst, C_out]``).

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.geometry import sphere_grid
    >>> from geo_neuralop.layers import DiscoConv
    >>> grid = sphere_grid(16, 32, "legendre-gauss")
    >>> conv = DiscoConv(3, 8, kernel_shape=(3, 4), radius=0.3)
    >>> kernel = conv.build_kernel(grid)
    >>> conv(torch.randn(2, grid.num_nodes, 3), kernel).shape
    torch.Size([2, 512, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_shape: int | tuple[int, ...] = (3, 4),
        basis: str | FilterBasis = "piecewise_linear",
        radius: float = 0.1,
        groups: int = 1,
        bias: bool = True,
        normalization: str = "mean",
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("groups", groups)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                f"divisible by groups ({groups})"
            )
        if not radius > 0:
            raise ValueError(f"radius must be positive, got {radius}")
        self.basis = get_basis(basis, kernel_shape if not isinstance(basis, FilterBasis) else None)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.radius, self.normalization = float(radius), normalization
        k = self.basis.kernel_size
        group_in = in_channels // groups
        scale = math.sqrt(1.0 / (group_in * k))
        self.weight = nn.Parameter(scale * torch.randn(out_channels, group_in, k))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    @property
    def kernel_size(self) -> int:
        return self.basis.kernel_size

    def build_kernel(
        self, src: PointCloud, dst: PointCloud | None = None, **kwargs
    ) -> DiscoKernel:
        """The kernel matrix of this layer's basis and radius from ``src`` to ``dst`` (cached)."""
        kwargs.setdefault("normalization", self.normalization)
        return disco_kernel(src, dst, basis=self.basis, radius=self.radius, **kwargs)

    def _check(self, x: torch.Tensor, kernel: DiscoKernel) -> None:
        if kernel.num_basis != self.kernel_size:
            raise ValueError(
                f"kernel has {kernel.num_basis} basis functions but the layer has "
                f"{self.kernel_size}"
            )
        if x.shape[-1] != self.in_channels:
            raise ValueError(
                f"x has {x.shape[-1]} channels but the layer expects {self.in_channels}"
            )

    def contract(self, y: torch.Tensor) -> torch.Tensor:
        """Contract one sample's basis responses ``[N_dst, K * C_in]`` -> ``[N_dst, C_out]``.

        The responses are ordered ``(k, c)``, as the sparse product returns them.
        """
        n = y.shape[0]
        k, c = self.kernel_size, self.in_channels
        if self.groups == 1:
            w = self.weight.permute(0, 2, 1).reshape(self.out_channels, k * c)  # (k, c) order
            out = y @ w.T
        else:
            g = self.groups
            yg = y.view(n, k, g, c // g)
            wg = self.weight.view(g, self.out_channels // g, c // g, k)
            out = torch.einsum("nkgc,gock->ngo", yg, wg).reshape(n, self.out_channels)
        if self.bias is not None:
            out = out + self.bias
        return out

    def forward(self, x: torch.Tensor, kernel: DiscoKernel) -> torch.Tensor:
        xb, squeeze = _as_batched(x, kernel)
        self._check(xb, kernel)
        xb = xb.contiguous()
        matrix, matrix_t = kernel.sparse_matrices(xb.dtype, xb.device)
        n, k = kernel.total_dst, kernel.num_basis
        # One sample at a time: every intermediate is then a view, no permuted copies.
        outs = [self.contract(_responses_one(xb[i], matrix, matrix_t, n, k))
                for i in range(xb.shape[0])]
        return outs[0] if squeeze else torch.stack(outs)

    def forward_reference(self, x: torch.Tensor, kernel: DiscoKernel) -> torch.Tensor:
        """The same operator with a dense ``[K, N_dst, N_src]`` kernel: slow, for tests only."""
        xb, squeeze = _as_batched(x, kernel)
        self._check(xb, kernel)
        dense = dense_kernel(kernel, xb.dtype)
        g = self.groups
        b, n_src, c = xb.shape
        xg = xb.view(b, n_src, g, c // g)
        wg = self.weight.view(g, self.out_channels // g, c // g, self.kernel_size)
        out = torch.einsum("kij,bjgc,gock->bigo", dense, xg, wg).reshape(b, -1, self.out_channels)
        if self.bias is not None:
            out = out + self.bias
        return out[0] if squeeze else out

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, basis={self.basis}, "
            f"radius={self.radius:g}, groups={self.groups}, bias={self.bias is not None}"
        )


def dense_kernel(kernel: DiscoKernel, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The kernel as a dense tensor ``[K, N_dst, N_src]`` (tests and small problems only)."""
    dense = torch.zeros(kernel.num_basis, kernel.total_dst, kernel.total_src, dtype=dtype)
    src, dst = kernel.edge_index
    for k in range(kernel.num_basis):
        dense[k].index_put_((dst, src), kernel.edge_values[:, k].to(dtype), accumulate=True)
    return dense
