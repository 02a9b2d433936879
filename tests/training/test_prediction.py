"""``geo-neuralop predict`` and ``geo_neuralop.predict``: a mesh model trained here predicts on a
mesh it never saw (VTU in, VTU/PVD/HDF5 out, read back by meshio), matching the model applied by
hand and beating persistence against the exact dynamics; a sphere model on NetCDF; every input
problem reported by name."""

import warnings

import meshio
import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

import geo_neuralop
from geo_neuralop.cli import main
from geo_neuralop.data import read_trajectory
from geo_neuralop.data.importers import write_dataset
from geo_neuralop.data.storage import Trajectory
from geo_neuralop.geometry import jittered_rectangle_mesh
from geo_neuralop.training.adapters import DataSpec
from geo_neuralop.training.evaluation import load_trained_model
from geo_neuralop.training.experiment import run_experiment
from geo_neuralop.training.prediction import PredictionWarning, predict

DOMAIN = ((0.0, 2.0), (0.0, 1.0))


def initial(pos, amplitude):
    return amplitude * np.sin(np.pi * pos[:, 0]) * np.cos(np.pi * pos[:, 1])


def boundary(pos):
    x, y = pos[:, 0], pos[:, 1]
    return ((np.isclose(x, 0) | np.isclose(x, 2) | np.isclose(y, 0) | np.isclose(y, 1))
            .astype(np.int64))


def decay_trajectory(seed, rate, amplitude, frames=5, shape=(12, 8)):
    """Fields u, v = -u on a jittered mesh, decaying exactly by ``rate`` per frame."""
    mesh = jittered_rectangle_mesh(shape, DOMAIN, seed=seed, dtype=torch.float64)
    pos = mesh.pos.numpy()
    u = np.stack([initial(pos, amplitude) * rate**k for k in range(frames)])
    return Trajectory(pos, mesh.weights.numpy(), "euclidean", 0.1 * np.arange(frames),
                      {"u": u, "v": -u}, faces=mesh.faces.numpy(),
                      static={"node_type": boundary(pos)},
                      params={"rate": rate, "amplitude": amplitude},
                      units={"u": "m/s", "v": "m/s"})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """MeshNO trained (15 epochs) on 8 decaying trajectories (rates 0.4-0.6), 8 meshes."""
    root = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(0)
    samples = [decay_trajectory(seed, float(rng.uniform(0.4, 0.6)), float(rng.uniform(0.5, 1.5)))
               for seed in range(8)]
    write_dataset(root / "decay", iter(samples), 8, source="test", description="decay",
                  task={"kind": "rollout", "inputs": ["u", "v"], "targets": ["u", "v"],
                        "conditioning": ["rate"]},
                  fields={"u": {"units": "m/s", "description": ""},
                          "v": {"units": "m/s", "description": ""}},
                  parameters={}, split_fractions=(0.75, 0.25, 0.0))
    cfg = {"data": {"path": str(root / "decay"), "val_split": None},
           "model": {"name": "mesh_no", "latent_shape": [8, 8], "hidden_channels": 16,
                     "n_layers": 1, "n_modes": [4, 4]},
           "trainer": {"epochs": 15, "batch_size": 4, "lr": 1e-2, "progress": False,
                       "device": "cpu", "seed": 0},
           "evaluation": {"after_training": False}}
    run = run_experiment(cfg, root / "run")
    unseen = decay_trajectory(seed=99, rate=0.5, amplitude=1.2, shape=(15, 9))
    points = np.column_stack([unseen.pos, np.zeros(len(unseen.pos))])
    vtu = root / "unseen.vtu"
    meshio.write(vtu, meshio.Mesh(points, [("triangle", unseen.faces)], point_data={
        "u": unseen.fields["u"][0], "v": unseen.fields["v"][0],
        "node_type": unseen.static["node_type"]}))
    return {"root": root, "run": root / "run", "vtu": vtu, "unseen": unseen,
            "history": run["history"]}


def by_hand(run, unseen, rate):
    """One step of the trained model applied by hand (normalize, features, model, decode)."""
    model, experiment = load_trained_model(run)
    spec = DataSpec.from_dict(experiment["data"])
    norm = spec.normalizer_object()
    pos = torch.as_tensor(unseen.pos, dtype=torch.float32)
    x = norm.encode(torch.tensor(np.stack([unseen.fields["u"][0], unseen.fields["v"][0]], -1),
                                 dtype=torch.float32), ["u", "v"])
    cond = (rate - spec.conditioning_mean[0]) / spec.conditioning_std[0]
    onehot = torch.nn.functional.one_hot(torch.as_tensor(unseen.static["node_type"]),
                                         spec.node_types).float()
    features = torch.cat([x, torch.full((len(pos), 1), cond), onehot], dim=1)
    cloud = geo_neuralop.PointCloud(pos, torch.as_tensor(unseen.weights, dtype=torch.float32),
                                    faces=torch.as_tensor(unseen.faces))
    with torch.no_grad():
        out = model(Batch.from_data_list([cloud]), x=features) + x
    return norm.decode(out, ["u", "v"]).numpy()


def test_cli_predicts_on_an_unseen_mesh_and_writes_vtu(trained, tmp_path):
    assert trained["history"][-1]["train_loss"] < 0.5 * trained["history"][0]["train_loss"]
    out = tmp_path / "pred.vtu"
    rc = main(["predict", str(trained["run"]), str(trained["vtu"]), "--steps", "3", "--param",
               "rate=0.5", "--out", str(out)])
    assert rc == 0
    mesh = meshio.read(out)
    unseen = trained["unseen"]
    np.testing.assert_allclose(mesh.points[:, :2], unseen.pos)
    assert {"u", "v", "u_step001", "u_step002", "u_step003", "v_step003"} <= set(mesh.point_data)
    np.testing.assert_array_equal(mesh.point_data["u"], mesh.point_data["u_step003"])
    w = unseen.weights
    for k in range(1, 4):  # against the exact dynamics, and better than persistence
        truth = unseen.fields["u"][0] * 0.5**k
        err = np.sqrt((w * (mesh.point_data[f"u_step{k:03d}"] - truth) ** 2).sum() /
                      (w * truth**2).sum())
        persistence = np.sqrt((w * (unseen.fields["u"][0] - truth) ** 2).sum() /
                              (w * truth**2).sum())
        assert err < 0.2 * persistence, (k, err, persistence)
    # the first step is the model applied by hand
    np.testing.assert_allclose(mesh.point_data["u_step001"], by_hand(trained["run"], unseen,
                                                                     0.5)[:, 0], atol=1e-5)


def test_python_api_gives_the_same_frames(trained, tmp_path):
    out = tmp_path / "api.vtu"
    result = geo_neuralop.predict(trained["run"], trained["vtu"], steps=3,
                                  conditioning={"rate": 0.5}, out=out)
    assert result.prediction.shape == (3, trained["unseen"].pos.shape[0], 2)
    assert result.field_names == ["u", "v"] and result.units == {"u": "m/s", "v": "m/s"}
    np.testing.assert_allclose(result.times, 0.1 * np.arange(1, 4))  # the training interval
    mesh = meshio.read(out)
    for k in range(3):
        np.testing.assert_allclose(mesh.point_data[f"v_step{k + 1:03d}"],
                                   result.prediction[k, :, 1], rtol=1e-12)
    np.testing.assert_allclose(result.prediction[0], by_hand(trained["run"], trained["unseen"],
                                                             0.5), atol=1e-5)


def test_pvd_and_h5_outputs_and_continuing_from_h5(trained, tmp_path):
    result = predict(trained["run"], trained["vtu"], steps=2, conditioning={"rate": 0.5},
                     out=tmp_path / "series.pvd")
    assert (tmp_path / "series.pvd").exists()
    frame = meshio.read(tmp_path / "series_0001.vtu")
    np.testing.assert_allclose(frame.point_data["u"], result.prediction[1, :, 0], rtol=1e-6)
    predict(trained["run"], trained["vtu"], steps=2, conditioning={"rate": 0.5},
            out=tmp_path / "first.h5")
    traj = read_trajectory(tmp_path / "first.h5")
    np.testing.assert_allclose(traj.fields["u"], result.prediction[:, :, 0], rtol=1e-6)
    assert traj.units == {"u": "m/s", "v": "m/s"}
    # two more steps from the file's last frame continue the same rollout (node types given)
    data = geo_neuralop.training.prediction.read_prediction_input(tmp_path / "first.h5")
    data.static["node_type"] = trained["unseen"].static["node_type"]
    more = predict(trained["run"], data, steps=1, conditioning={"rate": 0.5})
    third = predict(trained["run"], trained["vtu"], steps=3, conditioning={"rate": 0.5})
    np.testing.assert_allclose(more.prediction[0], third.prediction[2], rtol=1e-5, atol=1e-6)


def test_an_xdmf_time_series_gives_its_last_frame_as_the_state(trained, tmp_path):
    from geo_neuralop.viz import write_xdmf_series

    unseen = trained["unseen"]
    cloud = geo_neuralop.PointCloud(torch.as_tensor(unseen.pos), torch.as_tensor(unseen.weights),
                                    faces=torch.as_tensor(unseen.faces))
    u = unseen.fields["u"][:2]
    nt = np.broadcast_to(unseen.static["node_type"], u.shape).astype(np.float64)
    write_xdmf_series(cloud, {"u": u, "v": -u, "node_type": nt}, tmp_path / "series.xdmf",
                      times=[0.0, 0.1])
    result = predict(trained["run"], tmp_path / "series.xdmf", conditioning={"rate": 0.5})
    np.testing.assert_allclose(result.times, [0.2])  # one interval after the last frame
    # the same as a prediction from a VTU holding the series' last frame
    last = write_vtu(tmp_path / "last.vtu", unseen, u=u[1], v=-u[1],
                     node_type=unseen.static["node_type"])
    single = predict(trained["run"], last, conditioning={"rate": 0.5})
    np.testing.assert_allclose(result.prediction, single.prediction, rtol=1e-5, atol=1e-6)


def write_vtu(path, unseen, **fields):
    points = np.column_stack([unseen.pos, np.zeros(len(unseen.pos))])
    meshio.write(path, meshio.Mesh(points, [("triangle", unseen.faces)], point_data=fields))
    return path


def test_input_problems_are_reported_by_name(trained, tmp_path):
    unseen, run = trained["unseen"], trained["run"]
    u0, nt = unseen.fields["u"][0], unseen.static["node_type"]
    no_v = write_vtu(tmp_path / "no_v.vtu", unseen, u=u0, node_type=nt)
    with pytest.raises(ValueError, match=r"needs the field\(s\) 'v' \(m/s\); the input has "
                                         r"\['u'\]"):
        predict(run, no_v, conditioning={"rate": 0.5})
    full = write_vtu(tmp_path / "full.vtu", unseen, u=u0, v=-u0, node_type=nt)
    with pytest.raises(ValueError, match=r"conditioned on \['rate'\]"):
        predict(run, full)
    no_types = write_vtu(tmp_path / "no_types.vtu", unseen, u=u0, v=-u0)
    with pytest.raises(ValueError, match="reads 3 node types|reads 2 node types"):
        predict(run, no_types, conditioning={"rate": 0.5})
    kmh = Trajectory(unseen.pos, unseen.weights, "euclidean", np.zeros(1),
                     {"u": u0[None] * 3.6, "v": -u0[None] * 3.6}, faces=unseen.faces,
                     static={"node_type": nt}, units={"u": "km/h", "v": "km/h"})
    from geo_neuralop.data.storage import write_trajectory

    write_trajectory(tmp_path / "kmh.h5", kmh, "test", 0, 0)
    with pytest.raises(ValueError, match="field 'u' is in 'km/h', but the model was trained on "
                                         "'m/s'; convert it first"):
        predict(run, tmp_path / "kmh.h5", conditioning={"rate": 0.5})
    huge = write_vtu(tmp_path / "huge.vtu", unseen, u=u0 * 1e3, v=-u0, node_type=nt)
    with pytest.warns(PredictionWarning, match="field 'u' reaches .* standard deviations"):
        predict(run, huge, conditioning={"rate": 0.5})
    with warnings.catch_warnings():
        warnings.simplefilter("error", PredictionWarning)
        predict(run, full, conditioning={"rate": 0.5})  # in range: no warning
    with pytest.raises(ValueError, match="unknown output format"):
        predict(run, full, conditioning={"rate": 0.5}, out=tmp_path / "x.txt")
    with pytest.raises(ValueError, match="NetCDF and Zarr outputs need a lat/lon grid"):
        predict(run, full, conditioning={"rate": 0.5}, out=tmp_path / "x.nc")
    with pytest.raises(FileNotFoundError, match="no input at"):
        predict(run, tmp_path / "nothing.vtu")
    rc = main(["predict", str(run), str(no_v), "--out", str(tmp_path / "o.vtu"), "--param",
               "rate=0.5"])
    assert rc == 2 and not (tmp_path / "o.vtu").exists()


def test_sphere_model_predicts_netcdf_in_the_inputs_conventions(tmp_path):
    xr = pytest.importorskip("xarray")
    from geo_neuralop.data.importers import import_xarray, latitude_rule

    rng = np.random.default_rng(1)
    lat, lon = np.linspace(-90, 90, 9), np.arange(16) * 22.5 - 180.0  # south first, signed
    data = rng.normal(size=(24, 9, 16)).astype(np.float32)
    times = np.datetime64("2020-01-01") + np.arange(24) * np.timedelta64(1, "h")
    ds = xr.Dataset({"z": (("time", "lat", "lon"), data, {"units": "m"})},
                    coords={"time": times, "lat": lat, "lon": lon})
    ds.to_netcdf(tmp_path / "z.nc")
    import_xarray(tmp_path / "z.nc", ["z"], tmp_path / "ds", frames_per_sample=4)
    run_experiment({"data": {"path": str(tmp_path / "ds")},
                    "model": {"name": "sfno", "hidden_channels": 8, "n_layers": 1, "lmax": 4},
                    "trainer": {"epochs": 1, "batch_size": 4, "progress": False,
                                "device": "cpu"},
                    "evaluation": {"after_training": False}}, tmp_path / "run")
    ds.isel(time=slice(20, 24)).to_netcdf(tmp_path / "latest.nc")
    rc = main(["predict", str(tmp_path / "run"), str(tmp_path / "latest.nc"), "--steps", "2",
               "--out", str(tmp_path / "forecast.nc")])
    assert rc == 0
    out = xr.open_dataset(tmp_path / "forecast.nc")
    np.testing.assert_array_equal(out.lat.values, lat)
    np.testing.assert_array_equal(out.lon.values, lon)
    np.testing.assert_array_equal(out.time.values, times[23] + np.arange(1, 3) *
                                  np.timedelta64(1, "h"))
    assert out.z.attrs["units"] == "m" and out.z.shape == (2, 9, 16)
    latest = ds.isel(time=slice(20, 24))
    api = predict(tmp_path / "run", latest, steps=2)
    # other variables of the file (here on pressure levels) are not read
    extra = latest.assign(t=(("time", "level", "lat", "lon"), np.zeros((4, 2, 9, 16))))
    np.testing.assert_array_equal(predict(tmp_path / "run", extra, steps=2).prediction,
                                  api.prediction)
    from geo_neuralop.data.importers import from_xarray

    back = from_xarray(out, ["z"], dtype=torch.float64)
    np.testing.assert_allclose(np.stack([c.x[:, 0].numpy() for c in back]),
                               api.prediction[:, :, 0], rtol=1e-5, atol=1e-6)
    # the same model refuses a Gaussian grid and a planar mesh, naming both
    gauss = xr.Dataset({"z": (("lat", "lon"), data[0])},
                       coords={"lat": latitude_rule("legendre-gauss", 9)[0], "lon": lon})
    with pytest.raises(ValueError, match="takes equiangular grids; the input is a "
                                         "legendre-gauss grid"):
        predict(tmp_path / "run", gauss)
    mesh = jittered_rectangle_mesh((5, 5), seed=0)
    mesh.z = torch.zeros(mesh.num_nodes)
    with pytest.raises(ValueError, match="lat/lon grids of the sphere; the input is a mesh"):
        predict(tmp_path / "run", mesh)
