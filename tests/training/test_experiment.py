"""Experiments end to end: `geo-neuralop train` / `evaluate` on tiny generated datasets, with the
reported errors checked against an independent NumPy computation from the raw sample files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from geo_neuralop.cli import main
from geo_neuralop.data import generate_dataset, load_predictions
from geo_neuralop.geometry.triangulation import grid_faces
from geo_neuralop.models import load_model
from geo_neuralop.training.adapters import DataSpec, make_adapter, static_features
from geo_neuralop.training.config import ConfigError
from geo_neuralop.training.evaluation import (
    evaluate_checkpoint,
    evaluate_model,
    format_results,
    load_trained_model,
)
from geo_neuralop.training.experiment import build_experiment, build_model, run_experiment
from geo_neuralop.training.metrics import read_jsonl
from geo_neuralop.training.trainer import TrainingInterrupted

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """Tiny datasets: NS-2D 16x16 (and 24x24 for cross-resolution), Darcy 16x16, SWE 16x32."""
    root = tmp_path_factory.mktemp("data")
    specs = {
        "ns2d": ("ns2d", 5, {"resolution": 16, "n_frames": 6}),
        "ns2d_24": ("ns2d", 3, {"resolution": 24, "n_frames": 5}),
        "darcy": ("darcy", 6, {"resolution": 16}),
        "swe": ("swe", 3, {"nlat": 16, "n_frames": 5}),
    }
    out = {}
    for name, (generator, n, params) in specs.items():
        generate_dataset(generator, root / name, n_samples=n, params=params, progress=False,
                         log=None)
        out[name] = root / name
    return out


def write_config(path, data, model, trainer=None, evaluation=None, **data_extra):
    cfg = {"data": {"path": str(data), **data_extra}, "model": model,
           "trainer": {"epochs": 3, "batch_size": 4, "lr": 5e-3, "progress": False,
                       "device": "cpu", **(trainer or {})},
           "evaluation": {"device": "cpu", **(evaluation or {})}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def ns_model(**extra):
    return {"name": "local_no", "n_modes": [8, 8], "hidden_channels": 8, "n_layers": 2, **extra}


def run_cli(*args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return subprocess.run([sys.executable, "-m", "geo_neuralop.cli", *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cli_run(datasets, tmp_path_factory):
    """`geo-neuralop train` in a subprocess: LocalNO on NS-2D, evaluated on the last weights."""
    tmp = tmp_path_factory.mktemp("cli")
    config = write_config(tmp / "ns.yaml", datasets["ns2d"], ns_model(),
                          evaluation={"checkpoint": "last", "rollout_steps": 3})
    run = tmp / "run"
    proc = run_cli("train", config, "--out", run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"run": run, "proc": proc, "tmp": tmp, "data": datasets["ns2d"]}


def normalized_frames(root: Path, index: int, field: str) -> tuple[np.ndarray, np.ndarray]:
    """Raw frames ``[F, N]`` of a sample file, normalized with normalizer.json, and weights."""
    stats = json.loads((root / "normalizer.json").read_text())["fields"][field]
    with h5py.File(root / "samples" / f"sample_{index:06d}.h5", "r") as f:
        frames = f["fields"][field][()].astype(np.float64)
        weights = f["geometry/weights"][()]
    return (frames - stats["mean"]) / stats["std"], weights


def rel_l2(pred: np.ndarray, target: np.ndarray, w: np.ndarray) -> float:
    return float(np.sqrt((w * (pred - target) ** 2).sum() / (w * target**2).sum()))


def test_cli_train_writes_run_folder(cli_run):
    run, out = cli_run["run"], cli_run["proc"].stdout
    assert "trained 3 epochs" in out and "persistence" in out and "rollout (1 trajectories" in out
    records = read_jsonl(run / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert {"val_loss", "val_rel_l2", "val_rel_h1"} <= set(records[-1])
    for name in ("last.pt", "previous.pt", "best.pt"):
        assert (run / "checkpoints" / name).exists()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["in_channels"] == 1 and saved["model"]["periodic"] == [True, True]
    assert saved["model"]["residual"] is True
    model = load_model(run / "model.pt")
    assert type(model).__name__ == "LocalNO"


def test_rollout_and_one_step_errors_match_numpy(cli_run):
    """metrics.json against the model applied by hand to the raw, normalized sample frames."""
    run, data = cli_run["run"], cli_run["data"]
    metrics = json.loads((run / "evaluation" / "metrics.json").read_text())
    test_index = 4  # 5 samples: train 0-2, val 3, test 4
    frames, w = normalized_frames(data, test_index, "vorticity")
    model = load_model(run / "model.pt").eval()

    def step(x: np.ndarray) -> np.ndarray:
        t = torch.tensor(x, dtype=torch.float32).reshape(1, 1, 16, 16)
        with torch.no_grad():
            return (t + model(t)).reshape(-1).double().numpy()

    state, model_err, base_err = frames[0], [], []
    for t in range(1, 4):
        state = step(state)
        model_err.append(rel_l2(state, frames[t], w))
        base_err.append(rel_l2(frames[0], frames[t], w))
    roll = metrics["rollout"]
    assert roll["steps"] == 3 and roll["stable"] and roll["trajectories"] == [test_index]
    np.testing.assert_allclose(roll["model"]["rel_l2"], model_err, rtol=2e-4)
    np.testing.assert_allclose(roll["persistence"]["rel_l2"], base_err, rtol=1e-5)
    assert roll["beats_persistence"] == (np.mean(model_err) < np.mean(base_err))
    one = [rel_l2(step(frames[t]), frames[t + 1], w) for t in range(5)]
    base = [rel_l2(frames[t], frames[t + 1], w) for t in range(5)]
    assert metrics["one_step"]["samples"] == 5
    np.testing.assert_allclose(metrics["one_step"]["model"]["rel_l2"], np.mean(one), rtol=2e-4)
    np.testing.assert_allclose(metrics["one_step"]["persistence"]["rel_l2"], np.mean(base),
                               rtol=1e-5)


def test_prediction_files_hold_physical_frames(cli_run):
    run, data = cli_run["run"], cli_run["data"]
    (path,) = sorted((run / "evaluation" / "predictions").glob("*.h5"))
    pred = load_predictions(path)
    with h5py.File(data / "samples" / "sample_000004.h5", "r") as f:
        raw = f["fields/vorticity"][()]
        times = f["times"][()]
    assert pred.field_names == ["vorticity"] and pred.truth.shape == (3, 256, 1)
    np.testing.assert_allclose(pred.truth[:, :, 0], raw[1:4], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred.times, times[1:4])
    assert np.isfinite(pred.prediction).all()
    assert pred.cloud.faces.shape == (2 * 15 * 15, 3)  # triangulated grid, drawable as a surface


def test_rollout_from_a_later_start_frame_reports_that_frame(cli_run):
    """evaluation.rollout_start = 2: the summary and the printed table name frame 2, and the
    persistence baseline holds frame 2 (checked against the raw sample file)."""
    model, experiment = load_trained_model(cli_run["run"])
    results = evaluate_model(model, experiment, rollout_steps=2,
                             settings={"rollout_start": 2, "device": "cpu"})
    roll = results["rollout"]
    assert roll["start_frame"] == 2 and roll["steps"] == 2
    assert "from frame 2" in format_results(results)
    frames, w = normalized_frames(cli_run["data"], 4, "vorticity")
    base = [rel_l2(frames[2], frames[2 + t], w) for t in (1, 2)]
    np.testing.assert_allclose(roll["persistence"]["rel_l2"], base, rtol=1e-5)


def test_cli_evaluate_on_another_resolution(cli_run, datasets):
    out = cli_run["tmp"] / "eval24"
    proc = run_cli("evaluate", cli_run["run"], "--data", datasets["ns2d_24"], "--rollout-steps",
                   "2", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "one-step (4 samples)" in proc.stdout and "rollout (1 trajectories, 2 steps" in \
        proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == str(datasets["ns2d_24"]) and metrics["rollout"]["steps"] == 2
    assert metrics["checkpoint"].endswith("best.pt")  # a run folder: best, else last
    pred = load_predictions(Path(metrics["predictions"][0]))
    assert pred.truth.shape == (2, 24 * 24, 1) and np.isfinite(pred.prediction).all()


def test_config_errors_through_the_cli(tmp_path, datasets, capsys):
    bad = write_config(tmp_path / "bad.yaml", tmp_path / "missing",
                       ns_model(hidden_channels="abc", n_layer=2), trainer={"epoch": 2})
    assert main(["train", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "model.hidden_channels: expected int, got 'abc'" in err
    assert "model.n_layer: unknown argument of 'local_no'; did you mean 'n_layers'?" in err
    assert "trainer.epoch: unknown key; did you mean 'epochs'?" in err
    assert f"data.path: no dataset at '{tmp_path / 'missing'}'" in err
    good = write_config(tmp_path / "good.yaml", datasets["ns2d"], ns_model())
    assert main(["train", str(good), "--set", "trainer.lr=-1", "--set", "model.name=fnoo"]) == 2
    err = capsys.readouterr().err
    assert "trainer.lr: must be a positive number, got -1" in err
    assert "model.name: unknown model 'fnoo'; did you mean 'fno'?" in err
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", str(tmp_path), "--rollout-steps", "-3"])


def test_static_darcy_with_fno_and_h1_loss(tmp_path, datasets):
    model = {"name": "fno", "n_modes": [8, 8], "hidden_channels": 8, "n_layers": 2,
             "domain_padding": 0.125}
    config = write_config(tmp_path / "darcy.yaml", datasets["darcy"], model,
                          trainer={"epochs": 4, "batch_size": 2, "loss": "rel_h1", "lr": 1e-2})
    result = run_experiment(config, tmp_path / "run")
    history = result["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    ev = result["evaluation"]
    assert ev["rollout"] is None and ev["one_step"]["persistence"] is None
    assert {"rel_l2", "rel_h1", "abs_l2", "abs_h1"} <= set(ev["one_step"]["model"])
    assert result["config"]["model"]["residual"] is False  # static data: no residual
    # the reported error of the test sample, recomputed from the file with the trapezoid weights
    (path,) = ev["predictions"]
    pred = load_predictions(Path(path))
    stats = json.loads((datasets["darcy"] / "normalizer.json").read_text())["fields"]["pressure"]
    with h5py.File(datasets["darcy"] / "samples" / "sample_000005.h5", "r") as f:
        truth = f["fields/pressure"][0]
        w = f["geometry/weights"][()]
    np.testing.assert_allclose(pred.truth[0, :, 0], truth, rtol=1e-5, atol=1e-7)
    norm = [(v - stats["mean"]) / stats["std"] for v in (pred.prediction[0, :, 0], truth)]
    np.testing.assert_allclose(ev["one_step"]["model"]["rel_l2"], rel_l2(*norm, w), rtol=1e-4)
    # the final model file alone is enough to evaluate again
    again = evaluate_checkpoint(tmp_path / "run" / "model.pt", split="val",
                                out_dir=tmp_path / "again")
    assert again["checkpoint"] == str(tmp_path / "run" / "model.pt") and again["split"] == "val"
    assert np.isfinite(again["one_step"]["model"]["rel_h1"])


def test_sphere_local_sfno_persistence_and_resume(tmp_path, datasets):
    model = {"name": "local_sfno", "lmax": 8, "hidden_channels": 8, "n_layers": 2,
             "disco_radius": 0.45}
    config = write_config(tmp_path / "swe.yaml", datasets["swe"], model,
                          trainer={"epochs": 2, "loss": "rel_h1"},
                          evaluation={"rollout_steps": 2})
    first = run_experiment(config, tmp_path / "run")
    ev = first["evaluation"]
    assert first["config"]["model"]["grid"] == "equiangular"
    # persistence on the sphere: solid-angle weighted, all three fields, from the raw files
    names = ["height", "vorticity", "divergence"]
    per_field = [normalized_frames(datasets["swe"], 2, n) for n in names]
    frames = np.stack([f for f, _ in per_field], -1)  # [F, N, 3]
    w = per_field[0][1][:, None]
    base = [rel_l2(frames[t], frames[t + 1], w) for t in range(4)]
    np.testing.assert_allclose(ev["one_step"]["persistence"]["rel_l2"], np.mean(base), rtol=1e-5)
    assert abs(w.sum() - 4 * np.pi) < 1e-9
    pred = load_predictions(Path(ev["predictions"][0]))
    assert pred.cloud.grid_shape == (16, 32) and pred.cloud.manifold == "sphere"
    # resuming a finished run trains nothing and evaluates the same weights again
    again = run_experiment(config, tmp_path / "run", resume=True)
    assert again["history"] == first["history"]
    assert again["evaluation"]["one_step"] == ev["one_step"]
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        run_experiment(config, tmp_path / "run")
    with pytest.raises(ConfigError, match=r"started with other settings \(model.hidden"):
        run_experiment(config, tmp_path / "run", resume=True,
                       overrides=["model.hidden_channels=4"])


def test_interrupted_run_with_input_noise_resumes_exactly(tmp_path, datasets):
    """Stopped after step 3 of 8 and resumed: the same losses and weights as one straight run
    (the input noise draws from the checkpointed RNG; samples depend only on the index)."""
    config = write_config(tmp_path / "ns.yaml", datasets["ns2d"], ns_model(),
                          trainer={"epochs": 2, "noise_std": 0.05, "checkpoint_every_steps": 1},
                          evaluation={"after_training": False})
    straight = run_experiment(config, tmp_path / "straight")
    exp = build_experiment(config, tmp_path / "stopped")
    exp.trainer.step_callbacks.append(
        lambda tr, info: tr.request_stop() if info["global_step"] == 3 else None)
    with pytest.raises(TrainingInterrupted):
        exp.trainer.fit()
    assert len(read_jsonl(tmp_path / "stopped" / "metrics.jsonl")) == 0
    resumed = run_experiment(config, tmp_path / "stopped", resume=True)
    assert [r["train_loss"] for r in resumed["history"]] == \
        [r["train_loss"] for r in straight["history"]]
    a = load_model(Path(resumed["model_path"])).state_dict()
    b = load_model(Path(straight["model_path"])).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)


@pytest.mark.parametrize("model", [
    {"name": "mesh_no", "latent_shape": [8, 8], "hidden_channels": 8, "n_layers": 1},
    {"name": "mesh_graph_net", "hidden_channels": 8, "n_layers": 2, "k": 6},
], ids=["mesh_no", "mesh_graph_net"])
def test_mesh_models_on_point_clouds(tmp_path, datasets, model):
    """Mesh models take the grid data as point clouds (PyG batches); the persistence errors of
    the points layout equal those of the grid layout, and evaluate_checkpoint reproduces the
    post-training evaluation."""
    config = write_config(tmp_path / "m.yaml", datasets["ns2d"], model,
                          trainer={"epochs": 1},
                          evaluation={"rollout_steps": 2, "rollout_start": 1})
    result = run_experiment(config, tmp_path / "run")
    ev = result["evaluation"]
    frames, w = normalized_frames(datasets["ns2d"], 4, "vorticity")
    base = [rel_l2(frames[1], frames[1 + t], w) for t in (1, 2)]  # rollout from frame 1
    np.testing.assert_allclose(ev["rollout"]["persistence"]["rel_l2"], base, rtol=1e-5)
    np.testing.assert_allclose(load_predictions(Path(ev["predictions"][0])).times, [2.0, 3.0])
    assert np.isfinite(ev["rollout"]["model"]["rel_l2"]).all()
    again = evaluate_checkpoint(tmp_path / "run", out_dir=tmp_path / "again")
    np.testing.assert_allclose(again["one_step"]["model"]["rel_l2"],
                               ev["one_step"]["model"]["rel_l2"], rtol=1e-6)


def test_static_features_standardize_conditioning_and_one_hot_node_types():
    spec = DataSpec(family="mesh", kind="rollout", inputs=["u"], targets=["u"],
                    conditioning_names=["reynolds"], conditioning_mean=[100.0],
                    conditioning_std=[20.0], node_types=3)
    feats = static_features(spec, 4, torch.tensor([[140.0]]), torch.tensor([0, 2, 1, 2]),
                            torch.float32)
    expected = torch.tensor([[2.0, 1, 0, 0], [2.0, 0, 0, 1], [2.0, 0, 1, 0], [2.0, 0, 0, 1]])
    torch.testing.assert_close(feats, expected)
    assert spec.in_channels == 1 + 1 + 3
    with pytest.raises(ValueError, match=r"node types must be in \[0, 3\)"):
        static_features(spec, 1, torch.tensor([100.0]), torch.tensor([3]), torch.float32)


def test_training_noise_perturbs_only_the_input_frames_and_only_in_training():
    spec = DataSpec(family="grid", kind="rollout", inputs=["u", "v"], targets=["u", "v"],
                    input_steps=2, conditioning_names=["re"], conditioning_mean=[0.0],
                    conditioning_std=[1.0], residual=True,
                    geometry={"kind": "regular", "dim": 2, "shape": [64, 64],
                              "domain": [[0.0, 1.0]] * 2, "periodic": [True, True]})
    adapter = make_adapter(spec, noise_std=0.1)
    inputs = torch.randn(4, 5, 64, 64)  # 2 frames x 2 fields + 1 conditioning channel
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(x)
            return torch.zeros(x.shape[0], 2, *x.shape[2:])

    probe = Probe()
    out = adapter.forward(probe, inputs)
    noise = seen[-1] - inputs
    assert abs(float(noise[:, :4].std()) - 0.1) < 0.003 and abs(float(noise[:, :4].mean())) < 0.002
    assert bool((noise[:, 4] == 0).all())
    torch.testing.assert_close(out, seen[-1][:, 2:4])  # residual on the noisy last frame
    probe.eval()
    torch.testing.assert_close(adapter.forward(probe, inputs), inputs[:, 2:4])


def test_model_channels_come_from_the_data():
    spec = DataSpec(family="grid", kind="static", inputs=["a"], targets=["p"],
                    geometry={"kind": "regular", "dim": 2, "shape": [8, 8],
                              "domain": [[0.0, 2.0], [0.0, 1.0]], "periodic": [False, False]})
    model = build_model({"name": "local_no", "n_modes": [4, 4], "hidden_channels": 4,
                         "n_layers": 1}, spec)
    assert model.config["domain"] == [[0.0, 2.0], [0.0, 1.0]]
    assert model.config["periodic"] == [False, False]
    with pytest.raises(ConfigError, match=r"model.in_channels: 3 given, but the data gives 1"):
        build_model({"name": "fno", "n_modes": [4, 4], "in_channels": 3}, spec)


def test_grid_faces_cover_the_square_once():
    faces = grid_faces((3, 4))
    pos = torch.stack(torch.meshgrid(torch.linspace(0, 1, 3), torch.linspace(0, 1, 4),
                                     indexing="ij"), -1).reshape(-1, 2)
    a, b, c = (pos[faces[:, i]] for i in range(3))
    area = 0.5 * ((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0])
    assert faces.shape == (12, 3) and bool((area.abs() > 0).all())
    assert abs(float(area.abs().sum()) - 1.0) < 1e-6


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path, datasets):
    config = write_config(tmp_path / "ns.yaml", datasets["ns2d"], ns_model(),
                          trainer={"epochs": 2}, evaluation={"after_training": False},
                          max_train_samples=12)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "geo_neuralop.cli", "train", str(config), "--out", str(tmp_path / "ddp")],
        env=env, capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = run_experiment(config, tmp_path / "single")
    a = load_model(tmp_path / "ddp" / "model.pt").state_dict()
    b = load_model(Path(single["model_path"])).state_dict()
    for name in b:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)
    ddp_hist = read_jsonl(tmp_path / "ddp" / "metrics.jsonl")
    np.testing.assert_allclose([r["train_loss"] for r in ddp_hist],
                               [r["train_loss"] for r in single["history"]], rtol=1e-4)


def test_cylinder_mesh_no_with_reynolds_and_node_types(tmp_path):
    data = tmp_path / "cyl"
    generate_dataset("cylinder", data, n_samples=3, params={
        "n_frames": 5, "spin_up": 0.25, "target_vertices": 300}, progress=False, log=None)
    model = {"name": "mesh_no", "latent_shape": [16, 8], "hidden_channels": 8, "n_layers": 1}
    config = write_config(tmp_path / "c.yaml", data, model, trainer={"epochs": 1,
                                                                     "batch_size": 2},
                          evaluation={"rollout_steps": 3})
    result = run_experiment(config, tmp_path / "run")
    assert result["config"]["model"]["in_channels"] == 3 + 1 + 5  # u v p, Re, 5 node types
    roll = result["evaluation"]["rollout"]
    assert roll["steps"] == 3 and np.isfinite(roll["model"]["rel_l2"]).all()
    pred = load_predictions(Path(result["evaluation"]["predictions"][0]))
    assert pred.field_names == ["u", "v", "p"] and pred.cloud.faces is not None


def test_mesh_kernels_are_precomputed_outside_the_training_step(tmp_path, monkeypatch):
    """data.precompute_kernels (default 'auto' for mesh models): the per-mesh kernels are built
    once per geometry where samples are loaded, kept in <out>/kernel_store, and the training
    step builds none; the losses equal those of the model's own caches exactly, and a
    second run over the same store builds nothing at all."""
    from geo_neuralop.layers import DiscoConv

    data = tmp_path / "cyl"
    generate_dataset("cylinder", data, n_samples=4, params={
        "n_frames": 4, "spin_up": 0.25, "target_vertices": 300}, progress=False, log=None)
    model = {"name": "mesh_no", "latent_shape": [16, 8], "hidden_channels": 8, "n_layers": 1,
             "mesh_layers": True, "mesh_radius": 0.3}
    calls = {"step": 0, "built": 0}
    original_of, original_build = DiscoConv.kernels_of, DiscoConv.build_kernel

    def kernels_of(self, *args, **kwargs):  # the model's own cache: used in forward only
        calls["step"] += 1
        return original_of(self, *args, **kwargs)

    def build_kernel(self, *args, **kwargs):
        calls["built"] += 1
        return original_build(self, *args, **kwargs)

    monkeypatch.setattr(DiscoConv, "kernels_of", kernels_of)
    monkeypatch.setattr(DiscoConv, "build_kernel", build_kernel)
    histories = {}
    for name, precompute in (("store", "auto"), ("caches", False), ("again", "auto")):
        config = write_config(tmp_path / f"{name}.yaml", data, model,
                              trainer={"epochs": 2, "batch_size": 2},
                              evaluation={"after_training": False},
                              precompute_kernels=precompute,
                              kernel_store=str(tmp_path / "shared") if name != "caches"
                              else None)
        calls.update(step=0, built=0)
        result = run_experiment(config, tmp_path / name)
        histories[name] = ([r["train_loss"] for r in result["history"]], dict(calls))
    meshes = len(list((tmp_path / "shared").rglob("*.kb")))
    assert meshes == 3  # train and val trajectories, one mesh each (the test split unread)
    assert histories["store"][1] == {"step": 0, "built": 4 * meshes}  # 4 kernels per mesh
    assert histories["caches"][1]["step"] > 0
    assert histories["again"][1] == {"step": 0, "built": 0}  # read from the shared store
    assert histories["store"][0] == histories["caches"][0] == histories["again"][0]
    from geo_neuralop.training.experiment import kernel_transform

    with pytest.raises(ConfigError, match="precompute_kernels: model Linear has no per-mesh"):
        kernel_transform(torch.nn.Linear(1, 1), {"precompute_kernels": True}, tmp_path)
    assert kernel_transform(torch.nn.Linear(1, 1), {"precompute_kernels": "auto"}, tmp_path) \
        is None


def test_graded_cylinder_meshes_take_a_mesh_radius_in_cells(tmp_path):
    """The DFG channel is graded: a fixed mesh_radius of 0.06 cannot span two directions in
    the coarse corners (the issue's failure), while mesh_radius: {cells: 2.5} becomes a
    radius field of the first training mesh, stored in the model's config, so that the
    saved model rebuilds the same operator."""
    data = tmp_path / "cyl"
    generate_dataset("cylinder", data, n_samples=3, params={
        "n_frames": 4, "spin_up": 0.25, "target_vertices": 300}, progress=False, log=None)
    model = {"name": "mesh_no", "latent_shape": [16, 8], "hidden_channels": 8, "n_layers": 1,
             "mesh_layers": True, "mesh_radius": 0.06}
    fixed = write_config(tmp_path / "fixed.yaml", data, model, trainer={"epochs": 1})
    with pytest.raises(ValueError, match="do not span its 2 directions"):
        run_experiment(fixed, tmp_path / "fixed")
    cells = write_config(tmp_path / "cells.yaml", data, {**model, "mesh_radius": {"cells": 2.5}},
                         trainer={"epochs": 1, "batch_size": 2},
                         evaluation={"rollout_steps": 2})
    result = run_experiment(cells, tmp_path / "cells")
    stored = result["config"]["model"]["mesh_radius"]
    assert set(stored) == {"domain", "values"}
    radii = np.asarray(stored["values"])
    assert radii.max() > 3 * radii.min()  # follows the grading (fine at the cylinder)
    assert np.isfinite(result["evaluation"]["one_step"]["model"]["rel_l2"])
    assert load_model(Path(result["model_path"])).mesh_radius.to_dict() == stored
    bad = write_config(tmp_path / "bad.yaml", data, {**model, "mesh_radius": {"cells": 2.5,
                                                                               "size": 3}})
    with pytest.raises(ConfigError, match="mesh_radius: a radius in cells takes 'cells'"):
        run_experiment(bad, tmp_path / "bad")
