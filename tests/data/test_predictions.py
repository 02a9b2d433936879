"""Prediction files: round trip, and clear errors for bad or damaged files."""

import h5py
import numpy as np
import pytest
import torch

from geo_neuralop.data import load_predictions, save_predictions
from geo_neuralop.geometry import perforated_rectangle_mesh, sphere_grid


def _fields(cloud, frames=3):
    pos = cloud.pos.double()
    t = torch.arange(frames, dtype=torch.float64)[:, None]
    truth = torch.stack([torch.sin(pos[:, 0] + t), torch.cos(pos[:, 1] - t)], dim=-1)
    return truth, truth + 0.01 * t[..., None]


@pytest.mark.parametrize("make", [lambda: perforated_rectangle_mesh(0.06),
                                  lambda: sphere_grid(8, 16, "equiangular")],
                         ids=["mesh", "equiangular"])
def test_round_trip(make, tmp_path):
    cloud = make()
    truth, prediction = _fields(cloud)
    path = save_predictions(tmp_path / "p.h5", cloud, truth, prediction, ["u", "v"],
                            times=[0.0, 0.5, 1.0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.h5"]
    back = load_predictions(path)
    assert back.field_names == ["u", "v"] and back.cloud.manifold == cloud.manifold
    np.testing.assert_allclose(back.times, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(back.truth, truth.numpy(), rtol=1e-6)  # stored as float32
    np.testing.assert_allclose(back.prediction, prediction.numpy(), rtol=1e-6)
    torch.testing.assert_close(back.cloud.pos.double(), cloud.pos.double())
    torch.testing.assert_close(back.cloud.weights.double(), cloud.weights.double())
    if getattr(cloud, "faces", None) is not None:
        assert torch.equal(back.cloud.faces, cloud.faces)
    else:
        assert back.cloud.grid_shape == (8, 16) and back.cloud.grid == "equiangular"
    u_truth, u_pred = back.field("u")
    np.testing.assert_allclose(u_pred - u_truth, 0.01 * np.arange(3)[:, None] + 0 * u_truth,
                               atol=1e-6)
    with pytest.raises(ValueError, match="unknown field 'p'"):
        back.field("p")


def test_single_frame_and_shape_errors(tmp_path):
    cloud = perforated_rectangle_mesh(0.06)
    truth, prediction = _fields(cloud, frames=1)
    back = load_predictions(save_predictions(tmp_path / "one.h5", cloud, truth[0], prediction[0],
                                             ["u", "v"]))
    assert back.truth.shape == (1, cloud.num_nodes, 2) and back.times.tolist() == [0.0]
    n = cloud.num_nodes
    with pytest.raises(ValueError, match=f"truth has {n - 1} points but the cloud has {n}"):
        save_predictions(tmp_path / "x.h5", cloud, truth[:, :-1], prediction, ["u", "v"])
    with pytest.raises(ValueError, match="3 channels but 2 field names"):
        save_predictions(tmp_path / "x.h5", cloud, torch.zeros(1, n, 3), torch.zeros(1, n, 3),
                         ["u", "v"])
    with pytest.raises(ValueError, match="differ in shape"):
        save_predictions(tmp_path / "x.h5", cloud, truth, torch.cat([prediction] * 2), ["u", "v"])
    with pytest.raises(ValueError, match=r"times has shape \(2,\)"):
        save_predictions(tmp_path / "x.h5", cloud, truth, prediction, ["u", "v"], times=[0, 1])
    assert not (tmp_path / "x.h5").exists()


def test_damaged_and_foreign_files(tmp_path):
    cloud = perforated_rectangle_mesh(0.06)
    truth, prediction = _fields(cloud)
    good = save_predictions(tmp_path / "good.h5", cloud, truth, prediction, ["u", "v"])
    with pytest.raises(FileNotFoundError, match="no prediction file"):
        load_predictions(tmp_path / "missing.h5")
    data = good.read_bytes()
    (tmp_path / "truncated.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        load_predictions(tmp_path / "truncated.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        load_predictions(tmp_path / "text.h5")
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(ValueError, match="not a geo_neuralop prediction file"):
        load_predictions(tmp_path / "foreign.h5")
    with h5py.File(good, "a") as f:
        del f["times"]
        f["times"] = np.zeros(5)
    with pytest.raises(ValueError, match=r"truth has shape \(3, \d+, 2\), expected \(5,"):
        load_predictions(good)


@pytest.mark.parametrize("value, message", [
    ('["u", "v"', r"the attribute field_names is not valid JSON"),
    ('{"u": 1}', r"the attribute field_names must be a JSON list of strings"),
])
def test_broken_field_names_name_the_file_and_attribute(tmp_path, value, message):
    """R14: broken JSON in field_names surfaced as "Expecting ',' delimiter: line 1 ..." with
    neither the file nor the attribute named."""
    cloud = perforated_rectangle_mesh(0.06)
    truth, prediction = _fields(cloud)
    path = save_predictions(tmp_path / "p.h5", cloud, truth, prediction, ["u", "v"])
    with h5py.File(path, "a") as f:
        f.attrs["field_names"] = value
    with pytest.raises(ValueError, match=f"{path}: {message}"):
        load_predictions(path)


def test_a_folder_is_not_a_prediction_file(tmp_path):
    """R20: a directory was reported as 'not a readable HDF5 file (truncated or corrupted?)'
    with a raw HDF5 errno dump."""
    with pytest.raises(ValueError, match=f"^{tmp_path} is a folder, not a prediction file"):
        load_predictions(tmp_path)
