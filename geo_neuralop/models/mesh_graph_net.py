"""MeshGraphNet baseline: encode-process-decode message passing on meshes.

Pfaff, Fortunato, Sanchez-Gonzalez and Battaglia, "Learning Mesh-Based
Simulation with Graph Networks", ICLR 2021. Node features and edge features
(the offset ``pos_src - pos_dst`` between the two end points and its length) are
encoded by MLPs into a latent space; ``n_layers`` message-passing blocks
update every edge from its two end nodes and every node from the sum of its
incoming edges, both with residual connections; an MLP decodes the node
latents. Every MLP but the decoder ends with a LayerNorm.

The graph is the mesh's edges when the input has ``faces``, or a radius /
k-nearest-neighbour graph otherwise (scipy's cKDTree, per graph of a batch).
Because messages are summed over graph neighbours, the operator it learns is
tied to the mesh density: a baseline, not a discretization-agnostic operator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch_geometric.utils import scatter

from geo_neuralop.kernels.neighbors import build_graph
from geo_neuralop.layers.activations import get_activation
from geo_neuralop.models.registry import register_model

__all__ = ["MeshGraphNet"]

_AGGREGATIONS = ("sum", "mean")


# --- network -------------------------------------------------------------------------------
def _mlp(c_in: int, hidden: int, c_out: int, layers: int, activation: str,
         layer_norm: bool) -> nn.Sequential:
    """``layers`` hidden layers of width ``hidden``, then a linear map to ``c_out``."""
    modules: list[nn.Module] = []
    width = c_in
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), get_activation(activation)]
        width = hidden
    modules.append(nn.Linear(width, c_out))
    if layer_norm:
        modules.append(nn.LayerNorm(c_out))
    return nn.Sequential(*modules)


class _ProcessorBlock(nn.Module):
    """One graph-network block: edge update, then node update, both residual."""

    def __init__(self, hidden: int, mlp_layers: int, activation: str, aggregation: str) -> None:
        super().__init__()
        self.edge_mlp = _mlp(3 * hidden, hidden, hidden, mlp_layers, activation, True)
        self.node_mlp = _mlp(2 * hidden, hidden, hidden, mlp_layers, activation, True)
        self.aggregation = aggregation

    def forward(
        self, h: torch.Tensor, e: torch.Tensor, src: torch.Tensor, dst: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        e = e + self.edge_mlp(torch.cat([e, h[src], h[dst]], dim=1))
        incoming = scatter(e, dst, dim=0, dim_size=h.shape[0], reduce=self.aggregation)
        h = h + self.node_mlp(torch.cat([h, incoming], dim=1))
        return h, e


@register_model("mesh_graph_net", family="mesh")
class MeshGraphNet(nn.Module):
    """MeshGraphNet: encode-process-decode graph network on meshes and point clouds.

    Parameters
    ----------
    in_channels : int
        Node input features ``C_in``.
    out_channels : int
        Node outputs ``C_out``.
    pos_dim : int
        Coordinates per point ``d`` (2 for planar meshes, 3 for surfaces and
        the sphere); edges carry ``d + 1`` features (offset and length).
    hidden_channels : int
        Latent width of nodes, edges and MLP hidden layers (128 in the paper).
    n_layers : int
        Message-passing blocks, each with its own weights (15 in the paper).
    mlp_layers : int
        Hidden layers per MLP (2 in the paper).
    aggregation : {"sum", "mean"}
        Reduction of incoming edge latents at a node ("sum" in the paper).
    activation : {"relu", "gelu", "silu", "tanh"}
    radius : float, optional
        Radius graph (units of ``pos``) for inputs with neither ``edge_index``
        nor ``faces``.
    k : int, optional
        k-nearest-neighbour graph for such inputs (used if ``radius`` is None).
    position_features : bool
        Append the absolute positions to the node features (breaks the
        translation invariance of the paper's model; useful when the boundary
        conditions sit at fixed places).

    Notes
    -----
    ``forward(data, x=None)``: ``data`` is a :class:`~geo_neuralop.geometry.PointCloud`
    or a PyG ``Batch`` of them with ``pos [N, d]``; node features ``x [N, C_in]``
    (default ``data.x``). Returns ``[N, C_out]``. Precompute the graph once with
    ``data.edge_index = build_graph(data, radius, k)``
    (:func:`geo_neuralop.kernels.neighbors.build_graph`) to keep the neighbour
    search out of the training loop (PyG offsets it correctly when batching).

    Examples
    --------
    >>> import torch
    >>> from torch_geometric.data import Batch
    >>> from geo_neuralop.geometry import jittered_rectangle_mesh
    >>> from geo_neuralop.models import MeshGraphNet
    >>> meshes = [jittered_rectangle_mesh((5, 4)), jittered_rectangle_mesh((6, 6), seed=1)]
    >>> batch = Batch.from_data_list(meshes)
    >>> model = MeshGraphNet(in_channels=1, out_channels=2, hidden_channels=16, n_layers=2)
    >>> model(batch, x=torch.randn(batch.num_nodes, 1)).shape
    torch.Size([56, 2])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        pos_dim: int = 2,
        hidden_channels: int = 128,
        n_layers: int = 15,
        mlp_layers: int = 2,
        aggregation: str = "sum",
        activation: str = "relu",
        radius: float | None = None,
        k: int | None = None,
        position_features: bool = False,
    ) -> None:
        super().__init__()
        for key, value, low in (
            ("in_channels", in_channels, 0),
            ("out_channels", out_channels, 1),
            ("pos_dim", pos_dim, 1),
            ("hidden_channels", hidden_channels, 1),
            ("n_layers", n_layers, 0),
            ("mlp_layers", mlp_layers, 1),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{key} must be an integer >= {low}, got {value!r}")
        if aggregation not in _AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {_AGGREGATIONS}, got {aggregation!r}")
        get_activation(activation)  # raises for an unknown name
        if radius is not None and not (
            isinstance(radius, (int, float)) and not isinstance(radius, bool)
            and np.isfinite(radius) and radius > 0
        ):
            raise ValueError(f"radius must be a positive finite number or None, got {radius!r}")
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
            raise ValueError(f"k must be a positive integer or None, got {k!r}")
        if not isinstance(position_features, bool):
            raise ValueError(f"position_features must be a bool, got {position_features!r}")
        if in_channels == 0 and not position_features:
            raise ValueError("in_channels=0 needs position_features=True (no node input)")
        self.in_channels, self.pos_dim = in_channels, pos_dim
        self.radius = None if radius is None else float(radius)
        self.k, self.position_features = k, position_features
        node_in = in_channels + (pos_dim if position_features else 0)
        h = hidden_channels
        self.node_encoder = _mlp(node_in, h, h, mlp_layers, activation, True)
        self.edge_encoder = _mlp(pos_dim + 1, h, h, mlp_layers, activation, True)
        self.processor = nn.ModuleList(
            [_ProcessorBlock(h, mlp_layers, activation, aggregation) for _ in range(n_layers)]
        )
        self.decoder = _mlp(h, h, out_channels, mlp_layers, activation, False)

    def graph(self, data: Any) -> torch.Tensor:
        """The graph used for ``data``: see :func:`build_graph`; shape [2, E]."""
        return build_graph(data, self.radius, self.k)

    def kernel_recipe(self) -> dict:
        """What a sample's graph depends on besides its geometry (plain values; keys a
        :class:`~geo_neuralop.data.KernelStore`)."""
        return {"model": "mesh_graph_net", "format": 1, "radius": self.radius, "k": self.k}

    def build_kernels(self, cloud: Any) -> dict[str, torch.Tensor]:
        """The message-passing graph of one sample, ``{"edge_index": [2, E]}``, to attach to
        it outside the training step (see :class:`~geo_neuralop.data.PrecomputeKernels`);
        PyG offsets it when batching and :meth:`forward` uses it as given."""
        return {"edge_index": self.graph(cloud)}

    def forward(self, data: Any, x: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the network.

        Parameters
        ----------
        data : PointCloud or torch_geometric.data.Batch
            With ``pos [N, d]`` and, unless ``x`` is given, ``x [N, C_in]``;
            optionally ``edge_index [2, E]`` (src, dst) or ``faces [F, 3]``.
        x : torch.Tensor, shape [N, C_in], optional
            Node features (overrides ``data.x``).

        Returns
        -------
        torch.Tensor, shape [N, C_out]
        """
        pos = getattr(data, "pos", None)
        if not isinstance(pos, torch.Tensor) or pos.dim() != 2:
            raise ValueError("data must have pos of shape [N, d]")
        n, d = pos.shape
        if d != self.pos_dim:
            raise ValueError(
                f"data.pos has {d} coordinates, the model was built with pos_dim={self.pos_dim}"
            )
        if x is None:
            x = getattr(data, "x", None)
        c_in = self.in_channels
        if x is None:
            if c_in > 0:
                raise ValueError("no node features: pass x or set data.x of shape [N, C_in]")
            x = pos.new_zeros(n, 0)
        if x.dim() == 1 and c_in == 1:
            x = x[:, None]
        if x.dim() != 2 or x.shape[0] != n or x.shape[1] != c_in:
            raise ValueError(
                f"x must have shape [{n}, {c_in}] (nodes, in_channels), got {tuple(x.shape)}"
            )
        dtype = self.node_encoder[0].weight.dtype
        x = x.to(dtype)
        pos = pos.to(dtype)
        if self.position_features:
            x = torch.cat([x, pos], dim=1)
        edge_index = self.graph(data)
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise ValueError(f"edge_index must have shape [2, E], got {tuple(edge_index.shape)}")
        src, dst = edge_index[0], edge_index[1]
        offset = pos[src] - pos[dst]
        e = self.edge_encoder(torch.cat([offset, offset.norm(dim=1, keepdim=True)], dim=1))
        h = self.node_encoder(x)
        for block in self.processor:
            h, e = block(h, e, src, dst)
        return self.decoder(h)
