"""The generation driver: reproducible, resumable, never writing over data; the CLI."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from geo_neuralop.cli import main
from geo_neuralop.data import (
    DatasetError,
    FieldNormalizer,
    generate_dataset,
    generators,
    load_dataset,
    read_card,
    read_trajectory,
    resolve_parameters,
)
from geo_neuralop.data import generate as gen
from geo_neuralop.data.generators import GeneratorSpec
from geo_neuralop.data.storage import sample_indices, sample_path
from geo_neuralop.geometry import jittered_rectangle_mesh

DARCY = {"resolution": 9}


def _generate(kind, root, n, **kwargs):
    kwargs.setdefault("progress", False)
    kwargs.setdefault("log", None)
    return generate_dataset(kind, root, n, **kwargs)


def _fields(root, i):
    return read_trajectory(sample_path(root, i)).fields


# --- a fake cylinder simulator with the real one's interface ---------------------------
def fake_simulate(reynolds, center=(0.2, 0.2), radius=0.05, n_frames=4, frame_interval=0.1,
                  spin_up=0.5, dt=0.01, target_vertices=40, seed=0, progress=False):
    cloud = jittered_rectangle_mesh((6 + seed % 3, 4), domain=((0.0, 2.2), (0.0, 0.41)),
                                    seed=seed % 1000, dtype=torch.float64)
    points, faces = cloud.pos.numpy(), cloud.faces.numpy()
    times = spin_up + frame_interval * np.arange(n_frames)
    x = points[None, :, 0]
    velocity = np.stack([reynolds * np.sin(times[:, None] + x),
                         radius * np.cos(times[:, None] * x)], axis=-1)
    markers = np.zeros(len(points), dtype=np.int64)
    markers[points[:, 0] == 0.0] = 1
    force_times = dt * np.arange(1, 11)
    return SimpleNamespace(
        points=points, triangles=faces, vertex_markers=markers, times=times,
        velocity=velocity, pressure=center[0] + 0.0 * velocity[..., 0],
        force_times=force_times, drag=3.0 + force_times, lift=np.sin(force_times),
        attrs={"reynolds": reynolds, "big": np.zeros(1000), "small": np.ones(2),
               "courant": np.float64(0.3)})


@pytest.fixture
def fake_cylinder(monkeypatch):
    calls = []

    def simulate(**kwargs):
        calls.append(kwargs)
        return fake_simulate(**kwargs)

    simulate.__signature__ = __import__("inspect").signature(fake_simulate)
    monkeypatch.setattr(generators, "_cylinder_simulator", lambda: simulate)
    return calls


def test_cylinder_driver_with_a_fake_simulator(tmp_path, fake_cylinder):
    root = tmp_path / "cyl"
    _generate("cylinder", root, 4, seed=3, params={"reynolds_range": [80, 120],
                                                   "n_frames": 3})
    card = read_card(root)
    # the simulator's defaults are recorded, given values passed through
    assert card["parameters"]["frame_interval"] == 0.1 and card["parameters"]["n_frames"] == 3
    assert card["task"]["conditioning"] == ["reynolds"]
    assert len(fake_cylinder) == 4
    for i, call in enumerate(fake_cylinder):
        assert 80 <= call["reynolds"] <= 120 and 0.04 <= call["radius"] <= 0.06
        assert 0.15 <= call["center"][0] <= 0.25 and call["n_frames"] == 3
        traj = read_trajectory(sample_path(root, i))
        expected = fake_simulate(**call)
        np.testing.assert_allclose(traj.fields["u"], expected.velocity[..., 0], rtol=1e-6)
        np.testing.assert_allclose(traj.fields["v"], expected.velocity[..., 1], rtol=1e-6)
        np.testing.assert_array_equal(traj.static["node_type"], expected.vertex_markers)
        np.testing.assert_array_equal(traj.series["lift"], expected.lift)
        assert traj.params["reynolds"] == call["reynolds"]
        assert traj.params["solver"]["courant"] == 0.3 and traj.params["solver"]["big"] is None
        assert float(traj.weights.sum()) == pytest.approx(2.2 * 0.41)  # lumped mesh weights
        assert (root / "samples" / f"sample_{i:06d}.vtu").exists()
        assert f"samples/sample_{i:06d}.vtu" in card["files"]
    # a different seed draws different parameters; the same seed the same ones
    fake_cylinder.clear()
    _generate("cylinder", tmp_path / "again", 2, seed=3, params={"reynolds_range": [80, 120],
                                                                 "n_frames": 3})
    assert fake_cylinder[0]["reynolds"] == pytest.approx(
        read_trajectory(sample_path(root, 0)).params["reynolds"])


def test_cylinder_dataset_batches_meshes_of_different_sizes(tmp_path, fake_cylinder):
    from torch_geometric.loader import DataLoader

    root = tmp_path / "cyl"
    _generate("cylinder", root, 6, params={"n_frames": 4}, split_fractions=(1, 0, 0))
    ds = load_dataset(root, "train", target_steps=2)
    sizes = {read_trajectory(sample_path(root, i)).num_points for i in range(6)}
    assert len(sizes) > 1
    assert len(ds) == 6 * 2  # 4 frames: windows starting at 0 and 1
    batch = next(iter(DataLoader(ds, batch_size=5, shuffle=False)))
    assert batch.x.shape == (batch.num_nodes, 3) and batch.y.shape == (batch.num_nodes, 2, 3)
    assert batch.conditioning.shape == (5, 1)
    assert batch.faces.max() < batch.num_nodes
    reynolds = read_trajectory(sample_path(root, 0)).params["reynolds"]
    assert float(ds[0].conditioning) == pytest.approx(reynolds, rel=1e-6)


def test_cylinder_with_the_real_solver(tmp_path):
    pytest.importorskip("skfem")
    root = tmp_path / "cyl"
    _generate("cylinder", root, 1, params={"n_frames": 2, "spin_up": 0.01,
                                           "target_vertices": 400},
              split_fractions=(1, 0, 0))
    traj = read_trajectory(sample_path(root, 0))
    assert traj.faces is not None and traj.num_frames == 2
    assert set(np.unique(traj.static["node_type"])) == {0, 1, 2, 3, 4}
    assert np.isfinite(traj.fields["p"]).all()
    assert traj.fields["u"][1].max() > traj.fields["u"][0].max() > 0  # inflow ramping up
    assert 60 <= traj.params["reynolds"] <= 200
    assert (root / "samples" / "sample_000000.vtu").exists()
    sample = load_dataset(root, "train")[0]
    assert sample.x.shape == (traj.num_points, 3) and sample.faces.shape[1] == 3


def test_samples_depend_only_on_seed_and_index(tmp_path):
    _generate("darcy", tmp_path / "a", 3, seed=5, params=DARCY)
    _generate("darcy", tmp_path / "b", 5, seed=5, params=DARCY)
    _generate("darcy", tmp_path / "c", 3, seed=6, params=DARCY)
    for i in range(3):
        np.testing.assert_array_equal(_fields(tmp_path / "a", i)["pressure"],
                                      _fields(tmp_path / "b", i)["pressure"])
    assert not np.array_equal(_fields(tmp_path / "a", 0)["permeability"],
                              _fields(tmp_path / "c", 0)["permeability"])


def test_interrupted_generation_resumes_without_redoing_finished_samples(tmp_path,
                                                                          monkeypatch):
    root = tmp_path / "d"
    original = gen.GENERATORS["darcy"]
    made = []

    def failing(index, rng, params):
        made.append(index)
        if index == 2:
            raise MemoryError("simulated crash")
        return original.make(index, rng, params)

    monkeypatch.setitem(gen.GENERATORS, "darcy",
                        GeneratorSpec(**{**original.__dict__, "make": failing}))
    with pytest.raises(RuntimeError, match="sample 2 of 'darcy' failed: simulated crash"):
        _generate("darcy", root, 5, params=DARCY)
    assert sample_indices(root) == [0, 1]
    assert not (root / "card.yaml").exists() and (root / "generation.json").exists()
    with pytest.raises(DatasetError, match="interrupted"):
        load_dataset(root)
    # a half-written temporary file from the crash is cleaned up on resume
    (root / "samples" / ".sample_000002.x1y2.tmp.h5").write_bytes(b"partial")
    mtimes = {i: sample_path(root, i).stat().st_mtime_ns for i in (0, 1)}
    monkeypatch.setitem(gen.GENERATORS, "darcy",
                        GeneratorSpec(**{**original.__dict__, "make": lambda i, r, p: (
                            made.append(i), original.make(i, r, p))[1]}))
    made.clear()
    messages = []
    generate_dataset("darcy", root, 5, params=DARCY, progress=False, log=messages.append)
    assert made == [2, 3, 4]
    assert any("resuming, 2 of 5" in m for m in messages)
    assert any("temporary" in m for m in messages)
    assert {i: sample_path(root, i).stat().st_mtime_ns for i in (0, 1)} == mtimes
    assert sorted(p.name for p in (root / "samples").iterdir())[0] == "sample_000000.h5"
    card = read_card(root)
    assert card["n_samples"] == 5 and not (root / "generation.json").exists()
    # running again does nothing
    made.clear()
    messages.clear()
    generate_dataset("darcy", root, 5, params=DARCY, progress=False, log=messages.append)
    assert made == [] and "already complete" in messages[0]


def test_existing_data_is_never_overwritten_silently(tmp_path):
    root = tmp_path / "d"
    _generate("darcy", root, 3, params=DARCY)
    before = sample_path(root, 0).read_bytes()
    with pytest.raises(DatasetError, match=r"already holds a different dataset: parameters "
                                           r"\['resolution', 'solver_resolution'\] differ"):
        _generate("darcy", root, 3, params={"resolution": 17})
    with pytest.raises(DatasetError, match="seed"):
        _generate("darcy", root, 3, seed=1, params=DARCY)
    with pytest.raises(DatasetError, match="n_samples"):
        _generate("darcy", root, 4, params=DARCY)
    assert sample_path(root, 0).read_bytes() == before
    # --overwrite replaces our files, and only ours
    (root / "my_notes.txt").write_text("keep me")
    _generate("darcy", root, 2, params={"resolution": 17}, overwrite=True)
    assert read_card(root)["parameters"]["resolution"] == 17
    assert sample_indices(root) == [0, 1]
    assert (root / "my_notes.txt").read_text() == "keep me"
    # a folder that is not a dataset is refused, even with overwrite
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"\xff\xd8")
    for overwrite in (False, True):
        with pytest.raises(DatasetError, match="holds no geo_neuralop dataset"):
            _generate("darcy", foreign, 2, params=DARCY, overwrite=overwrite)
    assert sorted(p.name for p in foreign.iterdir()) == ["cat.jpg"]


def test_damaged_finished_sample_stops_the_resume(tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    manifest = gen.make_manifest("darcy", resolve_parameters("darcy", DARCY), 0, 3,
                                 gen.compute_splits(3))
    (root / "generation.json").write_text(json.dumps(manifest))
    gen.generate_sample("darcy", 0, 0, manifest["parameters"], root, manifest["dataset_hash"])
    data = sample_path(root, 0).read_bytes()
    sample_path(root, 0).write_bytes(data[:500])
    with pytest.raises(DatasetError, match="cannot be reused.*truncated or corrupted"):
        _generate("darcy", root, 3, params=DARCY)
    assert sample_path(root, 0).stat().st_size == 500  # left for the user to inspect


def test_bad_parameters_are_reported():
    with pytest.raises(ValueError, match=r"has no parameter\(s\) \['resolutoin'\]"):
        resolve_parameters("darcy", {"resolutoin": 32})
    with pytest.raises(ValueError, match="unknown generator 'heat'"):
        resolve_parameters("heat")
    with pytest.raises(ValueError, match="unstable"):
        resolve_parameters("swe", {"dt": 1800})
    with pytest.raises(ValueError, match="reynolds_range"):
        resolve_parameters("cylinder", {"reynolds_range": [200, 60]})
    assert resolve_parameters("swe", {"nlat": 64})["dt"] == 450.0
    assert resolve_parameters("ns2d")["solver_resolution"] == 64


def test_swe_dataset_normalizer_uses_the_training_split_only(tmp_path):
    root = tmp_path / "swe"
    _generate("swe", root, 4, params={"n_frames": 3}, split_fractions=(0.5, 0.25, 0.25))
    card = read_card(root)
    assert card["splits"]["train"] == [0, 2]
    assert card["statistics"]["frames_per_sample"] == 3
    norm = FieldNormalizer.load(root / "normalizer.json")

    def fit(indices):
        return FieldNormalizer.fit((read_trajectory(sample_path(root, i)).fields,
                                    read_trajectory(sample_path(root, i)).weights)
                                   for i in indices)

    train, everything = fit([0, 1]), fit(range(4))
    for name in ("height", "vorticity", "divergence"):
        assert norm.mean[name] == pytest.approx(train.mean[name], rel=1e-9, abs=1e-20)
        assert norm.std[name] == pytest.approx(train.std[name], rel=1e-9)
        assert card["normalizer"]["fields"][name]["std"] == pytest.approx(norm.std[name])
    assert abs(everything.std["vorticity"] / norm.std["vorticity"] - 1) > 1e-4


def test_parallel_workers_give_the_same_files(tmp_path):
    _generate("darcy", tmp_path / "one", 4, params=DARCY, workers=1)
    _generate("darcy", tmp_path / "two", 4, params=DARCY, workers=2)
    a, b = read_card(tmp_path / "one"), read_card(tmp_path / "two")
    for i in range(4):
        np.testing.assert_array_equal(_fields(tmp_path / "one", i)["pressure"],
                                      _fields(tmp_path / "two", i)["pressure"])
    assert a["normalizer"] == b["normalizer"]


def test_cli_generate(tmp_path, capsys):
    out = str(tmp_path / "darcy_cli")
    args = ["generate", "darcy", "--out", out, "--n-samples", "3", "--param", "resolution=9",
            "--no-progress"]
    assert main(args) == 0
    assert "card.yaml" in capsys.readouterr().out
    assert main(args) == 0
    assert "already complete" in capsys.readouterr().out
    assert main(args[:-2] + ["resolution=17", "--no-progress"]) == 2
    assert "already holds a different dataset" in capsys.readouterr().err
    assert main(["generate", "darcy", "--out", out, "--param", "resolution"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["generate", "swe", "--out", str(tmp_path / "s"), "--param", "dt=1800"]) == 2
    assert "unstable" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # parameters are checked before anything is written
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "resumes an interrupted run" in text and "initial_condition=random" in text
