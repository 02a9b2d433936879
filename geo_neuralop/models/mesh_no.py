"""``MeshNO``: a neural operator on unstructured meshes through a regular latent grid.

::

    mesh features --lift--> DISCO integral (mesh -> latent grid over the bounding box)
        --> processor blocks on the grid (FNO, AM-FNO or LocalNO)
        --> DISCO integral (grid -> mesh or any query points)
        --> [+ lifted mesh features] [+ local DISCO / differential layers on the mesh]
        --> projection

Both integrals are quadratures of continuous operators (mesh quadrature
weights on the way in, the grid's on the way out), so the model is a map
between functions: the same weights apply to any mesh of a domain, and the
output can be sampled at points that were not in the input. The latent grid
spans each sample's bounding box (enlarged by ``latent_margin``), in
coordinates normalized to the unit box, so a batch may mix meshes of different
sizes and shapes; their kernels are block-diagonal in one sparse product.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch_geometric.data import Batch

from geo_neuralop.geometry.grids import regular_grid
from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.kernels.disco import DiscoKernel, disco_kernel
from geo_neuralop.layers.channel_mlp import ChannelMLP, get_activation
from geo_neuralop.layers.differential_conv import PointDifferentialConv
from geo_neuralop.layers.disco_conv import DiscoConv
from geo_neuralop.models.registry import get_model, register_model

__all__ = ["MeshNO", "PROCESSORS"]

PROCESSORS = ("fno", "amfno", "local_no")


def _split(cloud: PointCloud) -> list[PointCloud]:
    """The samples of a PyG batch (or the cloud itself), with pos, weights and faces."""
    if isinstance(cloud, Batch):
        return cloud.to_data_list()
    return [cloud]


@register_model("mesh_no")
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
    processor : {"fno", "amfno", "local_no"}
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
    mesh_radius : float, optional
        Radius of the mesh layers in physical units (required with ``mesh_layers``).
    positional_embedding : bool
        Append the normalized coordinates to the input features.
    activation : str

    Shapes
    ------
    forward(cloud, x=None, query=None): ``cloud`` a :class:`PointCloud` or PyG batch of
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
        mesh_radius: float | None = None,
        positional_embedding: bool = True,
        activation: str = "gelu",
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
        if mesh_layers and not (isinstance(mesh_radius, (int, float)) and mesh_radius > 0):
            raise ValueError(f"mesh_layers needs a positive mesh_radius, got {mesh_radius!r}")
        n_dim = len(latent)
        modes = tuple(n // 2 for n in latent) if n_modes is None else tuple(n_modes)
        if len(modes) != n_dim:
            raise ValueError(f"n_modes must have {n_dim} entries, got {n_modes!r}")
        extra = dict(processor_config or {})
        extra.setdefault("domain_padding", 0.25)
        kwargs: dict[str, Any] = {"in_channels": hidden_channels,
                                  "out_channels": hidden_channels,
                                  "hidden_channels": hidden_channels, "n_layers": n_layers}
        if processor == "amfno":
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
        # Radii are set per sample (in cells); the layers only hold basis and weights.
        self.encoder = DiscoConv(hidden_channels, hidden_channels, shape, radius=1.0,
                                 normalization=normalization)
        self.decoder = DiscoConv(hidden_channels, hidden_channels, shape, radius=1.0,
                                 normalization=normalization)
        self.mesh_radius = None if mesh_radius is None else float(mesh_radius)
        if mesh_layers:
            self.mesh_disco = DiscoConv(hidden_channels, hidden_channels, shape,
                                        radius=self.mesh_radius, bias=False)
            self.mesh_diff = PointDifferentialConv(hidden_channels, hidden_channels, (3, 4),
                                                   radius=self.mesh_radius)
            with torch.no_grad():
                self.mesh_diff.weight.mul_(self.mesh_radius)
        else:
            self.mesh_disco = self.mesh_diff = None
        self.activation = get_activation(activation)
        self.projection = ChannelMLP(hidden_channels, out_channels, 2 * hidden_channels,
                                     n_layers=2, activation=activation)
        self.config = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "latent_shape": list(latent),
            "hidden_channels": hidden_channels,
            "n_layers": n_layers,
            "processor": processor,
            "n_modes": None if n_modes is None else list(modes),
            "processor_config": dict(processor_config or {}),
            "kernel_shape": shape if isinstance(shape, int) else list(shape),
            "encoder_radius": float(encoder_radius),
            "decoder_radius": float(decoder_radius),
            "latent_margin": float(latent_margin),
            "normalization": normalization,
            "mesh_layers": bool(mesh_layers),
            "mesh_radius": self.mesh_radius,
            "positional_embedding": bool(positional_embedding),
            "activation": activation,
        }

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

    def _cell(self, box: list[tuple[float, float]]) -> float:
        return max((b - a) / (n - 1) for (a, b), n in zip(box, self.latent_shape, strict=True))

    def kernels(self, cloud: PointCloud, query: PointCloud | None = None,
                dtype: torch.dtype = torch.float32) -> tuple[DiscoKernel, DiscoKernel]:
        """Encoder (mesh -> grid) and decoder (grid -> query) kernels of one sample."""
        query = cloud if query is None else query
        box = self.latent_box(cloud)
        grid = regular_grid(self.latent_shape, box, False, dtype=torch.float64)
        cell = self._cell(box)
        enc = _kernel(self.encoder, cloud, grid, self.encoder_radius * cell, dtype)
        dec = _kernel(self.decoder, grid, query, self.decoder_radius * cell, dtype)
        return enc, dec

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
        n_in = self.config["in_channels"]
        if x.shape[1] != n_in:
            raise ValueError(f"x has {x.shape[1]} channels but the model expects {n_in}")
        if cloud.pos.shape[1] != self.n_dim:
            raise ValueError(f"the cloud has {cloud.pos.shape[1]}-D points but latent_shape has "
                             f"{self.n_dim} axes")
        samples = _split(cloud)
        queries = samples if query is None else _split(query)
        if len(queries) != len(samples):
            raise ValueError(f"query has {len(queries)} samples but the input has {len(samples)}")
        encoders, decoders = [], []
        for sample, q in zip(samples, queries, strict=True):
            enc, dec = self.kernels(sample, q, dtype=x.dtype)
            encoders.append(enc)
            decoders.append(dec)
        enc = encoders[0] if len(encoders) == 1 else Batch.from_data_list(encoders)
        dec = decoders[0] if len(decoders) == 1 else Batch.from_data_list(decoders)
        b = len(samples)
        h_mesh = self.lifting(self._features(cloud, x).T[None]).squeeze(0).T  # [N, H]
        g = self.encoder(h_mesh, enc)  # [B * G, H]
        g = g.reshape(b, -1, g.shape[-1]).transpose(1, 2).reshape(b, -1, *self.latent_shape)
        g = self.processor(g)
        g = g.flatten(2).transpose(1, 2).reshape(-1, g.shape[1])  # [B * G, H]
        h = self.decoder(g, dec)  # [N_query, H]
        if query is None:
            h = h + h_mesh
        if self.mesh_disco is not None:
            kernels = [self.mesh_disco.build_kernel(q, dtype=x.dtype) for q in queries]
            dkernels = [self.mesh_diff.build_kernel(q, dtype=x.dtype) for q in queries]
            if len(kernels) > 1:
                kernels, dkernels = Batch.from_data_list(kernels), Batch.from_data_list(dkernels)
            else:
                kernels, dkernels = kernels[0], dkernels[0]
            h = h + self.activation(self.mesh_disco(h, kernels) + self.mesh_diff(h, dkernels))
        return self.projection(h.T[None]).squeeze(0).T


def _kernel(layer: DiscoConv, src: PointCloud, dst: PointCloud, radius: float,
            dtype: torch.dtype) -> DiscoKernel:
    """``layer``'s basis from ``src`` to ``dst`` with a per-sample radius (cached per geometry);
    destination points out of reach (inside holes) get empty rows."""
    return disco_kernel(src, dst, basis=layer.basis, radius=radius,
                        normalization=layer.normalization, dtype=dtype, allow_empty=True)
