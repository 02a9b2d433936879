"""DeepONet (Lu et al., Nature Machine Intelligence 2021) and POD-DeepONet (Lu et al., CMAME 2022)
on point clouds: grids, meshes and the sphere.

``G(u)(y)_c = sum_k b_{k,c}(u) t_k(y) + beta_c``: a *branch* network encodes the input
function ``u``, a *trunk* network the query point ``y``. Branches:

- ``"sensors"``: the paper's branch, an MLP on the values of ``u`` at ``n_sensors`` fixed
  points (every sample must be sampled at the same points, in the same order);
- ``"integral"``: a quadrature-weighted encoder ``e_{j,c} = sum_i w_i phi_j(x_i) u_c(x_i)``
  (``phi_j`` a learned MLP of the coordinates, ``w_i`` the cloud's quadrature weights)
  followed by an MLP: a discretization of the integrals ``int phi_j u``, so it takes
  any mesh of the domain and converges as the mesh is refined.

Trunks: ``"mlp"`` (the paper's, activation on its last layer too) or ``"pod"``, the
POD-DeepONet: the first ``n_basis`` POD modes of the training outputs at fixed query
points (:meth:`DeepONet.fit_pod`) and their mean in place of ``beta``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from geo_neuralop.layers.activations import get_activation
from geo_neuralop.models.cloud_batch import check_cloud, graph_index, segment_sum
from geo_neuralop.models.registry import register_model
from geo_neuralop.utils.checks import check_positive_int

__all__ = ["BRANCHES", "TRUNKS", "DeepONet"]

BRANCHES = ("sensors", "integral")
TRUNKS = ("mlp", "pod")


def _mlp(sizes: Sequence[int], activation: str, last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_activation:
            layers.append(get_activation(activation))
    return nn.Sequential(*layers)


@register_model("deeponet", family="mesh")
class DeepONet(nn.Module):
    """Deep operator network on point clouds (see the module docstring).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input function ``u`` and of the output.
    pos_dim : int
        Coordinate dimension of the points (3 on the sphere).
    branch : {"integral", "sensors"}
    trunk : {"mlp", "pod"}
    n_sensors : int, optional
        Points per sample of the "sensors" branch (required there).
    n_basis : int
        Terms ``k`` of the expansion (per output channel for the branch).
    width : int
        Hidden width of the branch, trunk and encoder networks.
    branch_layers, trunk_layers : int
        Hidden layers of the branch and trunk MLPs.
    n_functions : int
        Learned test functions ``phi_j`` of the "integral" encoder.
    pod_points : int, optional
        Query points of the "pod" trunk (the POD modes live there; required there).
    activation : str

    Shapes
    ------
    forward(cloud, x=None, query=None): ``cloud`` a PointCloud or PyG batch with ``x
    [N, C_in]`` (or ``x`` given) -> ``[N_query, C_out]`` at ``query``'s points (default the
    input points; a batch of queries has one sample per input sample). A single
    PointCloud ``query`` with a batch of ``B`` inputs is shared by all of them: the trunk
    runs once and the output is ``[B * N_query, C_out]``, sample-major.

    Examples
    --------
    >>> import torch
    >>> from geo_neuralop.geometry import jittered_rectangle_mesh, sphere_grid
    >>> from geo_neuralop.models import DeepONet
    >>> mesh = jittered_rectangle_mesh((12, 10))
    >>> model = DeepONet(1, 2, pos_dim=2, n_basis=16, width=32)
    >>> model(mesh, x=torch.randn(mesh.num_nodes, 1)).shape
    torch.Size([120, 2])
    >>> sphere = sphere_grid(8, 16)
    >>> DeepONet(1, 1, pos_dim=3)(sphere, x=torch.randn(128, 1)).shape  # any point cloud
    torch.Size([128, 1])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        pos_dim: int = 2,
        branch: str = "integral",
        trunk: str = "mlp",
        n_sensors: int | None = None,
        n_basis: int = 64,
        width: int = 64,
        branch_layers: int = 2,
        trunk_layers: int = 3,
        n_functions: int = 64,
        pod_points: int | None = None,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("pos_dim", pos_dim), ("n_basis", n_basis), ("width", width),
                            ("branch_layers", branch_layers), ("trunk_layers", trunk_layers),
                            ("n_functions", n_functions)):
            check_positive_int(name, value)
        if branch not in BRANCHES:
            raise ValueError(f"branch must be one of {BRANCHES}, got {branch!r}")
        if trunk not in TRUNKS:
            raise ValueError(f"trunk must be one of {TRUNKS}, got {trunk!r}")
        if branch == "sensors":
            if n_sensors is None:
                raise ValueError("branch='sensors' needs n_sensors (points per sample)")
            check_positive_int("n_sensors", n_sensors)
        if trunk == "pod":
            if pod_points is None:
                raise ValueError("trunk='pod' needs pod_points (the query points of the modes)")
            check_positive_int("pod_points", pod_points)
        self.in_channels, self.out_channels, self.pos_dim = in_channels, out_channels, pos_dim
        self.branch_kind, self.trunk_kind = branch, trunk
        self.n_sensors, self.n_basis, self.pod_points = n_sensors, n_basis, pod_points
        hidden = [width] * branch_layers
        if branch == "sensors":
            branch_in = n_sensors * in_channels  # type: ignore[operator]
            self.test_functions = None
        else:
            branch_in = n_functions * in_channels
            self.test_functions = _mlp([pos_dim, width, width, n_functions], activation, False)
        self.branch = _mlp([branch_in, *hidden, n_basis * out_channels], activation, False)
        if trunk == "mlp":
            self.trunk = _mlp([pos_dim, *([width] * trunk_layers), n_basis], activation, True)
            self.bias = nn.Parameter(torch.zeros(out_channels))
        else:
            self.trunk = None
            self.register_parameter("bias", None)
            self.register_buffer("pod_modes", torch.zeros(pod_points, n_basis, out_channels))
            self.register_buffer("pod_mean", torch.zeros(pod_points, out_channels))
            self.register_buffer("pod_fitted", torch.zeros((), dtype=torch.bool))

    # ------------------------------------------------------------------ POD

    @torch.no_grad()
    def fit_pod(self, outputs: torch.Tensor) -> torch.Tensor:
        """Fit the POD trunk to training outputs at the ``pod_points`` query points.

        Parameters
        ----------
        outputs : torch.Tensor, shape [S, pod_points, C_out]
            Output functions of ``S`` training samples.

        Returns
        -------
        torch.Tensor, shape [C_out]
            Fraction of the variance (about the mean) the kept modes explain.
        """
        if self.trunk_kind != "pod":
            raise ValueError("fit_pod needs trunk='pod'")
        expected = (self.pod_points, self.out_channels)
        if outputs.dim() != 3 or tuple(outputs.shape[1:]) != expected:
            raise ValueError(f"outputs must have shape [S, {expected[0]}, {expected[1]}], got "
                             f"{tuple(outputs.shape)}")
        if outputs.shape[0] < self.n_basis:
            raise ValueError(f"n_basis={self.n_basis} POD modes need at least that many samples, "
                             f"got {outputs.shape[0]}")
        data = outputs.double()
        mean = data.mean(0)
        explained = []
        for c in range(self.out_channels):
            centred = data[:, :, c] - mean[:, c]  # [S, P]
            _, s, vh = torch.linalg.svd(centred, full_matrices=False)
            self.pod_modes[:, :, c] = vh[: self.n_basis].T.to(self.pod_modes.dtype)
            energy = s.square()
            explained.append(energy[: self.n_basis].sum() / energy.sum().clamp_min(1e-300))
        self.pod_mean.copy_(mean.to(self.pod_mean.dtype))
        self.pod_fitted.fill_(True)
        return torch.stack(explained).float()

    # ------------------------------------------------------------------ forward

    def encode(self, cloud, x: torch.Tensor) -> torch.Tensor:
        """Branch coefficients ``[B, n_basis, C_out]`` of each sample's input function."""
        batch, b = graph_index(cloud)
        if self.branch_kind == "sensors":
            counts = torch.bincount(batch, minlength=b)
            if bool((counts != self.n_sensors).any()):
                raise ValueError(f"branch='sensors' needs every sample at n_sensors="
                                 f"{self.n_sensors} points, got {counts.tolist()}; use "
                                 f"branch='integral' for meshes of different sizes")
            features = x.reshape(b, -1)
        else:
            phi = self.test_functions(cloud.pos.to(x.dtype))  # [N, J]
            w = cloud.weights.to(x.dtype)[:, None, None]
            features = segment_sum(w * phi[:, :, None] * x[:, None, :], batch, b).reshape(b, -1)
        return self.branch(features).reshape(b, self.n_basis, self.out_channels)

    def basis(self, query) -> tuple[torch.Tensor, torch.Tensor]:
        """Trunk functions ``[N_q, n_basis, C]`` (or shared ``[N_q, n_basis, 1]``) and offset
        ``[N_q, C]`` at the query points."""
        if self.trunk_kind == "mlp":
            t = self.trunk(query.pos.to(self.bias.dtype))
            return t[:, :, None], self.bias.expand(t.shape[0], -1)
        if not bool(self.pod_fitted):
            raise ValueError("trunk='pod' has no modes yet: call fit_pod(training outputs) "
                             "first (or load a fitted model)")
        batch, b = graph_index(query)
        counts = torch.bincount(batch, minlength=b)
        if bool((counts != self.pod_points).any()):
            raise ValueError(f"trunk='pod' evaluates at its pod_points={self.pod_points} query "
                             f"points, got samples of {counts.tolist()} points")
        return self.pod_modes.repeat(b, 1, 1), self.pod_mean.repeat(b, 1)

    def forward(self, cloud, x: torch.Tensor | None = None, query=None) -> torch.Tensor:
        """Apply the operator; see the class docstring for shapes."""
        check_cloud(cloud)
        x = getattr(cloud, "x", None) if x is None else x
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] != cloud.num_nodes:
            raise ValueError(f"x must have shape [{cloud.num_nodes}, {self.in_channels}] (pass "
                             f"x or give the cloud an 'x' field), got "
                             f"{getattr(x, 'shape', x)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"x has {x.shape[1]} channels but the model expects "
                             f"{self.in_channels}")
        query = cloud if query is None else query
        check_cloud(query, "query")
        for name, c in (("cloud", cloud), ("query", query)):
            if c.pos.shape[1] != self.pos_dim:
                raise ValueError(f"{name} has {c.pos.shape[1]}-D points but pos_dim is "
                                 f"{self.pos_dim}")
        coeffs = self.encode(cloud, x)  # [B, K, C]
        b = coeffs.shape[0]
        q_batch, q_graphs = graph_index(query)
        t, offset = self.basis(query)
        t, offset = t.to(coeffs.dtype), offset.to(coeffs.dtype)
        if q_graphs == 1 and b > 1 and getattr(query, "batch", None) is None:  # shared query
            out = torch.einsum("bkc,nkc->bnc", coeffs.expand(-1, -1, self.out_channels),
                               t.expand(-1, -1, self.out_channels)) + offset
            return out.reshape(-1, self.out_channels)
        if q_graphs != b:
            raise ValueError(f"query has {q_graphs} samples but the input has {b}")
        return (coeffs[q_batch] * t).sum(1) + offset
