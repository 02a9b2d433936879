"""``MeshNO``: a neural operator on unstructured meshes through a regular latent grid.

::

    mesh features --lift--> DISCO integral (mesh -> latent grid over the bounding box)
        --> processor blocks on the grid (FNO, AM-FNO or LocalNO)
        --> DISCO integral (grid -> mesh or any query points)
        --> [+ lifted mesh features] [+ local DISCO / differential layers on the mesh]
        --> projection

Both integrals are quadratures of continuous operators (mesh quadrature
weights on the way in, the grid's on the way out), so the same weights apply to
any mesh of a domain, and the output can be sampled at points that were not in
the input. The latent grid spans each sample's bounding box (enlarged by
``latent_margin``), so a batch may mix meshes of different sizes and shapes;
the DISCO layers build each mesh's kernels once and batch them block-diagonally.

Datasets of many meshes: the kernels of a sample depend only on its geometry and
on :meth:`MeshNO.kernel_recipe`, so they are built outside the training step by
:meth:`MeshNO.build_kernels` (e.g. in DataLoader workers through
:class:`~geo_neuralop.data.PrecomputeKernels`, stored on disk by a
:class:`~geo_neuralop.data.KernelStore`) and travel with the sample; ``forward``
uses kernels attached to the input and builds none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch_geometric.data import Batch

from geo_neuralop.geometry.grids import regular_grid
from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.kernels.radius_field import RadiusField
from geo_neuralop.kernels.sparse import DiscoKernel
from geo_neuralop.layers.activations import get_activation
from geo_neuralop.layers.channel_mlp import ChannelMLP
from geo_neuralop.layers.differential_conv import PointDifferentialConv
from geo_neuralop.layers.disco_conv import DiscoConv
from geo_neuralop.models.registry import get_model, register_model

__all__ = ["KERNEL_FORMAT", "MESH_NO_KERNELS", "MeshNO", "PROCESSORS"]

PROCESSORS = ("fno", "amfno", "local_no", "lsm")

#: Names under which precomputed kernels travel with a sample (see :meth:`MeshNO.build_kernels`).
MESH_NO_KERNELS = ("encoder_kernel", "decoder_kernel", "mesh_disco_kernel", "mesh_diff_kernel")

#: Version of the kernels' construction, part of :meth:`MeshNO.kernel_recipe`: bump it when
#: the construction changes so that stored kernels are rebuilt.
KERNEL_FORMAT = 2


def _split(cloud: PointCloud) -> list[PointCloud]:
    """The samples of a PyG batch (or the cloud itself), with pos, weights and faces."""
    if isinstance(cloud, Batch):
        return cloud.to_data_list()
    return [cloud]


@register_model("mesh_no", family="mesh")
class MeshNO(nn.Module):
    """Neural operator on point clouds/meshes with a regular latent grid.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input features ``x`` and of the output at the query points.
    latent_shape : sequence of int
        Points per axis of the latent grid (its length must equal the
        coordinate dimension of the meshes).
    hidden_channels : int
    n_layers : int
        Processor blocks.
    processor : {"fno", "amfno", "local_no", "lsm"}
        "lsm": the Latent Spectral Model on the latent grid (2-D meshes).
    n_modes : sequence of int, optional
        Fourier modes of the FNO / LocalNO processor (default ``latent_shape // 2``).
    processor_config : mapping, optional
        Further keyword arguments of the processor model (e.g. ``domain_padding``,
        ``n_basis`` for AM-FNO).
    kernel_shape : int or tuple
        Piecewise-linear basis of the encoder and decoder integrals.
    encoder_radius, decoder_radius : float
        Radii of the integrals in latent-grid cells (the largest cell side of
        each sample's grid).
    latent_margin : float
        The latent grid covers the bounding box enlarged by this fraction per side.
    normalization : {"none", "mean", "nodal"}
        Of the encoder and decoder kernels.
    mesh_layers : bool
        Add a local DISCO and a differential layer on the query points after decoding.
    mesh_radius : float or mapping, optional
        Radius of the mesh layers (required with ``mesh_layers``): a length in
        physical units, or a radius field ``RadiusField.to_dict()`` (see
        :class:`~geo_neuralop.kernels.RadiusField`) for graded meshes, e.g.
        ``RadiusField.from_cloud(reference_mesh, cells=2.5).to_dict()``. A fixed
        radius fails on strongly graded meshes (the DFG channel: too few
        neighbours to span two directions in the coarse corners, thousands at
        the cylinder); a field follows the grading of the mesh family while
        staying one continuous operator for every mesh (the layers are then
        normalized per point).
    positional_embedding : bool
        Append the normalized coordinates to the input features.
    activation : str
    kernel_cache_size : int
        Meshes whose encoder, decoder and mesh-layer kernels each layer keeps
        (set it to the number of distinct meshes of the training set so no kernel
        is rebuilt during an epoch, or precompute the kernels with
        :meth:`build_kernels` in the data pipeline).

    Notes
    -----
    Shapes: forward(cloud, x=None, query=None): ``cloud`` a :class:`PointCloud` or PyG batch of
    them with ``x [N, C_in]`` (or ``x`` given) -> ``[N_query, C_out]`` (``query``
    defaults to ``cloud``; a batch of queries must have one sample per input sample).

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.geometry import jittered_rectangle_mesh
    >>> from geo_neuralop.models import MeshNO
    >>> mesh = jittered_rectangle_mesh((20, 12), domain=[(0.0, 2.0), (0.0, 1.0)])
    >>> model = MeshNO(1, 2, latent_shape=(16, 8), hidden_channels=8, n_layers=2)
    >>> model(mesh, x=torch.randn(mesh.num_nodes, 1)).shape
    torch.Size([240, 2])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        latent_shape: Sequence[int] = (32, 32),
        hidden_channels: int = 32,
        n_layers: int = 4,
        processor: str = "fno",
        n_modes: Sequence[int] | None = None,
        processor_config: Mapping[str, Any] | None = None,
        kernel_shape: int | Sequence[int] = (3, 4),
        encoder_radius: float = 2.0,
        decoder_radius: float = 2.0,
        latent_margin: float = 0.05,
        normalization: str = "mean",
        mesh_layers: bool = False,
        mesh_radius: float | Mapping[str, Any] | None = None,
        positional_embedding: bool = True,
        activation: str = "gelu",
        kernel_cache_size: int = 64,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("hidden_channels", hidden_channels), ("n_layers", n_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        latent = tuple(int(n) for n in latent_shape)
        if not 1 <= len(latent) <= 3 or any(n < 4 for n in latent):
            raise ValueError(f"latent_shape must be 1-3 sizes of at least 4, got {latent_shape!r}")
        if processor not in PROCESSORS:
            raise ValueError(f"processor must be one of {PROCESSORS}, got {processor!r}")
        for name, value in (("encoder_radius", encoder_radius),
                            ("decoder_radius", decoder_radius)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number of cells, got {value!r}")
        if not (isinstance(latent_margin, (int, float)) and 0 <= latent_margin < 1):
            raise ValueError(f"latent_margin must be in [0, 1), got {latent_margin!r}")
        field = None
        if isinstance(mesh_radius, Mapping):
            field = RadiusField.from_dict(mesh_radius)
        elif mesh_radius is not None and not (isinstance(mesh_radius, (int, float))
                                              and not isinstance(mesh_radius, bool)
                                              and mesh_radius > 0):
            raise ValueError(f"mesh_radius must be a positive number or a radius field mapping, "
                             f"got {mesh_radius!r}")
        if mesh_layers and mesh_radius is None:
            raise ValueError("mesh_layers needs a positive mesh_radius (or a radius field)")
        n_dim = len(latent)
        modes = tuple(n // 2 for n in latent) if n_modes is None else tuple(n_modes)
        if len(modes) != n_dim:
            raise ValueError(f"n_modes must have {n_dim} entries, got {n_modes!r}")
        extra = dict(processor_config or {})
        extra.setdefault("domain_padding", 0.25)
        kwargs: dict[str, Any] = {"in_channels": hidden_channels,
                                  "out_channels": hidden_channels,
                                  "hidden_channels": hidden_channels, "n_layers": n_layers}
        if processor in ("amfno", "lsm"):
            kwargs["n_dim"] = n_dim
        else:
            kwargs["n_modes"] = list(modes)
        if processor == "local_no":
            extra.setdefault("periodic", False)
            extra.setdefault("domain", [[0.0, 1.0]] * n_dim)
        self.processor = get_model(processor, **kwargs, **extra)
        self.latent_shape = latent
        self.n_dim = n_dim
        self.encoder_radius, self.decoder_radius = float(encoder_radius), float(decoder_radius)
        self.latent_margin = float(latent_margin)
        self.normalization = normalization
        self.positional_embedding = bool(positional_embedding)
        n_in = in_channels + (n_dim if positional_embedding else 0)
        self.lifting = ChannelMLP(n_in, hidden_channels, 2 * hidden_channels, n_layers=2,
                                  activation=activation)
        shape = kernel_shape if isinstance(kernel_shape, int) else tuple(kernel_shape)
        # The radii are a number of latent cells: each sample gives its own (radius=None);
        # latent points inside holes of the mesh get no encoder contribution.
        disco = {"normalization": normalization, "allow_empty": True,
                 "cache_size": kernel_cache_size}
        self.encoder = DiscoConv(hidden_channels, hidden_channels, shape, radius=None, **disco)
        self.decoder = DiscoConv(hidden_channels, hidden_channels, shape, radius=None, **disco)
        self.mesh_radius: float | RadiusField | None = field if field is not None else (
            None if mesh_radius is None else float(mesh_radius))
        self.kernel_shape = shape
        if mesh_layers:
            # a radius field: each point's stencil is an average over its own support
            self.mesh_disco = DiscoConv(hidden_channels, hidden_channels, shape,
                                        radius=self.mesh_radius, bias=False,
                                        normalization="mean" if field is None else "nodal",
                                        cache_size=kernel_cache_size)
            length = self.mesh_radius if field is None else field.min
            self.mesh_diff = PointDifferentialConv(hidden_channels, hidden_channels, (3, 4),
                                                   radius=self.mesh_radius, init_length=length,
                                                   cache_size=kernel_cache_size)
        else:
            self.mesh_disco = self.mesh_diff = None
        self.in_channels = in_channels
        self.activation = get_activation(activation)
        self.projection = ChannelMLP(hidden_channels, out_channels, 2 * hidden_channels,
                                     n_layers=2, activation=activation)

    # -------------------------------------------------------------- geometry

    def latent_box(self, cloud: PointCloud) -> list[tuple[float, float]]:
        """The latent grid's extent for one sample: its bounding box plus the margin."""
        pos = cloud.pos.detach().double()
        lo, hi = pos.min(0).values, pos.max(0).values
        pad = (hi - lo) * self.latent_margin
        return [(float(a), float(b)) for a, b in zip(lo - pad, hi + pad, strict=True)]

    def latent_grid(self, cloud: PointCloud) -> PointCloud:
        """The latent grid of one sample, in physical coordinates."""
        return regular_grid(self.latent_shape, self.latent_box(cloud), False,
                            dtype=torch.float64)

    def cell_size(self, cloud: PointCloud) -> float:
        """The largest cell side of one sample's latent grid (the unit of the radii)."""
        box = self.latent_box(cloud)
        return max((b - a) / (n - 1) for (a, b), n in zip(box, self.latent_shape, strict=True))

    # -------------------------------------------------------------- forward

    def _features(self, cloud: PointCloud, x: torch.Tensor) -> torch.Tensor:
        if not self.positional_embedding:
            return x
        parts = []
        for sample in _split(cloud):
            box = self.latent_box(sample)
            lo = torch.tensor([a for a, _ in box], dtype=x.dtype, device=x.device)
            width = torch.tensor([b - a for a, b in box], dtype=x.dtype, device=x.device)
            parts.append((sample.pos.to(x) - lo) / width)
        return torch.cat([x, torch.cat(parts)], dim=1)

    def forward(self, cloud: PointCloud, x: torch.Tensor | None = None,
                query: PointCloud | None = None) -> torch.Tensor:
        """Apply the operator.

        Parameters
        ----------
        cloud : PointCloud or Batch
            Input mesh(es) with quadrature weights (and ``x`` unless given).
        x : torch.Tensor, shape [N, C_in], optional
            Input features at the points of ``cloud`` (default ``cloud.x``).
        query : PointCloud or Batch, optional
            Where to evaluate the output (default: the input points).

        Returns
        -------
        torch.Tensor, shape [N_query, C_out]
        """
        if not isinstance(cloud, PointCloud) and not isinstance(cloud, Batch):
            raise TypeError(f"cloud must be a PointCloud or a PyG Batch, got "
                            f"{type(cloud).__name__}")
        x = getattr(cloud, "x", None) if x is None else x
        if not isinstance(x, torch.Tensor):
            raise ValueError("no input features: pass x or give the cloud an 'x' field [N, C]")
        if x.dim() != 2 or x.shape[0] != cloud.num_nodes:
            raise ValueError(f"x must have shape [{cloud.num_nodes}, C_in], got {tuple(x.shape)}")
        n_in = self.in_channels
        if x.shape[1] != n_in:
            raise ValueError(f"x has {x.shape[1]} channels but the model expects {n_in}")
        if cloud.pos.shape[1] != self.n_dim:
            raise ValueError(f"the cloud has {cloud.pos.shape[1]}-D points but latent_shape has "
                             f"{self.n_dim} axes")
        attached = self.attached_kernels(cloud) if query is None else None
        samples = _split(cloud)
        queries = samples if query is None else _split(query)
        if len(queries) != len(samples):
            raise ValueError(f"query has {len(queries)} samples but the input has {len(samples)}")
        b = len(samples)
        h_mesh = self.lifting(self._features(cloud, x).T[None]).squeeze(0).T  # [N, H]
        if attached is None:
            latent = [self.latent_grid(sample) for sample in samples]
            cells = [self.cell_size(sample) for sample in samples]
            g = self.encoder(h_mesh, samples, latent,
                             radius=[self.encoder_radius * c for c in cells])  # [B * G, H]
        else:
            g = self.encoder(h_mesh, attached["encoder_kernel"])
        g = g.reshape(b, -1, g.shape[-1]).transpose(1, 2).reshape(b, -1, *self.latent_shape)
        g = self.processor(g)
        g = g.flatten(2).transpose(1, 2).reshape(-1, g.shape[1])  # [B * G, H]
        if attached is None:
            h = self.decoder(g, latent, queries,
                             radius=[self.decoder_radius * c for c in cells])  # [N_query, H]
        else:
            h = self.decoder(g, attached["decoder_kernel"])
        if query is None:
            h = h + h_mesh
        if self.mesh_disco is not None:
            if attached is None:
                local = self.mesh_disco(h, queries) + self.mesh_diff(h, queries)
            else:
                local = self.mesh_disco(h, attached["mesh_disco_kernel"]) + self.mesh_diff(
                    h, attached["mesh_diff_kernel"])
            h = h + self.activation(local)
        return self.projection(h.T[None]).squeeze(0).T

    # -------------------------------------------------------------- precomputed kernels

    def kernel_names(self) -> tuple[str, ...]:
        """The kernels a sample needs: encoder, decoder and, with mesh layers, their two."""
        return MESH_NO_KERNELS if self.mesh_disco is not None else MESH_NO_KERNELS[:2]

    def kernel_recipe(self) -> dict:
        """Everything besides a sample's geometry that its kernels depend on (plain values).

        Two models with equal recipes build equal kernels for a geometry, so the
        recipe keys a kernel store (:class:`~geo_neuralop.data.KernelStore`).
        """
        radius = self.mesh_radius.to_dict() if isinstance(self.mesh_radius, RadiusField) \
            else self.mesh_radius
        return {"model": "mesh_no", "format": KERNEL_FORMAT,
                "latent_shape": list(self.latent_shape), "latent_margin": self.latent_margin,
                "kernel_shape": self.encoder.basis.kernel_shape,
                "basis": self.encoder.basis.name, "encoder_radius": self.encoder_radius,
                "decoder_radius": self.decoder_radius, "normalization": self.normalization,
                "mesh_layers": self.mesh_disco is not None, "mesh_radius": radius,
                "dtype": str(self.kernel_dtype).removeprefix("torch.")}

    @property
    def kernel_dtype(self) -> torch.dtype:
        """The dtype kernels are built in: the model's parameters'."""
        return self.lifting.parameters().__next__().dtype

    def build_kernels(self, cloud: PointCloud) -> dict[str, DiscoKernel]:
        """The kernels of one sample's geometry, named as :meth:`forward` finds them.

        Parameters
        ----------
        cloud : PointCloud
            One sample (positions and quadrature weights are read).

        Returns
        -------
        dict of str to DiscoKernel
            ``encoder_kernel`` (mesh -> latent grid), ``decoder_kernel`` (latent grid ->
            mesh) and, with mesh layers, ``mesh_disco_kernel`` and ``mesh_diff_kernel``.
            Attach them to the sample (``sample.encoder_kernel = ...``); a PyG batch
            of such samples holds lists of them, which :meth:`forward` applies sample
            by sample (each kernel keeps its prepared applied form).
        """
        if not isinstance(cloud, PointCloud):
            raise TypeError(f"cloud must be a PointCloud, got {type(cloud).__name__}")
        dtype = self.kernel_dtype
        latent, cell = self.latent_grid(cloud), self.cell_size(cloud)
        kernels = {
            "encoder_kernel": self.encoder.build_kernel(cloud, latent,
                                                        radius=self.encoder_radius * cell,
                                                        dtype=dtype),
            "decoder_kernel": self.decoder.build_kernel(latent, cloud,
                                                        radius=self.decoder_radius * cell,
                                                        dtype=dtype),
        }
        if self.mesh_disco is not None:
            kernels["mesh_disco_kernel"] = self.mesh_disco.build_kernel(cloud, dtype=dtype)
            kernels["mesh_diff_kernel"] = self.mesh_diff.build_kernel(cloud, dtype=dtype)
        return kernels

    def attached_kernels(self, cloud: PointCloud | Batch) -> dict[str, list[DiscoKernel]] | None:
        """The precomputed kernels carried by ``cloud`` (a list per name, one kernel per
        sample; from ``kernel_bundle`` or from one attribute per kernel), or None when it
        does not carry all of them."""
        bundles = getattr(cloud, "kernel_bundle", None)
        if bundles is not None:  # packed kernels (one buffer per sample)
            bundles = list(bundles) if isinstance(bundles, (list, tuple)) else [bundles]
            unpacked = [bundle.unpack() for bundle in bundles]
            if all(name in kernels for kernels in unpacked for name in self.kernel_names()):
                return {name: [kernels[name] for kernels in unpacked]
                        for name in self.kernel_names()}
        found = {}
        for name in self.kernel_names():
            value = getattr(cloud, name, None)
            if value is None:
                return None
            kernels = list(value) if isinstance(value, (list, tuple)) else [value]
            for kernel in kernels:
                if not isinstance(kernel, DiscoKernel):
                    raise TypeError(f"cloud.{name} must be a DiscoKernel (or a list of them), "
                                    f"got {type(kernel).__name__}")
            found[name] = kernels
        return found
