"""MeshGraphNet baseline: graph construction against brute force and Euler's formula,
permutation equivariance, batching, translation invariance, training and gradients."""

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Batch

from geo_neuralop.geometry import PointCloud, icosphere, jittered_rectangle_mesh
from geo_neuralop.kernels.neighbors import build_graph, knn_edges, mesh_edges, radius_edges
from geo_neuralop.models import MeshGraphNet, get_model


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _edge_set(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return {(int(s), int(d)) for s, d in edge_index.t().tolist()}


def _cloud(n: int, seed: int) -> PointCloud:
    pos = torch.rand(n, 2, generator=_gen(seed))
    return PointCloud(pos, torch.full((n,), 1.0 / n))


# --- graphs ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("mesh", "euler"), [
    (jittered_rectangle_mesh((7, 5), seed=3), 1),  # a disk: V - E + F = 1
    (icosphere(2), 2),  # a closed surface: V - E + F = 2
])
def test_mesh_edges_match_euler_formula(mesh, euler):
    edges = mesh_edges(mesh.faces, mesh.num_nodes)
    v, f = mesh.num_nodes, mesh.faces.shape[0]
    assert edges.shape == (2, 2 * (v + f - euler))
    pairs = _edge_set(edges)
    assert len(pairs) == edges.shape[1]  # no duplicates
    assert all((d, s) in pairs for s, d in pairs)  # symmetric
    assert all(s != d for s, d in pairs)
    for a, b, c in mesh.faces.tolist():
        assert {(a, b), (b, c), (c, a)} <= pairs
    key = edges[1] * v + edges[0]
    assert torch.all(key[1:] > key[:-1])  # sorted by dst then src


def test_radius_edges_equal_brute_force_per_graph():
    batch = Batch.from_data_list([_cloud(40, 0), _cloud(25, 1)])
    radius = 0.2
    got = _edge_set(radius_edges(batch.pos, radius, batch.batch))
    dist = torch.cdist(batch.pos.double(), batch.pos.double())
    same = batch.batch[:, None] == batch.batch[None, :]
    close = (dist < radius) & same & ~torch.eye(batch.num_nodes, dtype=torch.bool)
    expected = {(int(s), int(d)) for d, s in close.nonzero().tolist()}
    assert got == expected
    assert len(expected) > 50


def test_knn_edges_equal_brute_force_per_graph():
    batch = Batch.from_data_list([_cloud(30, 2), _cloud(12, 3), _cloud(3, 4)])
    k = 4
    got = _edge_set(knn_edges(batch.pos, k, batch.batch))
    expected = set()
    for g in range(3):
        idx = (batch.batch == g).nonzero().flatten()
        dist = torch.cdist(batch.pos[idx].double(), batch.pos[idx].double())
        dist.fill_diagonal_(float("inf"))
        kk = min(k, len(idx) - 1)
        nearest = dist.argsort(dim=1)[:, :kk]
        for i in range(len(idx)):
            for j in nearest[i].tolist():
                expected |= {(int(idx[j]), int(idx[i])), (int(idx[i]), int(idx[j]))}
    assert got == expected


def test_build_graph_priority_and_errors():
    mesh = jittered_rectangle_mesh((4, 4))
    assert _edge_set(build_graph(mesh)) == _edge_set(mesh_edges(mesh.faces, mesh.num_nodes))
    given = torch.tensor([[0, 1], [1, 0]])
    mesh.edge_index = given
    assert build_graph(mesh, radius=10.0) is given
    cloud = _cloud(20, 0)
    assert _edge_set(build_graph(cloud, radius=0.3)) == _edge_set(radius_edges(cloud.pos, 0.3))
    assert _edge_set(build_graph(cloud, k=2)) == _edge_set(knn_edges(cloud.pos, 2))
    with pytest.raises(ValueError, match="neither edge_index nor faces"):
        build_graph(cloud)
    with pytest.raises(ValueError, match="radius must be a positive"):
        radius_edges(cloud.pos, -1.0)
    with pytest.raises(ValueError, match="k must be a positive int"):
        knn_edges(cloud.pos, 0)


# --- model -------------------------------------------------------------------------------------
def _model(**kwargs) -> MeshGraphNet:
    config = {"in_channels": 2, "out_channels": 3, "hidden_channels": 16, "n_layers": 3}
    config.update(kwargs)
    return MeshGraphNet(**config).eval()


@pytest.mark.parametrize("geometry", ["plane", "sphere"])
def test_permutation_equivariance(geometry):
    mesh = jittered_rectangle_mesh((6, 5), seed=2) if geometry == "plane" else icosphere(1)
    pos_dim = mesh.pos.shape[1]
    model = _model(pos_dim=pos_dim)
    x = torch.randn(mesh.num_nodes, 2, generator=_gen())
    perm = torch.randperm(mesh.num_nodes, generator=_gen(1))
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(mesh.num_nodes)
    permuted = PointCloud(mesh.pos[perm], mesh.weights[perm], manifold=mesh.manifold,
                          faces=inverse[mesh.faces])
    with torch.no_grad():
        y = model(mesh, x)
        y_perm = model(permuted, x[perm])
    torch.testing.assert_close(y_perm, y[perm], rtol=1e-5, atol=1e-5)


def test_batch_equals_per_graph_application_on_meshes():
    meshes = [jittered_rectangle_mesh((5, 4)), jittered_rectangle_mesh((7, 6), seed=1),
              jittered_rectangle_mesh((3, 3), seed=2)]
    for i, mesh in enumerate(meshes):
        mesh.x = torch.randn(mesh.num_nodes, 2, generator=_gen(i))
    model = _model()
    with torch.no_grad():
        batched = model(Batch.from_data_list(meshes))
        separate = torch.cat([model(mesh) for mesh in meshes])
    torch.testing.assert_close(batched, separate, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("graph", [{"radius": 0.3}, {"k": 5}])
def test_batch_equals_per_graph_application_on_clouds(graph):
    clouds = [_cloud(30, 0), _cloud(18, 1)]
    for i, cloud in enumerate(clouds):
        cloud.x = torch.randn(cloud.num_nodes, 2, generator=_gen(i))
    model = _model(**graph)
    with torch.no_grad():
        batched = model(Batch.from_data_list(clouds))
        separate = torch.cat([model(cloud) for cloud in clouds])
    torch.testing.assert_close(batched, separate, rtol=1e-6, atol=1e-6)


def test_precomputed_edge_index_batches_correctly():
    clouds = [_cloud(20, 0), _cloud(15, 1)]
    for i, cloud in enumerate(clouds):
        cloud.x = torch.randn(cloud.num_nodes, 2, generator=_gen(i))
        cloud.edge_index = build_graph(cloud, radius=0.35)
    model = _model()  # no radius: the stored graphs are used
    batch = Batch.from_data_list(clouds)
    with torch.no_grad():
        torch.testing.assert_close(
            model(batch), torch.cat([model(c) for c in clouds]), rtol=1e-6, atol=1e-6
        )
    with_radius = _model(radius=0.35)
    with_radius.load_state_dict(model.state_dict())
    del batch.edge_index
    with torch.no_grad():
        torch.testing.assert_close(with_radius(batch), model(Batch.from_data_list(clouds)))


def test_translation_invariance_and_position_features():
    mesh = jittered_rectangle_mesh((6, 6), seed=4)
    x = torch.randn(mesh.num_nodes, 2, generator=_gen())
    moved = PointCloud(mesh.pos + torch.tensor([3.0, -2.0]), mesh.weights, faces=mesh.faces)
    model = _model()
    with torch.no_grad():
        torch.testing.assert_close(model(moved, x), model(mesh, x), rtol=1e-5, atol=1e-5)
    absolute = _model(position_features=True)
    with torch.no_grad():
        assert (absolute(moved, x) - absolute(mesh, x)).abs().max() > 1e-2


def test_every_parameter_gets_a_gradient():
    mesh = jittered_rectangle_mesh((6, 5), seed=2)
    model = _model(n_layers=2).train()
    x = torch.randn(mesh.num_nodes, 2, generator=_gen())
    target = torch.randn(mesh.num_nodes, 3, generator=_gen(1))
    F.mse_loss(model(mesh, x), target).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().max() > 0, name


def test_training_lowers_the_loss():
    """Learn the graph Laplacian sum_j (x_j - x_i) on a batch of jittered meshes."""
    torch.manual_seed(0)
    meshes = [jittered_rectangle_mesh((6, 6), seed=s) for s in range(4)]
    batch = Batch.from_data_list(meshes)
    x = torch.randn(batch.num_nodes, 1, generator=_gen())
    src, dst = build_graph(batch)
    target = torch.zeros_like(x).index_add_(0, dst, x[src] - x[dst])
    model = MeshGraphNet(1, 1, hidden_channels=32, n_layers=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = F.mse_loss(model(batch, x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # measured: 27.7 -> 0.22 over 60 steps
    assert losses[-1] < 0.2 * losses[0], (losses[0], losses[-1])


@pytest.mark.parametrize("aggregation", ["sum", "mean"])
def test_equals_loop_reference_of_the_paper_equations(aggregation):
    """Pfaff et al. (2021), eqs. 1-2, written with Python loops over nodes and neighbours."""
    mesh = jittered_rectangle_mesh((4, 3), seed=5)
    model = _model(n_layers=2, aggregation=aggregation)
    x = torch.randn(mesh.num_nodes, 2, generator=_gen())
    faces = mesh.faces.tolist()
    neighbours = {i: set() for i in range(mesh.num_nodes)}
    for face in faces:
        for a in face:
            neighbours[a] |= set(face) - {a}
    pos = mesh.pos
    with torch.no_grad():
        h = {i: model.node_encoder(x[i]) for i in range(mesh.num_nodes)}
        e = {}
        for i, nbrs in neighbours.items():
            for j in nbrs:  # edge j -> i
                u = pos[j] - pos[i]
                e[j, i] = model.edge_encoder(torch.cat([u, u.norm().reshape(1)]))
        for block in model.processor:
            e = {(j, i): v + block.edge_mlp(torch.cat([v, h[j], h[i]])) for (j, i), v in e.items()}
            new_h = {}
            for i, nbrs in neighbours.items():
                incoming = sum(e[j, i] for j in nbrs)
                if aggregation == "mean":
                    incoming = incoming / len(nbrs)
                new_h[i] = h[i] + block.node_mlp(torch.cat([h[i], incoming]))
            h = new_h
        reference = torch.stack([model.decoder(h[i]) for i in range(mesh.num_nodes)])
        torch.testing.assert_close(model(mesh, x), reference, rtol=1e-5, atol=1e-5)


def test_config_and_registry():
    model = get_model("mesh_graph_net", in_channels=1, out_channels=1, radius=1)
    assert model.config["radius"] == 1.0 and isinstance(model.config["radius"], float)
    assert model.config["n_layers"] == 15 and model.config["hidden_channels"] == 128


def test_bad_inputs_raise():
    mesh = jittered_rectangle_mesh((4, 4))
    model = _model()
    with pytest.raises(ValueError, match=r"x must have shape \[16, 2\]"):
        model(mesh, torch.randn(16, 3))
    with pytest.raises(ValueError, match="no node features"):
        model(mesh)
    with pytest.raises(ValueError, match="pos_dim=2"):
        model(icosphere(1), torch.randn(42, 2))
    with pytest.raises(ValueError, match="neither edge_index nor faces"):
        model(_cloud(10, 0), torch.randn(10, 2))
    with pytest.raises(ValueError, match="aggregation"):
        MeshGraphNet(1, 1, aggregation="max")
    with pytest.raises(ValueError, match="radius"):
        MeshGraphNet(1, 1, radius=0.0)
