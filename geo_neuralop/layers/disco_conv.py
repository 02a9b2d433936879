"""``DiscoConv``: a discrete-continuous convolution on any point cloud, owning its kernels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch_geometric.data import Batch

from geo_neuralop.geometry.fingerprint import geometry_fingerprint
from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.kernels.basis import FilterBasis, get_basis
from geo_neuralop.kernels.disco import DEFAULT_MAX_EDGES, NORMALIZATIONS, disco_kernel
from geo_neuralop.kernels.radius_field import RadiusField
from geo_neuralop.kernels.sparse import DiscoKernel
from geo_neuralop.utils.cache import BoundedCache
from geo_neuralop.utils.checks import check_positive_int, check_positive_number, is_number

__all__ = ["DiscoConv", "geometry_fingerprint"]


def _checked_radius(radius: Any) -> float | RadiusField:
    """A positive number, or a :class:`~geo_neuralop.kernels.RadiusField` (a radius per
    position; its kernels need ``normalization="nodal"``)."""
    return radius if isinstance(radius, RadiusField) else check_positive_number("radius",
                                                                                radius)


def _samples(cloud: Any, name: str) -> list[PointCloud]:
    """The clouds of a PyG batch or a list (or the cloud itself)."""
    if isinstance(cloud, Batch):
        return cloud.to_data_list()
    if isinstance(cloud, (list, tuple)) and all(isinstance(c, PointCloud) for c in cloud):
        return list(cloud)
    if not isinstance(cloud, PointCloud):
        raise TypeError(f"{name} must be a PointCloud, a PyG Batch of them or a DiscoKernel, "
                        f"got {type(cloud).__name__}")
    return [cloud]


class DiscoConv(nn.Module):
    """Discrete-continuous convolution ``(k * v)(x_i) = sum_j kappa(x_i, x_j) v(x_j) w_j``.

    The kernel ``kappa = sum_k theta_k psi_k`` is a learned combination of basis
    functions of compact support (radius ``radius``) evaluated in the local frame
    of each output point, so the layer is a quadrature of a continuous integral
    operator and converges as the point cloud is refined. The layer builds the
    sparse kernel of each geometry it meets and keeps it in a bounded cache of
    ``cache_size`` geometries (keyed by positions, weights, radius and dtype).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_shape : int or tuple
        Basis shape (see :class:`~geo_neuralop.kernels.PiecewiseLinearBasis`).
    basis : {"piecewise_linear", "morlet", "zernike"} or FilterBasis
    radius : float, RadiusField or None
        Support radius: a length in the cloud's units, or the geodesic angle in
        radians on the sphere; a :class:`~geo_neuralop.kernels.RadiusField` for
        a radius that varies with position (graded meshes; with
        ``normalization="nodal"``). None: the caller gives a radius at every call
        (e.g. a radius per sample).
    groups : int
        Channel groups: weight ``[out_channels, in_channels / groups, K]``.
    bias : bool
    normalization : {"none", "mean", "nodal"}
        See :func:`~geo_neuralop.kernels.disco_kernel`.
    allow_empty : bool
        Destination points with no source point within the radius get zero
        (e.g. latent grid points inside a hole of the mesh) instead of an error.
    cache_size : int
        Geometries whose kernels are kept.
    max_edges : int
        Largest kernel built (see :func:`~geo_neuralop.kernels.disco_kernel`).
    radius_name, max_edges_name : str
        How error messages call ``radius`` and ``max_edges``: a model passes the names
        of its own arguments (e.g. ``"disco_radius"``).

    Notes
    -----
    Shapes: forward(x, src, dst=None, radius=None): ``x [B, N_src, C_in]`` or ``[N_src, C_in]``
    (e.g. a PyG batch, whose kernels are block-diagonal) -> ``[B, N_dst, C_out]`` or
    ``[N_dst, C_out]``. ``src`` is a :class:`PointCloud` or PyG batch of them, or a
    prebuilt :class:`~geo_neuralop.kernels.DiscoKernel` (or a list of them, one per
    cloud of a batch); ``dst`` defaults to ``src``.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.geometry import sphere_grid
    >>> from geo_neuralop.layers import DiscoConv
    >>> grid = sphere_grid(16, 32, "legendre-gauss")
    >>> conv = DiscoConv(3, 8, kernel_shape=(3, 4), radius=0.3)
    >>> conv(torch.randn(2, grid.num_nodes, 3), grid).shape
    torch.Size([2, 512, 8])
    """

    #: Whether the layer's kernels are differential (zero-sum, divided by the radius).
    differential = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_shape: int | tuple[int, ...] = (3, 4),
        basis: str | FilterBasis = "piecewise_linear",
        radius: float | None = 0.1,
        groups: int = 1,
        bias: bool = True,
        normalization: str = "mean",
        allow_empty: bool = False,
        cache_size: int = 16,
        max_edges: int = DEFAULT_MAX_EDGES,
        *,
        radius_name: str = "radius",
        max_edges_name: str = "max_edges",
    ) -> None:
        super().__init__()
        in_channels = check_positive_int("in_channels", in_channels)
        out_channels = check_positive_int("out_channels", out_channels)
        groups = check_positive_int("groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                f"divisible by groups ({groups})"
            )
        if radius is not None:
            radius = _checked_radius(radius)
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got "
                             f"{normalization!r}")
        self.basis = get_basis(basis, kernel_shape if not isinstance(basis, FilterBasis) else None)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.radius, self.normalization = radius, normalization
        self.allow_empty = bool(allow_empty)
        self.max_edges = check_positive_int("max_edges", max_edges)
        self.radius_name, self.max_edges_name = str(radius_name), str(max_edges_name)
        k = self.basis.kernel_size
        group_in = in_channels // groups
        scale = math.sqrt(1.0 / (group_in * k))
        self.weight = nn.Parameter(scale * torch.randn(out_channels, group_in, k))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.kernels: BoundedCache[DiscoKernel] = BoundedCache(cache_size)

    @property
    def kernel_size(self) -> int:
        """``K``, the number of basis functions."""
        return self.basis.kernel_size

    # ------------------------------------------------------------------ kernels

    def _radius(self, radius: float | None) -> float:
        if radius is None:
            if self.radius is None:
                raise ValueError(f"{type(self).__name__} was built with radius=None, so every "
                                 "call must give radius=")
            return self.radius
        return _checked_radius(radius)

    def build_kernel(self, src: PointCloud, dst: PointCloud | None = None,
                     radius: float | None = None,
                     dtype: torch.dtype | None = None) -> DiscoKernel:
        """The kernel of this layer's basis from ``src`` to ``dst`` (built anew, not cached).

        Use it to precompute kernels outside the training step (e.g. in data
        loaders); pass the result as ``src`` of :meth:`forward`.
        """
        return disco_kernel(src, dst, basis=self.basis, radius=self._radius(radius),
                            normalization=self.normalization, differential=self.differential,
                            dtype=dtype, allow_empty=self.allow_empty, max_edges=self.max_edges,
                            radius_name=self.radius_name, max_edges_name=self.max_edges_name)

    def kernels_of(self, src: PointCloud | Batch | Sequence[PointCloud],
                   dst: PointCloud | Batch | Sequence[PointCloud] | None = None,
                   radius: float | Sequence[float] | None = None,
                   dtype: torch.dtype | None = None) -> list[DiscoKernel]:
        """The (cached) kernel of every cloud of ``src`` to the matching cloud of ``dst``.

        Parameters
        ----------
        src, dst : PointCloud, Batch or list of PointCloud
            ``dst`` defaults to ``src``; batches must hold the same number of clouds.
        radius : float or sequence of float, optional
            Default the layer's; a sequence gives one radius per cloud of a batch.
        dtype : torch.dtype, optional
            Of the kernel values.
        """
        sources = _samples(src, "src")
        targets = sources if dst is None else _samples(dst, "dst")
        if len(targets) != len(sources):
            raise ValueError(f"dst holds {len(targets)} clouds but src holds {len(sources)}")
        if radius is None or is_number(radius) or isinstance(radius, RadiusField):
            radii = [self._radius(radius)] * len(sources)  # type: ignore[arg-type]
        else:
            radii = [self._radius(r) for r in radius]  # type: ignore[union-attr]
            if len(radii) != len(sources):
                raise ValueError(f"radius holds {len(radii)} values for {len(sources)} clouds")
        dtype = dtype or torch.get_default_dtype()
        kernels = []
        for s, d, r in zip(sources, targets, radii, strict=True):
            same = d is s
            key = (geometry_fingerprint(s), None if same else geometry_fingerprint(d), r, dtype)

            def build(s=s, d=d, r=r) -> DiscoKernel:
                return self.build_kernel(s, d, r, dtype)

            kernels.append(self.kernels.get_or_build(key, build))
        return kernels

    def kernel(self, src: PointCloud | Batch | Sequence[PointCloud],
               dst: PointCloud | Batch | Sequence[PointCloud] | None = None,
               radius: float | Sequence[float] | None = None,
               dtype: torch.dtype | None = None) -> DiscoKernel:
        """The (cached) kernel from ``src`` to ``dst``; block-diagonal for several clouds
        (see :meth:`kernels_of` for the arguments)."""
        kernels = self.kernels_of(src, dst, radius, dtype)
        return kernels[0] if len(kernels) == 1 else Batch.from_data_list(kernels)

    # ------------------------------------------------------------------ forward

    def _check_kernel(self, kernel: DiscoKernel) -> None:
        if kernel.kernel_size != self.kernel_size:
            raise ValueError(f"kernel has {kernel.kernel_size} basis functions but the layer "
                             f"has {self.kernel_size}")
        flag = getattr(kernel, "differential", False)  # a list or tensor in a PyG batch
        flag = bool(flag.all()) if isinstance(flag, torch.Tensor) else (
            all(flag) if isinstance(flag, list) else bool(flag))
        if flag != self.differential:
            raise ValueError(f"{type(self).__name__} needs a kernel built with "
                             f"differential={self.differential}, got one built with "
                             f"differential={flag} (use the layer's build_kernel)")

    def checked_kernels(self, kernel: DiscoKernel | Batch | Sequence[DiscoKernel],
                        src: PointCloud | Batch | Sequence[PointCloud],
                        dst: PointCloud | Batch | Sequence[PointCloud] | None = None,
                        radius: float | Sequence[float] | None = None) -> list[DiscoKernel]:
        """Prebuilt kernels (e.g. attached to samples by :class:`AttachKernels`), checked to
        belong to the clouds ``src`` -> ``dst``.

        Every kernel carries the :func:`geometry_fingerprint` of the clouds it was built
        from; a kernel of another cloud (even one with the same number of points), a
        kernel without fingerprints, or one of another radius is refused.

        Raises
        ------
        ValueError
            Naming the cloud index and what differs.
        """
        if isinstance(kernel, Batch):
            given = kernel.to_data_list()
        elif isinstance(kernel, (list, tuple)):
            given = list(kernel)
        else:
            given = [kernel]
        for k in given:
            if not isinstance(k, DiscoKernel):
                raise TypeError(f"kernel must be a DiscoKernel, a batch or a list of them, got "
                                f"{type(k).__name__}")
        sources = _samples(src, "src")
        targets = sources if dst is None else _samples(dst, "dst")
        if not len(given) == len(sources) == len(targets):
            raise ValueError(f"{len(given)} kernels given for {len(sources)} src and "
                             f"{len(targets)} dst clouds")
        radii = [radius] * len(given) if radius is None or is_number(radius) else list(radius)
        if len(radii) != len(given):
            raise ValueError(f"radius holds {len(radii)} values for {len(given)} clouds")
        for i, (k, s, d, r) in enumerate(zip(given, sources, targets, radii, strict=True)):
            stored = (getattr(k, "src_fingerprint", None), getattr(k, "dst_fingerprint", None))
            if None in stored:
                raise ValueError(f"kernel {i} carries no geometry fingerprint, so it cannot be "
                                 f"checked against its clouds; rebuild it with disco_kernel or "
                                 f"the layer's build_kernel")
            for role, cloud, fp in (("src", s, stored[0]), ("dst", d, stored[1])):
                if geometry_fingerprint(cloud) != fp:
                    raise ValueError(
                        f"kernel {i} was built for another {role} geometry than {role} cloud "
                        f"{i} ({cloud.num_nodes} points): its positions, weights or grid "
                        f"differ; build the kernel from this cloud")
            if r is not None and not isinstance(r, RadiusField) and not math.isclose(
                    float(k.radius), float(r)):
                raise ValueError(f"kernel {i} has radius {float(k.radius):g}, not {float(r):g}")
        return given

    def _prepare(self, x: torch.Tensor, src: Any, dst: Any, radius: Any,
                 kernel: Any = None) -> tuple[torch.Tensor, list[DiscoKernel], bool, torch.dtype]:
        """Checked input ``[B, N_src, C]`` and the kernels (one, or one per cloud)."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating point tensor, got {x.dtype}")
        dtype = x.dtype
        if dtype in (torch.float16, torch.bfloat16):
            x = x.float()  # sparse products need single precision; the result is cast back
        if kernel is not None:
            if isinstance(src, DiscoKernel):
                raise ValueError("with kernel=, src must be the cloud the kernel was built "
                                 "from (it is checked against the kernel)")
            kernels = self.checked_kernels(kernel, src, dst, radius)
        elif isinstance(src, DiscoKernel) or (isinstance(src, (list, tuple)) and src and all(
                isinstance(k, DiscoKernel) for k in src)):
            if dst is not None or radius is not None:
                raise ValueError("with a prebuilt kernel, dst and radius must not be given")
            kernels = [src] if isinstance(src, DiscoKernel) else list(src)
        else:
            kernels = self.kernels_of(src, dst, radius, dtype=x.dtype)
        if x.dim() == 2:
            x, squeeze = x.unsqueeze(0), True
        elif x.dim() == 3:
            squeeze = False
        else:
            raise ValueError(f"x must have shape [B, N_src, C] or [N_src, C], got "
                             f"{tuple(x.shape)}")
        total_src = sum(k.total_src for k in kernels)
        if x.shape[1] != total_src:
            raise ValueError(f"x has {x.shape[1]} points but the kernel's source cloud has "
                             f"{total_src}")
        if len(kernels) > 1 and x.shape[0] != 1:
            raise ValueError(f"several clouds take x of shape [N_src, C] (the points of all "
                             f"clouds in order), got {tuple(x.shape)}")
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"x has {x.shape[-1]} channels but the layer expects "
                             f"{self.in_channels}")
        for kernel in kernels:
            self._check_kernel(kernel)
        return x.contiguous(), kernels, squeeze, dtype

    def contract(self, y: torch.Tensor) -> torch.Tensor:
        """Contract one sample's basis responses ``[N_dst, K * C_in]`` -> ``[N_dst, C_out]``.

        The responses are ordered ``(k, c)``, as the sparse product returns them.
        """
        n = y.shape[0]
        k, c = self.kernel_size, self.in_channels
        weight = self.weight.to(y.dtype)
        if self.groups == 1:
            w = weight.permute(0, 2, 1).reshape(self.out_channels, k * c)  # (k, c) order
            out = y @ w.T
        else:
            g = self.groups
            yg = y.view(n, k, g, c // g)
            wg = weight.view(g, self.out_channels // g, c // g, k)
            out = torch.einsum("nkgc,gock->ngo", yg, wg).reshape(n, self.out_channels)
        if self.bias is not None:
            out = out + self.bias.to(y.dtype)
        return out

    def forward(self, x: torch.Tensor, src: PointCloud | Batch | DiscoKernel,
                dst: PointCloud | Batch | None = None,
                radius: float | Sequence[float] | None = None, *,
                kernel: DiscoKernel | Batch | Sequence[DiscoKernel] | None = None
                ) -> torch.Tensor:
        """Apply the convolution from the points of ``src`` to those of ``dst``.

        Parameters
        ----------
        x : torch.Tensor, shape [B, N_src, C_in] or [N_src, C_in]
            Half-precision inputs are computed in float32 and cast back.
        src : PointCloud, Batch or DiscoKernel
            Input geometry (its kernel is built once and cached), or a prebuilt kernel.
        dst : PointCloud or Batch, optional
            Output geometry (default ``src``).
        radius : float or sequence of float, optional
            Overrides the layer's radius (one per cloud of a batch).
        kernel : DiscoKernel, Batch or list of DiscoKernel, optional
            Prebuilt kernels of the clouds ``src`` -> ``dst`` (e.g. attached to the
            samples by :class:`~geo_neuralop.data.AttachKernels`): used instead of
            building them, after checking that they were built from these clouds
            (:meth:`checked_kernels`). A kernel given as ``src`` itself is used as
            it is (no cloud to check it against).

        Returns
        -------
        torch.Tensor, shape [B, N_dst, C_out] or [N_dst, C_out]
        """
        xb, kernels, squeeze, dtype = self._prepare(x, src, dst, radius, kernel)
        if len(kernels) > 1:  # one cloud after another: each kernel's CSR stays cached
            parts = xb[0].split([k.total_src for k in kernels])
            out = torch.cat([self._convolve(part[None], kernel)[0]
                             for part, kernel in zip(parts, kernels, strict=True)])
            return out.to(dtype)
        out = self._convolve(xb, kernels[0])
        return (out[0] if squeeze else out).to(dtype)

    def _convolve(self, xb: torch.Tensor, kernel: DiscoKernel) -> torch.Tensor:
        """``[B, N_src, C_in] -> [B, N_dst, C_out]`` with one kernel."""
        n, k = kernel.total_dst, kernel.kernel_size
        # One sample at a time: every intermediate is then a view, no permuted copies.
        outs = [self.contract(kernel.responses(xb[i]).view(n, k * xb.shape[-1]))
                for i in range(xb.shape[0])]
        return torch.stack(outs)

    def forward_reference(self, x: torch.Tensor, src: PointCloud | Batch | DiscoKernel,
                          dst: PointCloud | Batch | None = None,
                          radius: float | Sequence[float] | None = None) -> torch.Tensor:
        """The same operator with a dense ``[K, N_dst, N_src]`` kernel: slow, for tests only."""
        xb, kernels, squeeze, dtype = self._prepare(x, src, dst, radius)
        kernel = kernels[0] if len(kernels) == 1 else Batch.from_data_list(kernels)
        dense = kernel.to_dense(xb.dtype)
        g = self.groups
        b, n_src, c = xb.shape
        xg = xb.view(b, n_src, g, c // g)
        wg = self.weight.to(xb.dtype).view(g, self.out_channels // g, c // g, self.kernel_size)
        out = torch.einsum("kij,bjgc,gock->bigo", dense, xg, wg).reshape(b, -1, self.out_channels)
        if self.bias is not None:
            out = out + self.bias
        return (out[0] if squeeze else out).to(dtype)

    def extra_repr(self) -> str:
        radius = "per call" if self.radius is None else (
            repr(self.radius) if isinstance(self.radius, RadiusField) else f"{self.radius:g}")
        return (f"{self.in_channels}, {self.out_channels}, basis={self.basis}, "
                f"radius={radius}, groups={self.groups}, bias={self.bias is not None}")
