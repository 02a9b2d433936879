"""PDEBench 2D files (Darcy, incompressible NS, shallow water) in the layouts PDEBench's code
writes: every value lands on its grid point (analytic fields of the stored coordinates), the
datasets load and train, the imports stream, and bad files are refused naming what is wrong."""

import tracemalloc

import h5py
import numpy as np
import pytest
import yaml

from geo_neuralop.cli import main
from geo_neuralop.data import DatasetError, load_dataset, verify_dataset
from geo_neuralop.data.importers import import_pdebench, read_pdebench_file


def centres(n, length=1.0):
    return (np.arange(n) + 0.5) * length / n


def analytic(x, y, shift):
    """``x + 2 y + shift`` on the grid of coordinates ``x``, ``y`` (``[X, Y]``, 'ij')."""
    gx, gy = np.meshgrid(x, y, indexing="ij")
    return gx + 2 * gy + shift


def write_darcy(path, b=6, nx=12, ny=10, nu_shape=None):
    """As PDEBench's Data_Merge.py writes 2D_DarcyFlow files."""
    x, y = centres(nx), centres(ny)
    with h5py.File(path, "w") as f:
        nu = np.stack([analytic(x, y, i) for i in range(b)]).astype("f4")
        f.create_dataset("nu", data=nu if nu_shape is None else np.zeros(nu_shape, "f4"))
        f.create_dataset("tensor", data=(-nu)[:, None])
        f.create_dataset("x-coordinate", data=x.astype("f4"))
        f.create_dataset("y-coordinate", data=y.astype("f4"))
    return x, y


def write_ns(path, b=4, t=6, nx=8, ny=8, latest=None):
    """As PDEBench's data_io.h5_for / sim_ns_incomp_2d write incompressible NS files."""
    x, y = centres(nx, 2.0), centres(ny, 1.0)
    frames = np.stack([[analytic(x, y, 10 * i + k) for k in range(t)] for i in range(b)])
    with h5py.File(path, "w") as f:
        f.attrs["config"] = yaml.safe_dump({"domain_size": [2.0, 1.0], "grid_size": [nx, ny],
                                            "NU": 0.01})
        f.attrs["latestIndex"] = t - 1 if latest is None else latest
        f.create_dataset("velocity", data=np.stack([frames, -frames], -1).astype("f4"),
                         chunks=(1, 1, nx, ny, 2))
        f.create_dataset("particles", data=(2 * frames)[..., None].astype("f4"),
                         chunks=(1, 1, nx, ny, 1))
        f.create_dataset("force", data=np.stack([frames[:, 0], frames[:, 0] + 1], -1)
                         .astype("f4"))
        f.create_dataset("t", data=np.tile(0.01 * np.arange(t), (b, 1)).astype("f4"))
    return x, y


def write_swe(path, seeds=5, t=4, nx=8, ny=6):
    """As PDEBench's sim_radial_dam_break.save_state_to_disk writes 2D_rdb files."""
    x, y = centres(nx, 5.0) - 2.5, centres(ny, 5.0) - 2.5
    with h5py.File(path, "w") as f:
        for s in range(seeds):
            key = str(s).zfill(4)
            h = np.stack([analytic(x, y, 100 * s + k) for k in range(t)])[..., None]
            f.create_dataset(f"{key}/data", data=h, dtype="f")
            f.create_dataset(f"{key}/grid/x", data=x, dtype="f")
            f.create_dataset(f"{key}/grid/y", data=y, dtype="f")
            f.create_dataset(f"{key}/grid/t", data=np.linspace(0, 1, t), dtype="f")
    return x, y


def test_darcy_samples_land_on_their_grid_points_and_train(tmp_path):
    write_darcy(tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5")
    card = import_pdebench(tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5", tmp_path / "darcy")
    card = verify_dataset(tmp_path / "darcy")
    assert card["generator"] == "import:pdebench" and card["parameters"]["layout"] == "darcy"
    assert card["task"] == {"kind": "static", "inputs": ["nu"], "targets": ["u"]}
    train = load_dataset(tmp_path / "darcy", "train", normalize=False)
    for i in range(6):
        traj = train.trajectory(i)
        expected = traj.pos[:, 0] + 2 * traj.pos[:, 1] + i
        np.testing.assert_allclose(traj.fields["nu"][0], expected, atol=1e-5)
        np.testing.assert_allclose(traj.fields["u"][0], -expected, atol=1e-5)
    cloud = train.cloud(0)
    assert tuple(cloud.grid_shape) == (12, 10) and cloud.periodic == (False, False)
    # cell centres are the nodes: the first and last are half a cell inside the unit box
    np.testing.assert_allclose(cloud.domain, ((1 / 24, 1 - 1 / 24), (1 / 20, 1 - 1 / 20)))
    x, y = train.tensor_view()[0]
    assert tuple(x.shape) == (1, 12, 10) and tuple(y.shape) == (1, 12, 10)

    from geo_neuralop.training.experiment import run_experiment

    cfg = {"data": {"path": str(tmp_path / "darcy")},
           "model": {"name": "fno", "n_modes": [4, 4], "hidden_channels": 8, "n_layers": 1},
           "trainer": {"epochs": 1, "batch_size": 2, "progress": False, "device": "cpu"},
           "evaluation": {"device": "cpu", "prediction_files": 0}}
    result = run_experiment(cfg, tmp_path / "run")
    assert np.isfinite(result["history"][-1]["train_loss"])


def test_ns_fields_force_times_and_the_latest_index(tmp_path):
    write_ns(tmp_path / "ns_incom_inhom_2d_512-0.h5", latest=4)  # frame 5 never written
    meta = read_pdebench_file(tmp_path / "ns_incom_inhom_2d_512-0.h5")
    assert meta.layout == "ns" and meta.n_frames == 5 and meta.count == 4
    import_pdebench(tmp_path / "ns_incom_inhom_2d_512-0.h5", tmp_path / "ns")
    card = verify_dataset(tmp_path / "ns")
    assert card["task"]["inputs"] == ["velocity_x", "velocity_y", "particles"]
    ds = load_dataset(tmp_path / "ns", "train", normalize=False)
    cloud = ds.cloud(0)
    np.testing.assert_allclose(cloud.domain, ((1 / 8, 2 - 1 / 8), (1 / 16, 1 - 1 / 16)))
    for i in range(4):
        traj = ds.trajectory(i)
        base = traj.pos[:, 0] + 2 * traj.pos[:, 1] + 10 * i
        for k in range(5):
            np.testing.assert_allclose(traj.fields["velocity_x"][k], base + k, atol=1e-4)
            np.testing.assert_allclose(traj.fields["velocity_y"][k], -(base + k), atol=1e-4)
            np.testing.assert_allclose(traj.fields["particles"][k], 2 * (base + k), atol=1e-4)
        np.testing.assert_allclose(traj.static["force_x"], base, atol=1e-4)
        np.testing.assert_allclose(traj.static["force_y"], base + 1, atol=1e-4)
        np.testing.assert_allclose(traj.times, 0.01 * np.arange(5), atol=1e-7)


def test_swe_seed_groups_through_the_command_line(tmp_path):
    write_swe(tmp_path / "2D_rdb_NA_NA.h5")
    rc = main(["import", "pdebench", str(tmp_path / "2D_rdb_NA_NA.h5"), "--out",
               str(tmp_path / "rdb"), "--max-samples", "4"])
    assert rc == 0
    card = verify_dataset(tmp_path / "rdb")
    assert card["n_samples"] == 4 and card["parameters"]["samples_in_file"] == 5
    ds = load_dataset(tmp_path / "rdb", "train", normalize=False)
    for i in range(4):
        traj = ds.trajectory(i)
        assert traj.params["seed"] == str(i).zfill(4)
        for k in range(4):
            np.testing.assert_allclose(traj.fields["h"][k], traj.pos[:, 0] + 2 * traj.pos[:, 1]
                                       + 100 * i + k, atol=1e-4)


def test_bad_files_name_the_file_the_dataset_and_the_shape(tmp_path):
    path = tmp_path / "darcy.hdf5"
    write_darcy(path, nu_shape=(6, 12, 11))
    with pytest.raises(DatasetError) as info:
        read_pdebench_file(path)
    assert str(info.value) == (f"{path}: dataset 'nu' has shape (6, 12, 11), expected "
                               f"[B, X, Y] = [6, 12, 10] (X, Y from x-coordinate, y-coordinate)")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("density", data=np.zeros(3))
    with pytest.raises(DatasetError, match="follows none of the PDEBench 2D layouts"):
        read_pdebench_file(tmp_path / "other.h5")
    with pytest.raises(DatasetError, match="missing dataset 'nu'"):
        read_pdebench_file(tmp_path / "other.h5", layout="darcy")
    write_ns(tmp_path / "ns.h5")
    with h5py.File(tmp_path / "ns.h5", "a") as f:
        del f["force"]
        f.create_dataset("force", data=np.zeros((4, 8, 7, 2)))
    with pytest.raises(DatasetError, match=r"'force' has shape \(4, 8, 7, 2\), expected "
                                           r"\[B, X, Y, 2\] = \[4, 8, 8, 2\]"):
        read_pdebench_file(tmp_path / "ns.h5")
    rc = main(["import", "pdebench", str(tmp_path / "other.h5"), "--out", str(tmp_path / "o")])
    assert rc == 2 and not (tmp_path / "o" / "card.yaml").exists()


def test_darcy_import_streams_one_sample_at_a_time(tmp_path):
    """The import's peak memory does not grow with the file: 20 and 80 samples of 80 x 80."""
    peaks = []
    for count in (20, 80):
        write_darcy(tmp_path / f"d{count}.hdf5", b=count, nx=80, ny=80)
        tracemalloc.start()
        import_pdebench(tmp_path / f"d{count}.hdf5", tmp_path / f"ds{count}")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    data_bytes = 80 * 80 * 80 * 2 * 4
    assert peaks[1] < 1.2 * peaks[0] and peaks[1] < data_bytes / 2, (peaks, data_bytes)
