"""Physics attention of Transolver (Wu et al., "Transolver: A Fast Transformer Solver for PDEs on
General Geometries", ICML 2024) on point clouds and PyG batches of them.

Each head softly assigns every point ``i`` of a sample to ``M`` learned *slices*
(``w_{i,m} = softmax_m(W x_i / tau)``), averages the points' features in each slice
into a token, lets the ``M`` tokens attend to each other, and scatters the tokens back
to the points with the same weights. The cost is linear in the number of points.

With ``quadrature=True`` the slice averages are quadrature-weighted,
``z_m = sum_i q_i w_{i,m} f_i / sum_i q_i w_{i,m}``: ratios of two integrals, so the tokens
of a smooth field converge as its mesh is refined (tests/layers/test_physics_attention.py
checks the second order on trapezoid grids). ``quadrature=False`` is the paper's plain
average (``q_i = 1``), with its ``1e-5`` floor of the slice mass. Samples of a batch are
sliced separately, so a batch may mix meshes of any sizes.
"""

from __future__ import annotations

import torch
from torch import nn

from geo_neuralop.utils.checks import check_positive_int

__all__ = ["PhysicsAttention"]


class PhysicsAttention(nn.Module):
    """Slice -> attend among slice tokens -> deslice, per sample and head.

    Parameters
    ----------
    channels : int
        Feature width ``C`` of the points.
    heads : int
        Attention heads; ``C`` must be a multiple.
    slices : int
        Slice tokens ``M`` per head.
    quadrature : bool
        Weigh the slice averages by the points' quadrature weights.
    dropout : float
        Dropout of the token attention weights.

    Shapes
    ------
    forward(x, batch=None, num_graphs=None, weights=None): ``x [N, C]`` (``batch [N]`` graph
    of each point; ``weights [N]`` quadrature weights, needed with ``quadrature``) ->
    ``[N, C]``.

    Examples
    --------
    >>> import torch
    >>> attn = PhysicsAttention(32, heads=4, slices=8)
    >>> x, w = torch.randn(100, 32), torch.full((100,), 0.01)
    >>> batch = torch.cat([torch.zeros(60), torch.ones(40)]).long()  # two meshes
    >>> attn(x, batch, 2, weights=w).shape
    torch.Size([100, 32])
    """

    def __init__(self, channels: int, heads: int = 8, slices: int = 32, quadrature: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        for name, value in (("channels", channels), ("heads", heads), ("slices", slices)):
            check_positive_int(name, value)
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be a multiple of heads ({heads})")
        self.channels, self.heads, self.slices = channels, heads, slices
        self.head_dim = channels // heads
        self.quadrature = bool(quadrature)
        self.scale = self.head_dim ** -0.5
        self.temperature = nn.Parameter(torch.full((heads,), 0.5))
        self.in_project_x = nn.Linear(channels, channels)
        self.in_project_fx = nn.Linear(channels, channels)
        self.in_project_slice = nn.Linear(self.head_dim, slices)
        nn.init.orthogonal_(self.in_project_slice.weight)
        self.to_q = nn.Linear(self.head_dim, self.head_dim, bias=False)
        self.to_k = nn.Linear(self.head_dim, self.head_dim, bias=False)
        self.to_v = nn.Linear(self.head_dim, self.head_dim, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.to_out = nn.Linear(channels, channels)

    def slice_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Soft assignment ``[N, H, M]`` of every point to the slices of every head."""
        n = x.shape[0]
        x_mid = self.in_project_x(x).reshape(n, self.heads, self.head_dim)
        logits = self.in_project_slice(x_mid) / self.temperature[None, :, None]
        return torch.softmax(logits, dim=-1)

    def _ranges(self, batch: torch.Tensor, num_graphs: int) -> list[tuple[int, int]]:
        """Point ranges ``[start, end)`` of the graphs (PyG batches are sorted by graph)."""
        if batch.numel() > 1 and not bool((batch[1:] >= batch[:-1]).all()):
            raise ValueError("batch must list the points graph by graph (sorted), as PyG does")
        counts = torch.bincount(batch, minlength=num_graphs).tolist()
        starts = [0]
        for c in counts:
            starts.append(starts[-1] + c)
        return list(zip(starts[:-1], starts[1:], strict=True))

    def tokens(self, x: torch.Tensor, w: torch.Tensor, ranges: list[tuple[int, int]],
               weights: torch.Tensor | None) -> torch.Tensor:
        """Slice tokens ``[B, H, M, D]``: (quadrature-)weighted averages of the features."""
        n = x.shape[0]
        fx = self.in_project_fx(x).reshape(n, self.heads, self.head_dim)
        wq = w * weights.to(x.dtype)[:, None, None] if self.quadrature else w
        out = []
        for start, end in ranges:
            part = wq[start:end]  # [n_g, H, M]
            sums = torch.einsum("nhm,nhd->hmd", part, fx[start:end])
            mass = part.sum(0)  # [H, M]
            # the paper's floor 1e-5 of the slice mass, in units of the mean point weight
            unit = weights[start:end].to(x.dtype).mean() if self.quadrature and end > start \
                else 1.0
            out.append(sums / (mass + 1e-5 * unit)[..., None])
        return torch.stack(out)

    def forward(self, x: torch.Tensor, batch: torch.Tensor | None = None,
                num_graphs: int | None = None, weights: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Apply the attention; see the class docstring for shapes."""
        if x.dim() != 2 or x.shape[1] != self.channels:
            raise ValueError(f"x must have shape [N, {self.channels}], got {tuple(x.shape)}")
        n = x.shape[0]
        if batch is None:
            batch = torch.zeros(n, dtype=torch.long, device=x.device)
            num_graphs = 1
        elif num_graphs is None:
            num_graphs = int(batch.max()) + 1 if n else 0
        if self.quadrature and (weights is None or tuple(weights.shape) != (n,)):
            raise ValueError(f"quadrature=True needs weights of shape [{n}], got "
                             f"{None if weights is None else tuple(weights.shape)}")
        ranges = self._ranges(batch, num_graphs)
        w = self.slice_weights(x)  # [N, H, M]
        z = self.tokens(x, w, ranges, weights)  # [B, H, M, D]
        q, k, v = self.to_q(z), self.to_k(z), self.to_v(z)
        attn = self.dropout(torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1))
        out_tokens = attn @ v  # [B, H, M, D]
        out = torch.cat([torch.einsum("nhm,hmd->nhd", w[start:end], out_tokens[g])
                         for g, (start, end) in enumerate(ranges)])
        return self.to_out(out.reshape(n, self.channels))

    def extra_repr(self) -> str:
        return (f"{self.channels}, heads={self.heads}, slices={self.slices}, "
                f"quadrature={self.quadrature}")
