"""Sample files, dataset cards and normalizers: round trips and clear errors."""

import json

import numpy as np
import pytest
import torch
import yaml

from geo_neuralop.data.dataset_card import (
    compute_splits,
    file_entries,
    make_card,
    read_card,
    split_indices,
    verify_dataset,
    write_card,
)
from geo_neuralop.data.normalizers import FieldNormalizer
from geo_neuralop.data.storage import (
    DatasetError,
    Trajectory,
    grid_description,
    read_header,
    read_trajectory,
    remove_stale_temporaries,
    sample_indices,
    sample_path,
    write_mesh_vtu,
    write_trajectory,
)
from geo_neuralop.geometry import jittered_rectangle_mesh, sphere_grid


def _sphere_trajectory(frames=3):
    cloud = sphere_grid(6, 12, dtype=torch.float64)
    rng = np.random.default_rng(0)
    n = cloud.num_nodes
    return Trajectory(
        pos=cloud.pos.numpy(), weights=cloud.weights.numpy(), manifold="sphere",
        times=np.arange(frames) * 3600.0,
        fields={"height": 1e4 + rng.standard_normal((frames, n)),
                "vorticity": 1e-5 * rng.standard_normal((frames, n))},
        grid=grid_description(cloud), series={"energy": np.arange(5.0)},
        params={"initial_condition": "random"}, units={"height": "m"})


def _mesh_trajectory():
    cloud = jittered_rectangle_mesh((6, 4), seed=1, dtype=torch.float64)
    n = cloud.num_nodes
    t = np.linspace(0, 1, 4)
    x = cloud.pos.numpy()
    return Trajectory(
        pos=x, weights=cloud.weights.numpy(), manifold="euclidean", times=t,
        fields={"u": np.sin(t[:, None] + x[None, :, 0]), "p": np.cos(t[:, None] * x[None, :, 1])},
        faces=cloud.faces.numpy(), static={"node_type": np.arange(n) % 5},
        params={"reynolds": 100.0})


def test_round_trip_keeps_everything(tmp_path):
    traj = _sphere_trajectory()
    path = write_trajectory(tmp_path / "samples" / "sample_000003.h5", traj, "swe", 3, 42, "abc",
                            timing={"wall_seconds": 1.5})
    back = read_trajectory(path)
    np.testing.assert_array_equal(back.pos, traj.pos)
    np.testing.assert_array_equal(back.weights, traj.weights)
    for name in traj.fields:
        np.testing.assert_array_equal(back.fields[name], traj.fields[name].astype(np.float32))
    assert back.grid == traj.grid and back.params == traj.params
    np.testing.assert_array_equal(back.series["energy"], traj.series["energy"])
    assert back.units["height"] == "m"
    header = read_header(path)
    assert (header.generator, header.index, header.seed, header.wall_seconds) == (
        "swe", 3, 42, 1.5)
    assert header.num_frames == 3 and header.num_points == 72
    cloud = back.cloud()
    assert cloud.grid_shape == (6, 12) and cloud.grid == "equiangular"
    assert float(cloud.weights.sum()) == pytest.approx(4 * np.pi, rel=1e-6)
    assert sample_indices(tmp_path) == [3]
    only = read_trajectory(path, fields=["vorticity"])
    assert list(only.fields) == ["vorticity"]
    with pytest.raises(DatasetError, match="no field 'pressure'"):
        read_trajectory(path, fields=["pressure"])


def test_mesh_round_trip_and_vtu(tmp_path):
    import meshio

    traj = _mesh_trajectory()
    path = write_trajectory(tmp_path / "s.h5", traj, "cylinder", 0, 0)
    back = read_trajectory(path)
    np.testing.assert_array_equal(back.faces, traj.faces)
    np.testing.assert_array_equal(back.static["node_type"], traj.static["node_type"])
    assert back.cloud().faces.shape == traj.faces.shape
    vtu = write_mesh_vtu(tmp_path / "s.vtu", traj)
    mesh = meshio.read(vtu)
    np.testing.assert_allclose(mesh.point_data["u"], traj.fields["u"][-1])
    np.testing.assert_array_equal(mesh.cells_dict["triangle"], traj.faces)


def test_invalid_trajectory_is_not_written(tmp_path):
    traj = _sphere_trajectory()
    traj.fields["height"][1, 5] = np.nan
    target = tmp_path / "sample_000000.h5"
    with pytest.raises(ValueError, match="'height' is not finite at frame 1"):
        write_trajectory(target, traj, "swe", 0, 0)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary is left


def test_truncated_and_foreign_files_give_clear_errors(tmp_path):
    path = write_trajectory(tmp_path / "sample_000000.h5", _sphere_trajectory(), "swe", 0, 0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"sample_000000.h5.*truncated or corrupted"):
        read_trajectory(path)
    import h5py

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(DatasetError, match="not a geo_neuralop sample file"):
        read_header(other)
    with pytest.raises(DatasetError, match="missing sample file"):
        read_header(tmp_path / "nope.h5")


def test_stale_temporaries_are_removed_but_nothing_else(tmp_path):
    folder = tmp_path / "samples"
    folder.mkdir()
    (folder / ".sample_000001.abc123.tmp.h5").write_bytes(b"partial")
    (folder / "notes.txt").write_text("mine")
    removed = remove_stale_temporaries(tmp_path)
    assert [p.name for p in removed] == [".sample_000001.abc123.tmp.h5"]
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_splits():
    assert compute_splits(10) == {"train": [0, 8], "val": [8, 9], "test": [9, 10]}
    assert compute_splits(3) == {"train": [0, 1], "val": [1, 2], "test": [2, 3]}
    assert compute_splits(5, (1, 0, 0)) == {"train": [0, 5], "val": [5, 5], "test": [5, 5]}
    with pytest.raises(ValueError, match="no training sample"):
        compute_splits(2, (0.0, 0.5, 0.5))
    card = {"name": "d", "splits": compute_splits(5, (1, 0, 0))}
    assert split_indices(card, "train") == [0, 1, 2, 3, 4]
    with pytest.raises(DatasetError, match="split 'val' of dataset 'd' is empty"):
        split_indices(card, "val")
    with pytest.raises(DatasetError, match="has no split 'validation'"):
        split_indices(card, "validation")


def _write_small_dataset(root, n=3):
    for i in range(n):
        write_trajectory(sample_path(root, i), _sphere_trajectory(), "swe", i, 0)
    rel = [f"samples/sample_{i:06d}.h5" for i in range(n)]
    card = make_card("small", "swe", 0, n, {"nlat": 6}, compute_splits(n),
                     {"kind": "rollout", "inputs": ["height"], "targets": ["height"]},
                     {"height": {"units": "m"}}, file_entries(root, rel),
                     version_info={"geo_neuralop": "test"})
    write_card(root, card)
    return card


def test_card_round_trip_and_verification(tmp_path):
    card = _write_small_dataset(tmp_path)
    back = read_card(tmp_path)
    assert back["files"] == card["files"] and back["splits"] == card["splits"]
    assert verify_dataset(tmp_path)["n_samples"] == 3
    text = (tmp_path / "card.yaml").read_text()
    assert yaml.safe_load(text)["generator"] == "swe"


def test_verification_detects_truncation_corruption_and_missing_files(tmp_path):
    _write_small_dataset(tmp_path)
    path = sample_path(tmp_path, 1)
    original = path.read_bytes()
    # same size, one byte flipped in the middle (data, not metadata): only the hash sees it
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0xFF
    path.write_bytes(bytes(flipped))
    verify_dataset(tmp_path, checksums=False)
    with pytest.raises(DatasetError, match="sample_000001.h5 does not match its SHA-256"):
        verify_dataset(tmp_path)
    path.write_bytes(original[:-100])
    with pytest.raises(DatasetError, match="sample_000001.h5 has .* bytes, the card says"):
        verify_dataset(tmp_path, checksums=False)
    path.unlink()
    with pytest.raises(DatasetError, match="missing samples/sample_000001.h5"):
        verify_dataset(tmp_path)


def test_missing_or_broken_card(tmp_path):
    with pytest.raises(DatasetError, match="no dataset card"):
        read_card(tmp_path)
    (tmp_path / "generation.json").write_text("{}")
    with pytest.raises(DatasetError, match="interrupted: run the same"):
        read_card(tmp_path)
    (tmp_path / "card.yaml").write_text("format: [unclosed")
    with pytest.raises(DatasetError, match="not valid YAML"):
        read_card(tmp_path)
    (tmp_path / "card.yaml").write_text(yaml.safe_dump({"format": "geo_neuralop.dataset"}))
    with pytest.raises(DatasetError, match="lacks the keys"):
        read_card(tmp_path)


def test_normalizer_fit_equals_direct_weighted_statistics(tmp_path):
    rng = np.random.default_rng(1)
    samples = []
    for k in range(4):
        n = 10 + k  # different point counts, like meshes
        w = rng.uniform(0.5, 2.0, n)
        samples.append(({"u": 3.0 + 2.0 * rng.standard_normal((5, n)),
                         "c": np.full((5, n), 7.0)}, w))
    norm = FieldNormalizer.fit(samples, fitted_on="train")
    x = np.concatenate([s[0]["u"].ravel() for s in samples])
    w = np.concatenate([np.tile(s[1], 5) for s in samples])
    mean = (w * x).sum() / w.sum()
    std = np.sqrt((w * (x - mean) ** 2).sum() / w.sum())
    assert norm.mean["u"] == pytest.approx(mean, rel=1e-12)
    assert norm.std["u"] == pytest.approx(std, rel=1e-12)
    assert norm.std["c"] == 1.0  # a constant field: std replaced by 1
    assert norm.mean["c"] == pytest.approx(7.0, rel=1e-14)
    t = torch.tensor(x[:6].reshape(3, 2, 1).repeat(2, axis=-1))
    enc = norm.encode(t, ["u", "c"])
    torch.testing.assert_close(norm.decode(enc, ["u", "c"]), t)
    back = FieldNormalizer.load(norm.save(tmp_path / "normalizer.json"))
    assert back.mean == norm.mean and back.std == norm.std and back.fitted_on == "train"
    with pytest.raises(ValueError, match="no statistics for"):
        norm.encode(t, ["u", "v"])
    with pytest.raises(ValueError, match="3 channels along dim 0"):
        norm.encode(t, ["u", "c"], dim=0)
    (tmp_path / "bad.json").write_text(json.dumps({"format": "x"}))
    with pytest.raises(ValueError, match="not a readable normalizer"):
        FieldNormalizer.load(tmp_path / "bad.json")
