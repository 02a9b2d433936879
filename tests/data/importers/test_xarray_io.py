"""xarray / NetCDF / Zarr: round trips in both latitude orders and longitude conventions, values
at the right points (an analytic field checked against the cloud's positions), exact harmonic
integrals on a Gaussian NetCDF, the import command, and refusals of bad files."""

import json
import re

import numpy as np
import pytest
import torch

from geo_neuralop.cli import main
from geo_neuralop.data import from_xarray, load_dataset, to_xarray, verify_dataset
from geo_neuralop.data.importers import import_xarray, latitude_rule, open_xarray, write_xarray
from geo_neuralop.data.predictions import Predictions
from tests.geometry.sph_harm import real_sph_harm_matrix

xr = pytest.importorskip("xarray")
pytest.importorskip("netCDF4")


def analytic(lat_deg, lon_deg, t):
    """``2 z + x + t`` at latitude/longitude (degrees): checks where every value lands."""
    lat, lon = np.radians(lat_deg)[:, None], np.radians(lon_deg)[None, :]
    return 2 * np.sin(lat) + np.cos(lat) * np.cos(lon) + t


def make_dataset(rule="equiangular", nlat=9, nlon=16, frames=4, ascending=False, signed=False,
                 variables=("z",)):
    lat, _ = latitude_rule(rule, nlat)
    lat = lat[::-1] if ascending else lat
    lon = np.arange(nlon) * 360.0 / nlon
    if signed:
        lon = np.sort(np.where(lon >= 180, lon - 360, lon))
    data = np.stack([analytic(lat, lon, t) for t in range(frames)]).astype(np.float32)
    times = np.datetime64("2021-03-01T00:00") + np.arange(frames) * np.timedelta64(6, "h")
    return xr.Dataset(
        {v: (("time", "lat", "lon"), data * (k + 1), {"units": "m", "long_name": f"field {v}"})
         for k, v in enumerate(variables)},
        coords={"time": times, "lat": ("lat", lat, {"units": "degrees_north"}),
                "lon": ("lon", lon, {"units": "degrees_east"})})


@pytest.mark.parametrize("store", ["nc", "zarr"])
@pytest.mark.parametrize("ascending", [False, True])
@pytest.mark.parametrize("signed", [False, True])
def test_round_trip_in_both_orders_and_conventions(tmp_path, store, ascending, signed):
    ds = make_dataset(ascending=ascending, signed=signed, variables=("z", "t"))
    path = tmp_path / f"in.{store}"
    if store == "zarr":
        ds.to_zarr(path, consolidated=False)
    else:
        ds.to_netcdf(path)
    clouds = from_xarray(open_xarray(path), ["t", "z"], dtype=torch.float64)
    assert len(clouds) == 4 and clouds[0].grid == "equiangular"
    pos = clouds[0].pos.numpy()
    lat = np.degrees(np.arcsin(pos[:, 2]))
    for t, cloud in enumerate(clouds):  # each value sits at its own point
        expected = 2 * pos[:, 2] + pos[:, 0] + t
        np.testing.assert_allclose(cloud.x[:, 1].numpy(), expected, atol=2e-6)
        np.testing.assert_allclose(cloud.x[:, 0].numpy(), 2 * expected, atol=4e-6)
        assert cloud.time == t * 6 * 3600.0
    assert np.all(np.diff(lat.reshape(9, 16)[:, 0]) < 0)  # north to south
    frames = np.stack([c.x.numpy() for c in clouds])
    preds = Predictions(clouds[0], frames, frames, ["t", "z"], np.array([c.time for c in clouds]))
    out = to_xarray(preds, units={"t": "m", "z": "m"}, lat_ascending=ascending,
                    lon_signed=signed, time_reference="2021-03-01T00:00:00")
    written = write_xarray(out, tmp_path / f"out.{store}")
    back = open_xarray(written)
    for name in ("z", "t"):
        np.testing.assert_array_equal(back[name].values, ds[name].values)
        np.testing.assert_array_equal(back[f"{name}_truth"].values, ds[name].values)
        assert back[name].attrs["units"] == "m"
    np.testing.assert_allclose(back.lat.values, ds.lat.values, atol=1e-12)
    np.testing.assert_allclose(back.lon.values, ds.lon.values, atol=1e-12)
    np.testing.assert_array_equal(back.time.values, ds.time.values)
    assert back.lat.attrs["units"] == "degrees_north" and back.lon.attrs["units"] == \
        "degrees_east" and back.attrs["Conventions"] == "CF-1.8"


def test_gaussian_netcdf_integrates_harmonics_exactly(tmp_path):
    """A Y_lm on a Gaussian grid: its detected weights give the exact integrals."""
    nlat, nlon = 12, 24
    lat, _ = latitude_rule("legendre-gauss", nlat)
    lon = np.arange(nlon) * 360.0 / nlon - 180.0  # a signed convention, south to north below
    la, lo = np.radians(lat)[:, None], np.radians(lon)[None, :]
    pos = np.stack(np.broadcast_arrays(np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo),
                                       np.sin(la)), axis=-1).reshape(-1, 3)
    y = real_sph_harm_matrix(pos, 7)
    y73, y52 = y[:, 7 * 7 + 7 + 3], y[:, 5 * 5 + 5 - 2]  # Y_7^3 and Y_5^-2
    fields = {"square": y73**2, "shifted": 2.0 + y52, "product": y73 * y52}
    ds = xr.Dataset({k: (("lat", "lon"), v.reshape(nlat, nlon)[::-1]) for k, v in
                     fields.items()}, coords={"lat": lat[::-1], "lon": lon})
    ds.to_netcdf(tmp_path / "gauss.nc")
    (cloud,) = from_xarray(open_xarray(tmp_path / "gauss.nc"), list(fields),
                           dtype=torch.float64)
    assert cloud.grid == "legendre-gauss" and tuple(cloud.grid_shape) == (nlat, nlon)
    integrals = (cloud.weights[:, None] * cloud.x).sum(0).numpy()
    np.testing.assert_allclose(integrals, [1.0, 8 * np.pi, 0.0], atol=1e-12)
    # the same values with equiangular weights of the same size are not exact
    from geo_neuralop.data.importers import detect_latlon_grid

    wrong = detect_latlon_grid(latitude_rule("equiangular", nlat)[0], lon).weights().reshape(-1)
    assert abs((wrong * cloud.x[:, 0].numpy()).sum() - 1.0) > 1e-3


def test_pole_less_grids_import_as_sphere_point_clouds(tmp_path):
    ds = make_dataset("fejer-first", nlat=10, nlon=20, frames=2)
    (cloud, _) = from_xarray(ds, ["z"], dtype=torch.float64)
    assert getattr(cloud, "grid_shape", None) is None  # not a grid the sphere models take
    assert abs(float(cloud.weights.sum()) - 4 * np.pi) < 1e-12
    assert np.abs(np.abs(cloud.pos[:, 2].numpy()) - 1).min() > 1e-3  # no pole rows


def test_import_command_makes_a_dataset_the_trainer_takes(tmp_path):
    ds = make_dataset(nlat=9, nlon=16, frames=24, variables=("z", "t"))
    ds.to_netcdf(tmp_path / "series.nc")
    out = tmp_path / "datasets" / "series"
    rc = main(["import", "xarray", str(tmp_path / "series.nc"), "--variables", "z", "t",
               "--out", str(out), "--frames-per-sample", "4"])
    assert rc == 0
    card = verify_dataset(out)
    assert card["generator"] == "import:xarray" and card["n_samples"] == 6
    assert card["task"] == {"kind": "rollout", "inputs": ["z", "t"], "targets": ["z", "t"]}
    assert card["fields"]["z"]["units"] == "m" and card["geometry"]["grid"] == "equiangular"
    assert card["splits"] == {"train": [0, 4], "val": [4, 5], "test": [5, 6]}
    normalizer = json.loads((out / "normalizer.json").read_text())["fields"]
    train = load_dataset(out, "train", normalize=False)
    assert len(train) == 4 * 3
    first = train.trajectory(0)
    # sample k holds frames 4k .. 4k+3 of the series, times in seconds since its first frame
    np.testing.assert_allclose(train.trajectory(1).times, 86400 + 21600 * np.arange(4))
    assert train.trajectory(1).params["time_reference"] == "2021-03-01T00:00:00"
    assert train.trajectory(1).params["first_frame"] == 4
    w = first.weights
    frames = np.concatenate([load_dataset(out, "train", normalize=False).trajectory(i)
                             .fields["z"] for i in range(4)])
    mean = float((frames * w).sum() / (w.sum() * frames.shape[0]))
    assert abs(normalizer["z"]["mean"] - mean) < 1e-6 * max(1.0, abs(mean))

    from geo_neuralop.training.experiment import run_experiment

    cfg = {"data": {"path": str(out)},
           "model": {"name": "sfno", "hidden_channels": 8, "n_layers": 1, "lmax": 4},
           "trainer": {"epochs": 1, "batch_size": 4, "progress": False, "device": "cpu"},
           "evaluation": {"device": "cpu", "rollout_steps": 2, "prediction_files": 0}}
    result = run_experiment(cfg, tmp_path / "run")
    assert np.isfinite(result["history"][-1]["train_loss"])
    assert result["evaluation"]["rollout"]["steps"] == 2


def test_missing_values_are_refused_naming_file_variable_and_time(tmp_path):
    ds = make_dataset(frames=3)
    z = ds["z"].values.copy()
    z[2, 3, 4:7] = np.nan
    ds["z"] = (("time", "lat", "lon"), z, {"units": "m"})
    ds.to_netcdf(tmp_path / "holes.nc")
    with pytest.raises(ValueError) as info:
        import_xarray(tmp_path / "holes.nc", ["z"], tmp_path / "out", frames_per_sample=1)
    message = str(info.value)
    assert "holes.nc" in message and "'z'" in message and "3 missing value(s) at time[2]" \
        in message


@pytest.mark.parametrize("edit, message", [
    (lambda ds: ds.isel(lat=[0, 1, 3, 2, 4, 5, 6, 7, 8]), "'lat' is not monotonic"),
    (lambda ds: ds.isel(lon=[0, 2, 1] + list(range(3, 16))), "'lon' is not monotonic"),
    (lambda ds: ds.isel(lat=slice(2, 7)), "regional grid"),
    (lambda ds: ds.isel(lon=slice(0, 8)), "regional grid"),
    (lambda ds: ds.expand_dims(level=[500, 850]).transpose("time", "level", "lat", "lon"),
     "has dimensions ('time', 'level', 'lat', 'lon')"),
    (lambda ds: ds.rename(lat="latitude"), "no coordinate 'lat'"),
    (lambda ds: ds.isel(time=[0, 2, 1, 3]), "'time' is not increasing"),
])
def test_bad_files_are_refused_with_a_clear_message(tmp_path, edit, message):
    path = tmp_path / "bad.nc"
    edit(make_dataset()).to_netcdf(path)
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        import_xarray(path, ["z"], tmp_path / "out")
    assert str(path) in str(info.value)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_unknown_variable_and_missing_file(tmp_path):
    make_dataset().to_netcdf(tmp_path / "a.nc")
    with pytest.raises(ValueError, match=r"no variable\(s\) \['q'\]; the dataset has \['z'\]"):
        from_xarray(open_xarray(tmp_path / "a.nc"), ["q"])
    with pytest.raises(FileNotFoundError, match="no NetCDF file or Zarr store"):
        open_xarray(tmp_path / "nope.nc")
    (tmp_path / "junk.nc").write_bytes(b"not a netcdf file at all")
    with pytest.raises(ValueError, match="junk.nc is not a readable NetCDF file"):
        open_xarray(tmp_path / "junk.nc")
    rc = main(["import", "xarray", str(tmp_path / "a.nc"), "--variables", "q", "--out",
               str(tmp_path / "o")])
    assert rc == 2


def test_import_streams_one_frame_at_a_time(tmp_path):
    """The import's peak memory does not grow with the series: 8 and 64 frames of 91 x 180."""
    import tracemalloc

    make_dataset(nlat=9, nlon=16, frames=4).to_netcdf(tmp_path / "warm.nc")
    import_xarray(tmp_path / "warm.nc", ["z"], tmp_path / "warm", frames_per_sample=2)
    peaks = []
    for frames in (8, 64):
        make_dataset(nlat=91, nlon=180, frames=frames).to_netcdf(tmp_path / f"s{frames}.nc")
        tracemalloc.start()
        import_xarray(tmp_path / f"s{frames}.nc", ["z"], tmp_path / f"d{frames}",
                      frames_per_sample=4)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    data_bytes = 64 * 91 * 180 * 4
    assert peaks[1] < 1.2 * peaks[0] and peaks[1] < data_bytes, (peaks, data_bytes)
