"""MeshGraphNet baseline: encode-process-decode message passing on meshes.

Pfaff, Fortunato, Sanchez-Gonzalez and Battaglia, "Learning Mesh-Based
Simulation with Graph Networks", ICLR 2021. Node features and edge features
(the offset ``pos_src - pos_dst`` between the two end points and its length) are
encoded by MLPs into a latent space; ``num_layers`` message-passing blocks
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
from scipy.spatial import cKDTree
from torch import nn
from torch_geometric.utils import scatter

from geo_neuralop.models.registry import register_model

__all__ = ["MeshGraphNet", "build_graph", "knn_edges", "mesh_edges", "radius_edges"]

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}
_AGGREGATIONS = ("sum", "mean")


# --- graphs --------------------------------------------------------------------------------
def _sorted_unique(src: torch.Tensor, dst: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Unique directed edges without self loops, ordered by dst then src, shape [2, E]."""
    keep = src != dst
    key = torch.unique(dst[keep] * num_nodes + src[keep])  # sorted
    return torch.stack([key % num_nodes, key // num_nodes])


def mesh_edges(faces: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Both directions of every edge of a mesh.

    Parameters
    ----------
    faces : torch.Tensor, shape [F, k], long
        Cells given by vertex indices (triangles ``k = 3``, tetrahedra ``k = 4``);
        every pair of vertices of a cell is joined (for quads this adds the
        diagonals).
    num_nodes : int

    Returns
    -------
    torch.Tensor, shape [2, E], long
        ``(src, dst)`` rows, no duplicates, no self loops, sorted by dst then src.
    """
    if faces.dim() != 2 or faces.shape[1] < 2:
        raise ValueError(f"faces must have shape [F, k] with k >= 2, got {tuple(faces.shape)}")
    faces = faces.long()
    k = faces.shape[1]
    a, b = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
    off = a != b
    src = faces[:, a[off]].reshape(-1)
    dst = faces[:, b[off]].reshape(-1)
    return _sorted_unique(src, dst, num_nodes)


def _graph_ranges(num_nodes: int, batch: torch.Tensor | None) -> list[tuple[int, int]]:
    if batch is None:
        return [(0, num_nodes)]
    batch_np = batch.detach().cpu().numpy()
    if batch_np.size and np.any(np.diff(batch_np) < 0):
        raise ValueError("batch must be sorted (nodes of each graph contiguous), as PyG makes it")
    counts = np.bincount(batch_np) if batch_np.size else np.zeros(0, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)])
    return [(int(starts[g]), int(starts[g + 1])) for g in range(len(counts))]


def radius_edges(
    pos: torch.Tensor, radius: float, batch: torch.Tensor | None = None
) -> torch.Tensor:
    """All ordered pairs of distinct points of the same graph closer than ``radius``.

    Parameters
    ----------
    pos : torch.Tensor, shape [N, d]
    radius : float
        Euclidean distance, units of ``pos``.
    batch : torch.Tensor, shape [N], optional
        Graph index of every node (sorted), as in a PyG ``Batch``.

    Returns
    -------
    torch.Tensor, shape [2, E], long, on ``pos.device``
    """
    if not (isinstance(radius, (int, float)) and np.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a positive finite number, got {radius!r}")
    pos_np = pos.detach().cpu().double().numpy()
    src, dst = [], []
    for lo, hi in _graph_ranges(pos.shape[0], batch):
        pairs = cKDTree(pos_np[lo:hi]).query_pairs(radius, output_type="ndarray")
        i = pairs[:, 0].astype(np.int64) + lo
        j = pairs[:, 1].astype(np.int64) + lo
        src += [i, j]
        dst += [j, i]
    s = torch.from_numpy(np.concatenate(src)) if src else torch.zeros(0, dtype=torch.long)
    d = torch.from_numpy(np.concatenate(dst)) if dst else torch.zeros(0, dtype=torch.long)
    return _sorted_unique(s, d, pos.shape[0]).to(pos.device)


def knn_edges(pos: torch.Tensor, k: int, batch: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric k-nearest-neighbour graph within each graph of a batch.

    Each node is joined to its ``k`` nearest other nodes of the same graph (all
    of them if the graph is smaller), in both directions, so a node may have
    more than ``k`` neighbours.

    Parameters
    ----------
    pos : torch.Tensor, shape [N, d]
    k : int
    batch : torch.Tensor, shape [N], optional

    Returns
    -------
    torch.Tensor, shape [2, E], long, on ``pos.device``
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    pos_np = pos.detach().cpu().double().numpy()
    src, dst = [], []
    for lo, hi in _graph_ranges(pos.shape[0], batch):
        n = hi - lo
        if n < 2:
            continue
        kq = min(k + 1, n)
        _, nbr = cKDTree(pos_np[lo:hi]).query(pos_np[lo:hi], k=kq)
        nbr = nbr.reshape(n, kq)
        own = np.arange(n)[:, None]
        valid = (nbr != own) & (nbr < n)
        valid &= np.cumsum(valid, axis=1) <= k  # the k nearest others (self may tie)
        rows, cols = np.nonzero(valid)
        i, j = rows + lo, nbr[rows, cols].astype(np.int64) + lo
        src += [j, i]
        dst += [i, j]
    s = torch.from_numpy(np.concatenate(src)) if src else torch.zeros(0, dtype=torch.long)
    d = torch.from_numpy(np.concatenate(dst)) if dst else torch.zeros(0, dtype=torch.long)
    return _sorted_unique(s, d, pos.shape[0]).to(pos.device)


def build_graph(data: Any, radius: float | None = None, k: int | None = None) -> torch.Tensor:
    """The message-passing graph of a point cloud or batch, shape [2, E] (src, dst).

    Uses, in order: ``data.edge_index`` if present; the mesh edges of
    ``data.faces``; a radius graph (``radius``); a k-nearest-neighbour graph
    (``k``). Graphs of a PyG ``Batch`` are never joined to each other.

    Raises
    ------
    ValueError
        If ``data`` has none of edge_index or faces and neither ``radius`` nor
        ``k`` is given.
    """
    edge_index = getattr(data, "edge_index", None)
    if edge_index is not None:
        return edge_index
    num_nodes = data.pos.shape[0]
    faces = getattr(data, "faces", None)
    if faces is not None and faces.numel() > 0:
        return mesh_edges(faces, num_nodes).to(data.pos.device)
    batch = getattr(data, "batch", None)
    if radius is not None:
        return radius_edges(data.pos, radius, batch)
    if k is not None:
        return knn_edges(data.pos, k, batch)
    raise ValueError(
        "the input has neither edge_index nor faces; give the model a radius or k to build "
        "a neighbour graph"
    )


# --- network -------------------------------------------------------------------------------
def _mlp(c_in: int, hidden: int, c_out: int, layers: int, activation: str,
         layer_norm: bool) -> nn.Sequential:
    """``layers`` hidden layers of width ``hidden``, then a linear map to ``c_out``."""
    modules: list[nn.Module] = []
    width = c_in
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), _ACTIVATIONS[activation]()]
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


@register_model("mesh_graph_net")
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
    num_layers : int
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
    ``data.edge_index = build_graph(data, radius, k)`` to keep the neighbour
    search out of the training loop (PyG offsets it correctly when batching).

    Examples
    --------
    >>> import torch
    >>> from torch_geometric.data import Batch
    >>> from geo_neuralop.geometry import jittered_rectangle_mesh
    >>> from geo_neuralop.models import MeshGraphNet
    >>> meshes = [jittered_rectangle_mesh((5, 4)), jittered_rectangle_mesh((6, 6), seed=1)]
    >>> batch = Batch.from_data_list(meshes)
    >>> model = MeshGraphNet(in_channels=1, out_channels=2, hidden_channels=16, num_layers=2)
    >>> model(batch, x=torch.randn(batch.num_nodes, 1)).shape
    torch.Size([56, 2])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        pos_dim: int = 2,
        hidden_channels: int = 128,
        num_layers: int = 15,
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
            ("num_layers", num_layers, 0),
            ("mlp_layers", mlp_layers, 1),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{key} must be an integer >= {low}, got {value!r}")
        if aggregation not in _AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {_AGGREGATIONS}, got {aggregation!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(_ACTIVATIONS)}, got {activation!r}")
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
        self.config = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "pos_dim": pos_dim,
            "hidden_channels": hidden_channels,
            "num_layers": num_layers,
            "mlp_layers": mlp_layers,
            "aggregation": aggregation,
            "activation": activation,
            "radius": None if radius is None else float(radius),
            "k": k,
            "position_features": position_features,
        }
        node_in = in_channels + (pos_dim if position_features else 0)
        h = hidden_channels
        self.node_encoder = _mlp(node_in, h, h, mlp_layers, activation, True)
        self.edge_encoder = _mlp(pos_dim + 1, h, h, mlp_layers, activation, True)
        self.processor = nn.ModuleList(
            [_ProcessorBlock(h, mlp_layers, activation, aggregation) for _ in range(num_layers)]
        )
        self.decoder = _mlp(h, h, out_channels, mlp_layers, activation, False)

    def graph(self, data: Any) -> torch.Tensor:
        """The graph used for ``data``: see :func:`build_graph`; shape [2, E]."""
        return build_graph(data, self.config["radius"], self.config["k"])

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
        if d != self.config["pos_dim"]:
            raise ValueError(
                f"data.pos has {d} coordinates, the model was built with "
                f"pos_dim={self.config['pos_dim']}"
            )
        if x is None:
            x = getattr(data, "x", None)
        c_in = self.config["in_channels"]
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
        if self.config["position_features"]:
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
