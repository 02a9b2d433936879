"""
Importing an xarray dataset (NetCDF) and forecasting with it
============================================================

Climate data usually come as NetCDF or Zarr files of lat/lon fields. This example
writes such a file (a wave travelling eastward on a 2-degree grid, latitudes south to
north and longitudes from -180, as many files have them), imports it with
``geo-neuralop import xarray`` (the grid's latitude rule is recognized from the
coordinates and its quadrature weights attached), trains an SFNO on it, and writes a
forecast back to NetCDF in the file's own conventions with
``geo-neuralop predict``. About a minute on 2 cores.

Run: ``.venv/bin/python examples/xarray_import.py``.
"""

# %%
# A NetCDF file of hourly fields, like one exported from a reanalysis.
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from geo_neuralop.cli import main
from geo_neuralop.data import from_xarray

OUT = Path("outputs/examples/xarray")
OUT.mkdir(parents=True, exist_ok=True)
lat = np.arange(-90.0, 90.1, 4.0)  # 46 rows with both poles: an equiangular grid
lon = np.arange(-180.0, 180.0, 4.0)  # 90 columns
hours = np.arange(120)
la, lo = np.radians(lat)[None, :, None], np.radians(lon)[None, None, :]
phase = np.radians(2.0) * hours[:, None, None]  # 2 degrees eastward per hour
z = 5500 + 150 * np.cos(la) ** 2 * np.cos(3 * (lo - phase)) + 300 * np.sin(la)
ds = xr.Dataset({"z": (("time", "lat", "lon"), z.astype("f4"),
                       {"units": "m", "long_name": "500 hPa geopotential height"})},
                coords={"time": np.datetime64("2024-01-01") + hours * np.timedelta64(1, "h"),
                        "lat": ("lat", lat, {"units": "degrees_north"}),
                        "lon": ("lon", lon, {"units": "degrees_east"})})
ds.to_netcdf(OUT / "z500.nc")
clouds = from_xarray(ds.isel(time=slice(0, 1)), ["z"])
print(f"{clouds[0].grid} grid {tuple(clouds[0].grid_shape)}, weights sum to "
      f"{float(clouds[0].weights.sum()):.6f} (4 pi = {4 * np.pi:.6f})")

# %%
# Import: the series in pieces of 12 hours (the first 80% to train on, then validation
# and test later in time), a normalizer and a dataset card.
main(["import", "xarray", str(OUT / "z500.nc"), "--variables", "z", "--frames-per-sample",
      "12", "--out", str(OUT / "dataset"), "--overwrite"])

# %%
# Train an SFNO for one hour ahead (the same command line as for generated data).
config = OUT / "sfno.yaml"
config.write_text(f"""
data: {{path: {OUT / 'dataset'}}}
model: {{name: sfno, lmax: 16, hidden_channels: 16, n_layers: 2}}
trainer: {{epochs: 10, batch_size: 4, lr: 3.0e-3, progress: false}}
evaluation: {{rollout_steps: 6, prediction_files: 0}}
""")
main(["train", str(config), "--out", str(OUT / "run"), "--overwrite"])

# %%
# Forecast 6 hours from the last analysis and compare with the travelling wave.
ds.isel(time=slice(-1, None)).to_netcdf(OUT / "analysis.nc")
main(["predict", str(OUT / "run"), str(OUT / "analysis.nc"), "--steps", "6", "--out",
      str(OUT / "forecast.nc")])
forecast = xr.open_dataset(OUT / "forecast.nc")
later = 5500 + 150 * np.cos(la) ** 2 * np.cos(3 * (lo - np.radians(2.0) * (hours[-1] + 6))) + \
    300 * np.sin(la)
error = forecast.z.isel(time=-1) - later[0]
print(forecast)
print(f"6-hour forecast: RMS error {float(np.sqrt((error**2).mean())):.2f} m, wave amplitude 150 m")
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
forecast.z.isel(time=-1).plot(ax=axes[0])
axes[0].set_title("forecast, +6 h")
error.plot(ax=axes[1], cmap="RdBu_r")
axes[1].set_title("forecast - exact")
plt.tight_layout()
plt.show()
