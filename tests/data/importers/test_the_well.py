"""The Well: files we write are loaded by the_well's own WellDataset (shapes, field names, values,
normalization, boundary codes), files in its layout (written by the_well's own dummy-data writer,
and a spherical file written as its docs describe) are read by ours, with values checked against
h5py reads of the same file."""

import tracemalloc

import h5py
import numpy as np
import pytest
import torch
import yaml

from geo_neuralop.data import DatasetError, generate_dataset, load_dataset
from geo_neuralop.data.importers import export_well, import_well, latitude_rule, read_well_file
from tests.geometry.sph_harm import real_sph_harm_matrix

the_well = pytest.importorskip("the_well")
from the_well.data.datasets import WellDataset  # noqa: E402
from the_well.data.normalization import ZScoreNormalization  # noqa: E402
from the_well.utils.dummy_data import write_dummy_data  # noqa: E402


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    """Tiny datasets of ours: NS-2D (periodic 16x16, 5 frames) and SWE (8x16 sphere, 4 frames)."""
    root = tmp_path_factory.mktemp("ours")
    generate_dataset("ns2d", root / "ns", n_samples=5, params={"resolution": 16, "n_frames": 5},
                     progress=False, log=None)
    generate_dataset("swe", root / "swe", n_samples=3, params={"nlat": 8, "n_frames": 4},
                     progress=False, log=None)
    export_well(root / "ns", root / "ns_well")
    export_well(root / "swe", root / "swe_well")
    return root


def frames(root, index, names):
    traj = load_dataset(root, "train", normalize=False, verify=False).trajectory(index)
    return np.stack([traj.fields[n] for n in names], axis=-1), traj  # [T, N, C]


@pytest.mark.parametrize("name, split, shape", [("ns", "train", (16, 16)),
                                                ("ns", "test", (16, 16)),
                                                ("swe", "train", (8, 16))])
def test_the_wells_own_dataset_class_loads_our_export(ours, name, split, shape):
    ds = WellDataset(path=str(ours / f"{name}_well"), well_split_name=split, n_steps_input=2,
                     n_steps_output=1)
    card = yaml.safe_load((ours / name / "card.yaml").read_text())
    names = card["task"]["inputs"]
    assert ds.metadata.field_names[0] == names
    assert tuple(ds.metadata.spatial_resolution) == shape
    lo, hi = card["splits"]["val" if split == "valid" else split]
    n_frames = card["statistics"]["frames_per_sample"]
    windows = n_frames - 2
    assert len(ds) == (hi - lo) * windows
    last = hi - lo - 1
    item = ds[last * windows + 1]  # the split's last trajectory, window from frame 1
    assert tuple(item["input_fields"].shape) == (2, *shape, len(names))
    assert tuple(item["output_fields"].shape) == (1, *shape, len(names))
    raw, traj = frames(ours / name, lo + last, names)
    expected = raw.reshape(n_frames, *shape, len(names))
    np.testing.assert_array_equal(item["input_fields"].numpy(), expected[1:3])
    np.testing.assert_array_equal(item["output_fields"].numpy(), expected[3:4])
    grid = item["space_grid"].numpy().reshape(-1, 2)
    if name == "ns":  # x, y of our grid points; periodic boundaries (code 2) on both axes
        np.testing.assert_allclose(grid, traj.pos, atol=1e-6)
        assert item["boundary_conditions"].tolist() == [[2, 2], [2, 2]]
    else:  # theta = colatitude, phi = longitude of our sphere points
        colat = np.arccos(np.clip(traj.pos[:, 2], -1, 1))
        lon = np.mod(np.arctan2(traj.pos[:, 1], traj.pos[:, 0]), 2 * np.pi)
        np.testing.assert_allclose(grid[:, 0], colat, atol=1e-6)
        pole = np.isclose(np.abs(traj.pos[:, 2]), 1.0)
        np.testing.assert_allclose(grid[~pole, 1], lon[~pole], atol=1e-6)


def test_our_stats_normalize_the_wells_samples(ours):
    stats = yaml.safe_load((ours / "ns_well" / "stats.yaml").read_text())
    card = yaml.safe_load((ours / "ns" / "card.yaml").read_text())
    lo, hi = card["splits"]["train"]
    train = np.concatenate([frames(ours / "ns", i, ["vorticity"])[0].reshape(-1)
                            for i in range(lo, hi)]).astype(np.float64)
    assert stats["mean"]["vorticity"] == pytest.approx(train.mean(), rel=1e-9, abs=1e-12)
    assert stats["std"]["vorticity"] == pytest.approx(train.std(), rel=1e-9)
    ds = WellDataset(path=str(ours / "ns_well"), well_split_name="train", n_steps_input=1,
                     n_steps_output=1, use_normalization=True,
                     normalization_type=ZScoreNormalization)
    raw = WellDataset(path=str(ours / "ns_well"), well_split_name="train", n_steps_input=1,
                      n_steps_output=1)
    np.testing.assert_allclose(ds[0]["input_fields"].numpy(),
                               (raw[0]["input_fields"].numpy() - train.mean()) / train.std(),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["ns", "swe"])
def test_export_then_import_gives_back_our_dataset(ours, tmp_path, name):
    import_well(ours / f"{name}_well", tmp_path / "back")
    a = yaml.safe_load((ours / name / "card.yaml").read_text())
    b = yaml.safe_load((tmp_path / "back" / "card.yaml").read_text())
    assert b["splits"] == a["splits"] and b["task"]["inputs"] == a["task"]["inputs"]
    assert b["geometry"]["shape"] == a["geometry"]["shape"]
    for i in range(a["n_samples"]):
        x = load_dataset(ours / name, "train", verify=False).trajectory(i)
        y = load_dataset(tmp_path / "back", "train", verify=False).trajectory(i)
        for field in x.fields:
            np.testing.assert_array_equal(x.fields[field], y.fields[field])
        np.testing.assert_allclose(x.pos, y.pos, atol=1e-12)
        np.testing.assert_allclose(x.weights, y.weights, rtol=1e-12)
        np.testing.assert_allclose(x.times, y.times, rtol=1e-6)


def test_a_file_from_the_wells_own_writer_is_read_by_ours(tmp_path):
    write_dummy_data(str(tmp_path / "dummy.hdf5"))
    meta = read_well_file(tmp_path / "dummy.hdf5")
    assert meta.field_names == ["field_x", "field_y"]
    assert meta.grid["periodic"] == [True, True] and meta.spatial_shape == (32, 32)
    card = import_well(tmp_path / "dummy.hdf5", tmp_path / "ds")
    card = yaml.safe_load(card.read_text())
    assert card["generator"] == "import:the_well" and card["n_samples"] == 2
    assert card["task"] == {"kind": "rollout", "inputs": ["field_x", "field_y"],
                            "targets": ["field_x", "field_y"], "conditioning": ["a", "b"]}
    with h5py.File(tmp_path / "dummy.hdf5", "r") as f:
        field = f["t1_fields/field"][()]
        constant = f["t0_fields/constant_field"][()]
        x, y = f["dimensions/x"][()], f["dimensions/y"][()]
        scalar = f["scalars/time_varying_scalar"][()]
    for i in range(2):
        traj = load_dataset(tmp_path / "ds", "train", verify=False).trajectory(i)
        np.testing.assert_array_equal(traj.fields["field_x"], field[i, ..., 0].reshape(10, -1))
        np.testing.assert_array_equal(traj.fields["field_y"], field[i, ..., 1].reshape(10, -1))
        np.testing.assert_allclose(traj.static["constant_field"], constant[i].reshape(-1))
        np.testing.assert_allclose(traj.series["time_varying_scalar"], scalar)
        assert traj.params["a"] == 0.25 and traj.params["b"] == 0.75
    gx, gy = np.meshgrid(x, y, indexing="ij")
    np.testing.assert_allclose(traj.pos, np.stack([gx.ravel(), gy.ravel()], 1), atol=1e-7)


def write_sphere_file(path, nlat=12, nlon=24, n_traj=2, n_steps=3, rule="legendre-gauss",
                      extra=None):
    """A spherical file in The Well's documented layout (as planetswe's: theta, phi)."""
    lat, _ = latitude_rule(rule, nlat)
    theta, phi = np.radians(90.0 - lat), 2 * np.pi * np.arange(nlon) / nlon
    th, ph = np.meshgrid(theta, phi, indexing="ij")
    pos = np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)], -1)
    y = real_sph_harm_matrix(pos.reshape(-1, 3), 3).reshape(nlat, nlon, -1)
    height = np.stack([[2.0 + t + y[..., 5] * (b + 1) for t in range(n_steps)]
                       for b in range(n_traj)])
    velocity = np.stack([height, -height], axis=-1)
    with h5py.File(path, "w") as f:
        f.attrs.update({"dataset_name": "planet", "grid_type": "equiangular",
                        "n_spatial_dims": 2, "n_trajectories": n_traj,
                        "simulation_parameters": []})
        dims = f.create_group("dimensions")
        dims.attrs["spatial_dims"] = ["theta", "phi"]
        dims.create_dataset("time", data=np.arange(n_steps, dtype="f4")).attrs[
            "sample_varying"] = False
        for name, values in (("theta", theta), ("phi", phi)):
            d = dims.create_dataset(name, data=values.astype("f4"))
            d.attrs.update({"sample_varying": False, "time_varying": False})
        bcs = f.create_group("boundary_conditions")
        for key, dim, kind in (("phi_periodic", "phi", "PERIODIC"), ("theta_open", "theta",
                                                                       "OPEN")):
            g = bcs.create_group(key)
            g.attrs.update({"associated_dims": [dim], "bc_type": kind, "associated_fields": [],
                            "sample_varying": False, "time_varying": False})
            g.create_dataset("mask", data=np.ones(len(theta if dim == "theta" else phi), bool))
        f.create_group("scalars").attrs["field_names"] = []
        t0 = f.create_group("t0_fields")
        t0.attrs["field_names"] = ["height"]
        t0.create_dataset("height", data=(extra or {}).get("height", height).astype("f4")
                          ).attrs.update({"time_varying": True, "sample_varying": True,
                                          "dim_varying": [True, True]})
        t1 = f.create_group("t1_fields")
        t1.attrs["field_names"] = ["velocity"]
        t1.create_dataset("velocity", data=velocity.astype("f4")).attrs.update(
            {"time_varying": True, "sample_varying": True, "dim_varying": [True, True]})
        f.create_group("t2_fields").attrs["field_names"] = []
    return height


def test_a_spherical_file_in_the_documented_layout_is_read_by_ours(tmp_path):
    height = write_sphere_file(tmp_path / "planet.hdf5")
    meta = read_well_file(tmp_path / "planet.hdf5")
    assert meta.field_names == ["height", "velocity_theta", "velocity_phi"]
    assert meta.grid["grid"] == "legendre-gauss" and meta.manifold == "sphere"
    import_well(tmp_path / "planet.hdf5", tmp_path / "ds")
    traj = load_dataset(tmp_path / "ds", "train", verify=False).trajectory(1)
    np.testing.assert_array_equal(traj.fields["height"], height[1].reshape(3, -1)
                                  .astype(np.float32))
    np.testing.assert_array_equal(traj.fields["velocity_phi"], -traj.fields["height"])
    # the Gaussian weights integrate the stored harmonics exactly: int (2 + t + 2 Y) = 4 pi (2+t)
    integrals = (traj.fields["height"].astype(np.float64) * traj.weights).sum(axis=1)
    np.testing.assert_allclose(integrals, 4 * np.pi * (2.0 + np.arange(3)), rtol=1e-6)
    cloud = load_dataset(tmp_path / "ds", "train", verify=False).cloud(0)
    assert cloud.grid == "legendre-gauss" and tuple(cloud.grid_shape) == (12, 24)


def test_layout_errors_name_the_file_the_dataset_and_the_shape(tmp_path):
    path = tmp_path / "bad.hdf5"
    write_sphere_file(path, extra={"height": np.zeros((2, 3, 12, 23))})
    with pytest.raises(DatasetError) as info:
        read_well_file(path)
    message = str(info.value)
    assert str(path) in message and "'t0_fields/height'" in message
    assert "has shape (2, 3, 12, 23), expected (2, 3, 12, 24)" in message
    with h5py.File(tmp_path / "partial.hdf5", "w") as f:
        f.create_group("dimensions")
    with pytest.raises(DatasetError, match="partial.hdf5: lacks the group 'scalars'"):
        read_well_file(tmp_path / "partial.hdf5")
    with pytest.raises(DatasetError, match="no Well file or folder"):
        import_well(tmp_path / "nothing", tmp_path / "out")


def test_mesh_datasets_are_refused_by_the_export(tmp_path):
    from geo_neuralop.data.importers import write_dataset
    from geo_neuralop.data.storage import Trajectory
    from geo_neuralop.geometry import jittered_rectangle_mesh

    mesh = jittered_rectangle_mesh((6, 5), seed=0)
    pos, faces = mesh.pos.double().numpy(), mesh.faces.numpy()
    samples = [Trajectory(pos, mesh.weights.double().numpy(), "euclidean", np.arange(3.0),
                          {"u": np.ones((3, len(pos)))}, faces=faces) for _ in range(3)]
    write_dataset(tmp_path / "mesh", iter(samples), 3, source="test", description="",
                  task={"kind": "rollout", "inputs": ["u"], "targets": ["u"]},
                  fields={"u": {"units": "", "description": ""}}, parameters={})
    with pytest.raises(DatasetError, match="meshes cannot be exported"):
        export_well(tmp_path / "mesh", tmp_path / "out")


def test_import_streams_one_trajectory_at_a_time(tmp_path):
    """Peak memory of an import stays far below the file's data (40 trajectories, 7 MB)."""
    write_sphere_file(tmp_path / "big.hdf5", nlat=48, nlon=96, n_traj=40, n_steps=5)
    data_bytes = 40 * 5 * 48 * 96 * 3 * 4
    torch.set_num_threads(1)
    tracemalloc.start()
    import_well(tmp_path / "big.hdf5", tmp_path / "ds")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < data_bytes / 4, (peak, data_bytes)
