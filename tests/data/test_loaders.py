"""Loaders: windows of frames as PointCloud samples, tensor views, normalization, kernels."""

import numpy as np
import pytest
import torch

from geo_neuralop.data import (
    AttachKernels,
    DatasetError,
    batch_kernels,
    generate_dataset,
    load_dataset,
    read_trajectory,
)
from geo_neuralop.data.storage import sample_path


@pytest.fixture(scope="module")
def swe_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "swe"
    generate_dataset("swe", root, 4, params={"nlat": 16, "n_frames": 5},
                     split_fractions=(0.5, 0.25, 0.25), progress=False, log=None)
    return root


@pytest.fixture(scope="module")
def darcy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "darcy"
    generate_dataset("darcy", root, 3, params={"resolution": 9}, split_fractions=(1, 0, 0),
                     progress=False, log=None)
    return root


def test_rollout_windows_hold_the_right_frames(swe_root):
    ds = load_dataset(swe_root, "train", input_steps=2, target_steps=2, frame_step=1,
                      normalize=False)
    assert len(ds) == 2 * (5 - 3)  # two trajectories, windows starting at frames 0 and 1
    names = ["height", "vorticity", "divergence"]
    assert ds.input_names == names * 2 and ds.target_names == names
    sample = ds[3]  # trajectory 1, start 1
    traj = read_trajectory(sample_path(swe_root, 1))
    assert (sample.trajectory, sample.start, sample.frame_time) == (1, 1, 7200.0)
    expected_x = np.concatenate([np.stack([traj.fields[n][t] for n in names], -1)
                                 for t in (1, 2)], axis=-1)
    np.testing.assert_array_equal(sample.x.numpy(), expected_x)
    assert sample.y.shape == (16 * 32, 2, 3)
    np.testing.assert_array_equal(sample.y[:, 1, 0].numpy(), traj.fields["height"][4])
    assert sample.manifold == "sphere" and sample.grid_shape == (16, 32)
    assert float(sample.weights.sum()) == pytest.approx(4 * np.pi, rel=1e-5)
    # a coarser frame step gives fewer windows
    assert len(load_dataset(swe_root, "train", frame_step=2)) == 2 * (5 - 2)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_normalization_uses_train_statistics_and_decodes_back(swe_root):
    raw = load_dataset(swe_root, "val", normalize=False)
    norm = load_dataset(swe_root, "val", verify=False)
    assert len(raw) == 4
    a, b = raw[2], norm[2]
    mean, std = norm.normalizer.stats(norm.input_names)
    torch.testing.assert_close(b.x, (a.x - mean) / std)
    torch.testing.assert_close(norm.decode_target(b.y), a.y, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(norm.encode_input(a.x), b.x)
    # normalized training inputs have zero mean and unit variance over the quadrature
    train = load_dataset(swe_root, "train", verify=False)
    xs = torch.stack([train[i].x for i in range(len(train))])  # [S, N, C]
    w = train[0].weights[None, :, None] / train[0].weights.sum()
    m = (xs * w).sum((0, 1)) / len(train)
    assert torch.allclose(m, torch.zeros(3), atol=0.3)
    assert norm.normalizer.fitted_on == "train"


def test_tensor_view_for_grid_models(swe_root, darcy_root):
    ds = load_dataset(swe_root, "train", target_steps=3)
    x, y = ds.tensor_view()[0]
    assert x.shape == (3, 16, 32) and y.shape == (3, 3, 16, 32)
    sample = ds[0]
    torch.testing.assert_close(x[1], sample.x[:, 1].reshape(16, 32))
    torch.testing.assert_close(y[2, 0], sample.y[:, 2, 0].reshape(16, 32))
    darcy = load_dataset(darcy_root, "train", normalize=False)
    assert len(darcy) == 3
    a, u = darcy.tensor_view()[1]
    traj = read_trajectory(sample_path(darcy_root, 1))
    np.testing.assert_array_equal(a[0].numpy(), traj.fields["permeability"][0].reshape(9, 9))
    np.testing.assert_array_equal(u[0].numpy(), traj.fields["pressure"][0].reshape(9, 9))
    assert float(u[0, 0].abs().max()) == 0.0  # boundary row x = 0
    with pytest.raises(ValueError, match="static"):
        load_dataset(darcy_root, "train", target_steps=2)


def test_missing_split_and_mismatched_card_are_clear_errors(darcy_root, tmp_path):
    with pytest.raises(DatasetError, match="split 'val' of dataset 'darcy' is empty"):
        load_dataset(darcy_root, "val")
    with pytest.raises(DatasetError, match="no split 'dev'"):
        load_dataset(darcy_root, "dev")
    with pytest.raises(DatasetError, match="no dataset folder"):
        load_dataset(tmp_path / "nothing")
    with pytest.raises(DatasetError, match="no field 'velocity'"):
        load_dataset(darcy_root, inputs=["velocity"])
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(darcy_root, copy)
    path = sample_path(copy, 2)
    data = bytearray(path.read_bytes())
    data[-2000] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="sample_000002.h5 does not match its SHA-256"):
        load_dataset(copy)
    path.write_bytes(bytes(data[:-10]))
    with pytest.raises(DatasetError, match="sample_000002.h5 has .* bytes"):
        load_dataset(copy, verify=False)


def test_attach_kernels_caches_per_geometry_and_batches(swe_root):
    from torch_geometric.loader import DataLoader

    transform = AttachKernels(local=dict(radius=0.5, kernel_shape=3))
    ds = load_dataset(swe_root, "train", transform=transform)
    a, b = ds[0], ds[3]
    assert a.local is b.local  # one geometry, one kernel
    assert a.local.kernel_size == 2 and int(a.local.num_dst_nodes) == 16 * 32  # 2 rings
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert isinstance(batch.local, list) and len(batch.local) == 3
    merged = batch_kernels(batch.local)
    assert merged.total_src == 3 * 16 * 32 and merged.edge_index.max() < 3 * 16 * 32
    # the kernel applied to the batch equals the kernel applied per sample
    per_sample = torch.cat([ds[i].local.responses(ds[i].x) for i in range(3)])
    torch.testing.assert_close(merged.responses(batch.x), per_sample)
    with pytest.raises(ValueError, match="at least one"):
        AttachKernels()


def test_attached_kernels_are_checked_against_the_batch(swe_root):
    """K28 where the clouds are known: kernels attached by AttachKernels are given to a layer
    with the batch, and refused for a batch of another geometry."""
    from torch_geometric.loader import DataLoader

    from geo_neuralop.geometry import sphere_grid
    from geo_neuralop.layers import DiscoConv

    transform = AttachKernels(local=dict(radius=0.5, kernel_shape=(3, 4)))
    ds = load_dataset(swe_root, "train", transform=transform)
    batch = next(iter(DataLoader(ds, batch_size=2)))
    conv = DiscoConv(ds[0].x.shape[1], 4, (3, 4), radius=0.5)
    torch.testing.assert_close(conv(batch.x, batch, kernel=batch.local), conv(batch.x, batch))
    other = [sphere_grid(16, 32, "legendre-gauss")] * 2  # same point count, other rule
    with pytest.raises(ValueError, match="another src geometry"):
        conv(batch.x, other, kernel=batch.local)


def _write_sphere_dataset(root, n_traj, nlat, n_frames, seed=0):
    """A rollout dataset of the shallow-water layout (random fields), written directly."""
    from geo_neuralop.data.dataset_card import compute_splits
    from geo_neuralop.data.generate import finalize_dataset
    from geo_neuralop.data.storage import Trajectory, grid_description, write_trajectory
    from geo_neuralop.geometry import sphere_grid

    grid = sphere_grid(nlat, 2 * nlat, "legendre-gauss", dtype=torch.float64)
    rng = np.random.default_rng(seed)
    for i in range(n_traj):
        fields = {name: rng.standard_normal((n_frames, grid.num_nodes)).astype(np.float32)
                  for name in ("height", "vorticity", "divergence")}
        traj = Trajectory(pos=grid.pos.numpy(), weights=grid.weights.numpy(), manifold="sphere",
                          times=np.arange(n_frames, dtype=np.float64), fields=fields,
                          grid=grid_description(grid), params={"index": i})
        write_trajectory(sample_path(root, i), traj, "swe", i, seed)
    manifest = {"generator": "swe", "parameters": {}, "seed": seed, "n_samples": n_traj,
                "splits": compute_splits(n_traj, (1.0, 0.0, 0.0))}
    finalize_dataset(root, manifest)
    return root


class _Growth(torch.utils.data.Dataset):
    """Reads a sample and reports how much this process's resident memory grew since its
    first read (which pays one-time costs: thread pools, the first file): ``(pid, bytes)``."""

    base: dict = {}

    def __init__(self, dataset, picks):
        self.dataset, self.picks = dataset, picks

    def __len__(self):
        return len(self.picks)

    @staticmethod
    def rss():
        import os

        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __getitem__(self, i):
        import os

        pid = os.getpid()
        sample = self.dataset[self.picks[i]]
        assert torch.isfinite(sample.x).all()
        self.base.setdefault(pid, self.rss())
        return torch.tensor([pid, self.rss() - self.base[pid]])


def _release_free_heap() -> None:
    """Give the heap's free pages back to the system (glibc), so that a forked worker's
    allocations show as growth of its resident memory instead of reusing pages the parent
    freed earlier (after other tests)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@pytest.mark.skipif(not __import__("pathlib").Path("/proc/self/statm").exists(),
                    reason="reads resident memory from /proc")
def test_streaming_reads_a_dataset_three_times_a_memory_cap_in_bounded_memory(tmp_path):
    """A 94 MB dataset, a 31 MB cap, two DataLoader workers each opening its own files:
    streaming keeps every worker's memory growth under the cap while reading windows of
    every trajectory; caching whole trajectories (the control) exceeds it."""
    from torch.utils.data import DataLoader

    root = _write_sphere_dataset(tmp_path / "big", n_traj=24, nlat=64, n_frames=40)
    total = 24 * 40 * 64 * 128 * 3 * 4
    cap = total // 3
    picks = list(range(0, 24 * 38, 7))  # windows spread over all trajectories
    growth = {}
    for stream in (True, False):
        _release_free_heap()  # forked workers would reuse the parent's freed pages unseen
        ds = load_dataset(root, "train", input_steps=2, verify=False, stream=stream,
                          cache_bytes=cap // 4 if stream else 4 * total)
        assert ds.stream is stream
        loader = DataLoader(_Growth(ds, picks), batch_size=4, num_workers=2)
        rows = torch.cat(list(loader))
        per_worker = {}
        for pid, grown in rows.tolist():
            per_worker[pid] = max(per_worker.get(pid, 0), grown)
        assert len(per_worker) == 2
        growth[stream] = max(per_worker.values())
    assert growth[True] < cap, growth
    assert growth[False] > cap, growth  # the measurement sees a dataset that is not streamed


def test_streamed_samples_equal_cached_samples(tmp_path):
    root = _write_sphere_dataset(tmp_path / "small", n_traj=3, nlat=8, n_frames=6)
    streamed = load_dataset(root, "train", input_steps=2, target_steps=2, stream=True)
    cached = load_dataset(root, "train", input_steps=2, target_steps=2, stream=False)
    assert len(streamed) == len(cached) == 3 * 3
    for i in range(len(cached)):
        a, b = streamed[i], cached[i]
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
        assert torch.equal(a.pos, b.pos) and a.frame_time == b.frame_time
        assert a.trajectory == b.trajectory and a.start == b.start
    auto = load_dataset(root, "train", cache_bytes=1000)
    assert auto.stream  # fields larger than the cache: streamed by default
    import pickle

    clone = pickle.loads(pickle.dumps(streamed))  # spawn-started workers get no open file
    assert torch.equal(clone[1].x, streamed[1].x)
