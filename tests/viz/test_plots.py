"""Matplotlib pictures: training curves, error versus horizon, Mollweide maps."""

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from geo_neuralop.geometry import fibonacci_sphere, sphere_grid
from geo_neuralop.viz import (
    plot_error_vs_horizon,
    plot_sphere_maps,
    plot_training_curves,
    read_metrics,
)


def _rgb(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(float)


def test_read_metrics_jsonl_and_csv_agree(tmp_path):
    rows = [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_error": 0.5 / (e + 1)}
            for e in range(5)]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "m.csv").write_text("epoch,train_loss,val_error\n" + "\n".join(
        f"{r['epoch']},{r['train_loss']!r},{r['val_error']!r}" for r in rows) + "\n")
    assert read_metrics(tmp_path / "m.jsonl") == rows
    assert read_metrics(tmp_path / "m.csv") == rows
    with pytest.raises(FileNotFoundError):
        read_metrics(tmp_path / "none.jsonl")
    (tmp_path / "m.txt").write_text("epoch 1\n")
    with pytest.raises(ValueError, match=r"\.jsonl or \.csv"):
        read_metrics(tmp_path / "m.txt")


def test_training_curves_picture(tmp_path):
    rows = [{"epoch": e, "train_loss": np.exp(-e / 3), "val_error": 0.5 * np.exp(-e / 5),
             "lr": 1e-3} for e in range(20)]
    out = plot_training_curves(rows, tmp_path / "curves.png")
    img = _rgb(out)
    assert img.shape[0] > 300 and img.shape[1] > 500
    # two coloured lines (matplotlib's default blue and orange) and no lr line by default
    blue = (np.abs(img - [31, 119, 180]).sum(-1) < 60).sum()
    orange = (np.abs(img - [255, 127, 14]).sum(-1) < 60).sum()
    green = (np.abs(img - [44, 160, 44]).sum(-1) < 60).sum()
    assert blue > 200 and orange > 200 and green < 20
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['val_loss'\]"):
        plot_training_curves(rows, tmp_path / "x.png", keys=["val_loss"])
    with pytest.raises(ValueError, match="no metric rows"):
        plot_training_curves([], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_error_vs_horizon_marks_blow_up(tmp_path):
    model = np.array([0.01, 0.02, 0.04, np.nan, np.nan])
    persistence = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    out = plot_error_vs_horizon({"model": model, "persistence": persistence},
                                tmp_path / "horizon.png", dt=0.5)
    img = _rgb(out)
    red = (np.abs(img - [214, 39, 40]).sum(-1) < 60)
    assert red.sum() > 30  # the dotted line where the model's rollout blew up
    with pytest.raises(ValueError, match="errors is empty"):
        plot_error_vs_horizon({}, tmp_path / "y.png")


@pytest.mark.parametrize("cloud", [sphere_grid(24, 48, "equiangular"), fibonacci_sphere(600)],
                         ids=["equiangular", "fibonacci"])
def test_mollweide_maps(cloud, tmp_path):
    x, y, z = cloud.pos.double().T.numpy()
    truth = np.cos(2 * np.arctan2(y, x)) * (1 - z**2)  # zonal wave number 2
    same = plot_sphere_maps(cloud, truth, truth, tmp_path / "same.png", field="h")
    differ = plot_sphere_maps(cloud, truth, truth + 0.5 * z, tmp_path / "differ.png", field="h")
    a, b = _rgb(same), _rgb(differ)
    assert a.shape == b.shape and a.shape[1] > 3 * a.shape[0]  # three maps in a row
    thirds_a, thirds_b = np.array_split(a, 3, axis=1), np.array_split(b, 3, axis=1)
    assert np.abs(thirds_a[0] - thirds_b[0]).mean() > 2  # shared range shifts with prediction
    assert np.abs(thirds_a[2] - thirds_b[2]).mean() > 5  # the error map shows the error
    assert len(np.unique(a.reshape(-1, 3).astype(int) // 8, axis=0)) > 100


def test_mollweide_nan_and_bad_input(tmp_path):
    cloud = fibonacci_sphere(400)
    z = cloud.pos.double()[:, 2].numpy()
    prediction = z.copy()
    prediction[z > 0.7] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = plot_sphere_maps(cloud, z, prediction, tmp_path / "nan.png", field="h")
    assert any("NaN value(s)" in str(w.message) and "magenta" in str(w.message) for w in caught)
    img = _rgb(out)
    magenta = (img[..., 0] > 200) & (img[..., 1] < 60) & (img[..., 2] > 200)
    assert magenta.sum() > 100
    with pytest.raises(ValueError, match="has 399 values but the cloud has 400 points"):
        plot_sphere_maps(cloud, z[:-1], z[:-1], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="needs a sphere cloud"):
        from geo_neuralop.geometry import regular_grid

        grid = regular_grid((4, 4))
        plot_sphere_maps(grid, np.zeros(16), np.zeros(16), tmp_path / "bad.png")
