"""KernelStore and PrecomputeKernels: per-mesh kernels built once, outside the training step,
kept on disk keyed by geometry and recipe, and used by MeshNO / MeshGraphNet as given."""

import pytest
import torch
from torch.utils.data import Dataset
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from geo_neuralop.data import KernelStore, PrecomputeKernels, geometry_key
from geo_neuralop.geometry import jittered_rectangle_mesh
from geo_neuralop.kernels import DiscoKernel, RadiusField
from geo_neuralop.models import MeshGraphNet, MeshNO

DOMAIN = [(0.0, 2.0), (0.0, 1.0)]


def model(**kwargs):
    torch.manual_seed(0)
    return MeshNO(1, 1, latent_shape=(12, 8), hidden_channels=6, n_layers=1, **kwargs)


class Meshes(Dataset):
    """Samples on ``n`` different meshes (plus fields), as a dataset of many meshes is."""

    def __init__(self, n, transform=None):
        self.meshes = [jittered_rectangle_mesh((14, 9), domain=DOMAIN, seed=s) for s in range(n)]
        self.transform = transform

    def __len__(self):
        return 2 * len(self.meshes)  # two samples per mesh

    def __getitem__(self, i):
        sample = self.meshes[i % len(self.meshes)].clone()
        x, y = sample.pos.T
        sample.x = (torch.sin(3 * x + i) * y)[:, None]
        return sample if self.transform is None else self.transform(sample)


def test_store_round_trip_and_keys(tmp_path):
    mesh = jittered_rectangle_mesh((9, 7), seed=1)
    net = model(mesh_layers=True, mesh_radius=0.35)
    store = KernelStore(tmp_path / "kernels", net.kernel_recipe())
    built = store.get_or_build(geometry_key(mesh), lambda: net.build_kernels(mesh))
    loaded = KernelStore(tmp_path / "kernels", net.kernel_recipe()).load(geometry_key(mesh))
    assert set(loaded) == {"encoder_kernel", "decoder_kernel", "mesh_disco_kernel",
                           "mesh_diff_kernel"}
    for name, kernel in built.items():
        other = loaded[name]
        assert isinstance(other, DiscoKernel)
        assert torch.equal(kernel.edge_index, other.edge_index)
        assert torch.equal(kernel.edge_values, other.edge_values)
        assert other.edge_values.T.is_contiguous()  # basis-major, as built
        assert other.differential == kernel.differential
    assert (tmp_path / "kernels" / "v2").is_dir() and len(store) == 1
    # a moved vertex or a changed parameter is another key: never a stale kernel
    moved = mesh.clone()
    moved.pos = moved.pos.clone()
    moved.pos[5, 0] += 1e-6
    assert geometry_key(moved) != geometry_key(mesh)
    assert store.load(geometry_key(moved)) is None
    wider = KernelStore(tmp_path / "kernels", model(mesh_layers=True, mesh_radius=0.4)
                        .kernel_recipe())
    assert wider.folder != store.folder and wider.load(geometry_key(mesh)) is None
    # fields do not enter the key: all samples of a mesh share its kernels
    sample = mesh.clone()
    sample.x = torch.randn(mesh.num_nodes, 1)
    assert geometry_key(sample) == geometry_key(mesh)


def test_damaged_files_are_rebuilt_and_writes_are_atomic(tmp_path, monkeypatch):
    mesh = jittered_rectangle_mesh((8, 6), seed=2)
    net = model()
    store = KernelStore(tmp_path, net.kernel_recipe())
    key = geometry_key(mesh)
    store.get_or_build(key, lambda: net.build_kernels(mesh))
    path = store.path(key)
    path.write_bytes(path.read_bytes()[:100])  # truncated
    assert store.load(key) is None
    store.get_or_build(key, lambda: net.build_kernels(mesh))
    assert store.builds == 2 and store.load(key) is not None

    def failing_write(self, path):
        with open(path, "wb") as f:
            f.write(b"GNOKB001 half")
        raise OSError("disk full")

    from geo_neuralop.kernels import KernelBundle

    monkeypatch.setattr(KernelBundle, "write", failing_write)
    other = jittered_rectangle_mesh((8, 6), seed=3)
    with pytest.raises(OSError, match="disk full"):
        store.save(geometry_key(other), net.build_kernels(other))
    assert not store.path(geometry_key(other)).exists()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file() and p.name.startswith("."))\
        == []  # no temporary file left behind
    with pytest.raises(ValueError, match="alphanumeric digest"):
        store.path("../escape")
    with pytest.raises(TypeError, match="plain values"):
        KernelStore(tmp_path, {"radius": torch.tensor(1.0)})


@pytest.mark.parametrize("mesh_layers,bundle", [(False, True), (True, True), (True, False)])
def test_precomputed_kernels_give_the_model_s_own_output_and_gradients(tmp_path, mesh_layers,
                                                                        bundle):
    """A batch carrying precomputed kernels (from a PyG DataLoader with two workers and a
    store; packed in one buffer per sample or one attribute per kernel) gives the output
    and gradients of the model building its own kernels, and the model builds none."""
    net = model(mesh_layers=mesh_layers, mesh_radius=0.3).double()
    transform = PrecomputeKernels(net.build_kernels, net.kernel_recipe(), store=tmp_path,
                                  bundle=bundle)
    loader = DataLoader(Meshes(3, transform), batch_size=3, shuffle=False, num_workers=2)
    batch = next(iter(loader))
    carried = batch.kernel_bundle if bundle else batch.encoder_kernel
    assert isinstance(carried, list) and len(carried) == 3
    attached = net.attached_kernels(batch)
    for kernels in attached.values():  # applied forms made in the workers came along
        assert all(len(k.__dict__.get("_operators", {})) == 1 for k in kernels)
        assert all(next(iter(k._operators.values())).transposed_parts is not None
                   for k in kernels)
    out = net(batch, batch.x.double())
    grads = torch.autograd.grad(out.square().sum(), list(net.parameters()))
    assert net.encoder.kernels.builds == 0 and net.decoder.kernels.builds == 0
    assert len(KernelStore(tmp_path, net.kernel_recipe())) == 3  # one file per mesh
    plain = Batch.from_data_list([Meshes(3)[i] for i in range(3)])
    ref = net(plain, plain.x.double())
    ref_grads = torch.autograd.grad(ref.square().sum(), list(net.parameters()))
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12)


def test_radius_field_config_round_trips_through_the_recipe(tmp_path):
    reference = jittered_rectangle_mesh((14, 9), domain=DOMAIN, seed=4)
    field = RadiusField.from_cloud(reference, cells=2.5)
    net = model(mesh_layers=True, mesh_radius=field.to_dict())
    assert net.mesh_radius == field and net.config["mesh_radius"] == field.to_dict()
    assert net.mesh_disco.normalization == "nodal"
    rebuilt = MeshNO(**net.config)
    assert rebuilt.kernel_recipe() == net.kernel_recipe()
    sample = Meshes(1)[0]
    kernels = net.build_kernels(sample)
    counts = torch.bincount(kernels["mesh_diff_kernel"].edge_index[1].long())
    assert int(counts.min()) >= 8


def test_mesh_graph_net_graphs_are_precomputed(tmp_path):
    torch.manual_seed(0)
    net = MeshGraphNet(1, 1, hidden_channels=8, n_layers=2, radius=0.3)
    transform = PrecomputeKernels(net.build_kernels, net.kernel_recipe(), store=tmp_path)
    data = Meshes(2, transform)
    batch = Batch.from_data_list([data[0], data[1], data[2]])
    plain = Batch.from_data_list([Meshes(2)[i] for i in range(3)])
    torch.testing.assert_close(batch.edge_index, net.graph(plain))
    torch.testing.assert_close(net(batch), net(plain))


def test_bundles_pack_kernels_and_applied_forms_in_one_buffer():
    import pickle

    from geo_neuralop.kernels import KernelBundle

    net = model(mesh_layers=True, mesh_radius=0.3)
    kernels = net.build_kernels(jittered_rectangle_mesh((10, 7), domain=DOMAIN, seed=6))
    for kernel in kernels.values():
        kernel.prepare_operator()
    bundle = pickle.loads(pickle.dumps(KernelBundle(kernels)))
    unpacked = bundle.unpack()
    assert bundle.unpack() is unpacked  # views made once
    start, end = bundle.buffer.data_ptr(), bundle.buffer.data_ptr() + bundle.nbytes
    x = torch.randn(70, 6, requires_grad=True)
    for name, kernel in kernels.items():
        other = unpacked[name]
        assert start <= other.edge_values.data_ptr() < end
        assert torch.equal(kernel.edge_index, other.edge_index)
        assert torch.equal(kernel.edge_values, other.edge_values)
        assert other.differential == kernel.differential
        if name in ("encoder_kernel", "mesh_disco_kernel", "mesh_diff_kernel"):
            a, b = kernel.responses(x), other.responses(x)
            torch.testing.assert_close(a, b)
            ga = torch.autograd.grad(a.square().sum(), x)[0]
            gb = torch.autograd.grad(b.square().sum(), x)[0]
            torch.testing.assert_close(ga, gb)
    with pytest.raises(TypeError, match="must be a DiscoKernel or a tensor"):
        KernelBundle({"graph": [0, 1]})


def test_bundle_files_are_mapped_by_the_process_that_uses_them(tmp_path):
    """A store file is a bundle: its reference pickles as a file name, and unpacking maps
    the file (no copy), giving the kernels and their applied forms."""
    import pickle

    from geo_neuralop.kernels import BundleFile, KernelBundle

    net = model(mesh_layers=True, mesh_radius=0.3)
    mesh = jittered_rectangle_mesh((10, 7), domain=DOMAIN, seed=7)
    transform = PrecomputeKernels(net.build_kernels, net.kernel_recipe(), store=tmp_path)
    sample = transform(mesh.clone())
    reference = sample.kernel_bundle
    assert isinstance(reference, BundleFile)
    assert len(pickle.dumps(reference)) < 300  # the file name only
    kernels = pickle.loads(pickle.dumps(reference)).unpack()
    built = net.build_kernels(mesh)
    for name, kernel in built.items():
        assert torch.equal(kernels[name].edge_values, kernel.edge_values)
        assert torch.equal(kernels[name].edge_index, kernel.edge_index)
        assert len(kernels[name]._operators) == 1
    path = reference.path
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        KernelBundle.load(path)
