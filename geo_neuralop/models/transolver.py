"""Transolver (Wu et al., ICML 2024): a transformer on any point cloud through physics attention.

``[x, pos] -> MLP -> n_layers x [LN -> PhysicsAttention -> + ; LN -> MLP -> +] -> LN -> Linear``,
the paper's irregular-mesh model. Points are sliced into learned tokens per sample
(:class:`~geo_neuralop.layers.PhysicsAttention`), so a PyG batch may mix meshes of
different sizes, and the cost is linear in the number of points. With
``quadrature=True`` (default) the slices average with the clouds' quadrature weights,
which makes the tokens discretizations of integrals over the domain.
"""

from __future__ import annotations

import torch
from torch import nn

from geo_neuralop.layers.activations import get_activation
from geo_neuralop.layers.physics_attention import PhysicsAttention
from geo_neuralop.models.cloud_batch import check_cloud, graph_index
from geo_neuralop.models.registry import register_model
from geo_neuralop.utils.checks import check_positive_int

__all__ = ["Transolver", "TransolverBlock"]


class TransolverBlock(nn.Module):
    """Pre-norm transformer block with physics attention and an MLP (``mlp_ratio`` wide)."""

    def __init__(self, channels: int, heads: int, slices: int, mlp_ratio: float,
                 activation: str, quadrature: bool, dropout: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(channels)
        self.attention = PhysicsAttention(channels, heads, slices, quadrature, dropout)
        self.ln_2 = nn.LayerNorm(channels)
        hidden = max(1, round(channels * mlp_ratio))
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), get_activation(activation),
                                 nn.Linear(hidden, channels))

    def forward(self, h: torch.Tensor, batch: torch.Tensor, num_graphs: int,
                weights: torch.Tensor | None) -> torch.Tensor:
        h = h + self.attention(self.ln_1(h), batch, num_graphs, weights)
        return h + self.mlp(self.ln_2(h))


@register_model("transolver", family="mesh")
class Transolver(nn.Module):
    """Transolver on point clouds (meshes, grids, the sphere).

    Parameters
    ----------
    in_channels, out_channels : int
    pos_dim : int
        Coordinate dimension of the points (appended to the input features).
    hidden_channels : int
    n_layers : int
    heads : int
        Attention heads (``hidden_channels`` must be a multiple).
    slices : int
        Slice tokens per head.
    mlp_ratio : float
        Width of the blocks' MLPs relative to ``hidden_channels``.
    quadrature : bool
        Quadrature-weighted slices (False: the paper's plain averages).
    activation : str
    dropout : float
        On the token attention weights.

    Shapes
    ------
    forward(cloud, x=None): ``cloud`` a PointCloud or PyG batch with ``x [N, C_in]`` (or
    ``x`` given) -> ``[N, C_out]``.

    Examples
    --------
    >>> import torch
    >>> from torch_geometric.data import Batch
    >>> from geo_neuralop.geometry import jittered_rectangle_mesh
    >>> from geo_neuralop.models import Transolver
    >>> meshes = [jittered_rectangle_mesh((10, 8), seed=0), jittered_rectangle_mesh((6, 6), seed=1)]
    >>> batch = Batch.from_data_list(meshes)          # 80 + 36 points, one batch
    >>> model = Transolver(1, 2, pos_dim=2, hidden_channels=32, n_layers=2, heads=4, slices=8)
    >>> model(batch, x=torch.randn(116, 1)).shape
    torch.Size([116, 2])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        pos_dim: int = 2,
        hidden_channels: int = 128,
        n_layers: int = 5,
        heads: int = 8,
        slices: int = 32,
        mlp_ratio: float = 1.0,
        quadrature: bool = True,
        activation: str = "gelu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("pos_dim", pos_dim), ("hidden_channels", hidden_channels),
                            ("n_layers", n_layers), ("heads", heads), ("slices", slices)):
            check_positive_int(name, value)
        if hidden_channels % heads:
            raise ValueError(f"hidden_channels ({hidden_channels}) must be a multiple of heads "
                             f"({heads})")
        if not isinstance(mlp_ratio, (int, float)) or isinstance(mlp_ratio, bool) or \
                not mlp_ratio > 0:
            raise ValueError(f"mlp_ratio must be a positive number, got {mlp_ratio!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.in_channels, self.out_channels, self.pos_dim = in_channels, out_channels, pos_dim
        self.quadrature = bool(quadrature)
        self.preprocess = nn.Sequential(nn.Linear(in_channels + pos_dim, 2 * hidden_channels),
                                        get_activation(activation),
                                        nn.Linear(2 * hidden_channels, hidden_channels))
        self.placeholder = nn.Parameter(torch.rand(hidden_channels) / hidden_channels)
        self.blocks = nn.ModuleList([
            TransolverBlock(hidden_channels, heads, slices, mlp_ratio, activation, quadrature,
                            dropout) for _ in range(n_layers)])
        self.ln_out = nn.LayerNorm(hidden_channels)
        self.head = nn.Linear(hidden_channels, out_channels)

    def forward(self, cloud, x: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the model; see the class docstring for shapes."""
        check_cloud(cloud)
        x = getattr(cloud, "x", None) if x is None else x
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] != cloud.num_nodes:
            raise ValueError(f"x must have shape [{cloud.num_nodes}, {self.in_channels}] (pass "
                             f"x or give the cloud an 'x' field), got "
                             f"{getattr(x, 'shape', x)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"x has {x.shape[1]} channels but the model expects "
                             f"{self.in_channels}")
        if cloud.pos.shape[1] != self.pos_dim:
            raise ValueError(f"the cloud has {cloud.pos.shape[1]}-D points but pos_dim is "
                             f"{self.pos_dim}")
        batch, num_graphs = graph_index(cloud)
        weights = cloud.weights if self.quadrature else None
        h = self.preprocess(torch.cat([x, cloud.pos.to(x.dtype)], dim=1)) + self.placeholder
        for block in self.blocks:
            h = block(h, batch, num_graphs, weights)
        return self.head(self.ln_out(h))
