"""Run folders: a user's files are never written over, --overwrite removes only the old run's
files, one process at a time, and file-system errors are one line (RELIABILITY.md T38-T44, E09).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn
from torch.utils.data import TensorDataset

from geo_neuralop.cli import main
from geo_neuralop.data import generate_dataset
from geo_neuralop.training import Trainer, TrainerConfig
from geo_neuralop.training.checkpointing import CheckpointManager, load_checkpoint
from geo_neuralop.training.evaluation import load_trained_model
from geo_neuralop.training.run_folder import RUN_MARKER, RunFolderError, open_run_folder


@pytest.fixture(scope="module")
def darcy(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "darcy"
    generate_dataset("darcy", root, 6, params={"resolution": 9}, progress=False, log=None)
    return root


def write_config(path: Path, data: Path, hidden: int = 4, val_split: str | None = "val",
                 **trainer) -> Path:
    cfg = {"data": {"path": str(data), "val_split": val_split},
           "model": {"name": "fno", "n_modes": [4, 4], "hidden_channels": hidden,
                     "n_layers": 1},
           "trainer": {"epochs": 2, "batch_size": 2, "lr": 1e-3, "progress": False,
                       "device": "cpu", **trainer},
           "evaluation": {"device": "cpu", "prediction_files": 0}}
    path.write_text("# my commented config\n" + yaml.safe_dump(cfg))
    return path


def _one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# --- data loss ---------------------------------------------------------------------------------
def test_a_folder_of_user_files_is_refused_and_left_untouched(tmp_path, darcy, capsys):
    """T42: --out pointing at a folder with the user's config.yaml, model.pt and metrics.csv
    (no checkpoints) had all three silently overwritten."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.yaml").write_text("# my notes\n")
    (out / "model.pt").write_bytes(b"my weights")
    (out / "metrics.csv").write_text("epoch,loss\n1,0.5\n")
    before = _snapshot(out)
    config = write_config(tmp_path / "c.yaml", darcy)
    for extra in ([], ["--overwrite"], ["--resume"]):
        assert main(["train", str(config), "--out", str(out), *extra]) == 2
        line = _one_line(capsys.readouterr().err)
        assert "already holds files that are not a geo_neuralop run (config.yaml, " \
               "metrics.csv, model.pt)" in line
    assert _snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "metrics.csv", "model.pt"]


def test_training_into_the_folder_of_its_own_config_is_refused(tmp_path, darcy, capsys):
    """T43: `train DIR/config.yaml --out DIR` replaced the user's commented config."""
    folder = tmp_path / "experiment"
    folder.mkdir()
    config = write_config(folder / "config.yaml", darcy)
    text = config.read_text()
    assert main(["train", str(config), "--out", str(folder)]) == 2
    assert "not a geo_neuralop run (config.yaml)" in _one_line(capsys.readouterr().err)
    assert config.read_text() == text and text.startswith("# my commented config")


def test_overwrite_removes_the_old_best_checkpoint(tmp_path, darcy):
    """T41: --overwrite kept the old run's checkpoints/best.pt, and with no validation split
    evaluation then scored the OLD model."""
    out = tmp_path / "run"
    assert main(["train", str(write_config(tmp_path / "a.yaml", darcy, hidden=4)), "--out",
                 str(out)]) == 0
    assert (out / "checkpoints" / "best.pt").exists()
    (out / "notes.txt").write_text("mine")  # a user's file inside our run folder is kept
    new = write_config(tmp_path / "b.yaml", darcy, hidden=6, val_split=None)
    assert main(["train", str(new), "--out", str(out), "--overwrite"]) == 0
    assert not (out / "checkpoints" / "best.pt").exists()
    assert (out / "notes.txt").read_text() == "mine"
    metrics = yaml.safe_load((out / "evaluation" / "metrics.json").read_text())
    assert metrics["checkpoint"].endswith("last.pt")
    model, _ = load_trained_model(out)
    assert model.config["hidden_channels"] == 6  # the new model, not the old one


def test_the_marker_identifies_our_runs(tmp_path, darcy):
    out = tmp_path / "run"
    config = write_config(tmp_path / "a.yaml", darcy, epochs=1)
    assert main(["train", str(config), "--out", str(out), "--no-eval"]) == 0
    assert (out / RUN_MARKER).exists()
    assert main(["train", str(config), "--out", str(out), "--resume", "--no-eval"]) == 0
    assert main(["train", str(config), "--out", str(out), "--no-eval"]) == 2  # holds a run


def test_the_trainer_alone_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "thesis.tex").write_text("\\documentclass")
    data = TensorDataset(torch.randn(8, 3), torch.randn(8, 1))
    cfg = TrainerConfig(epochs=1, batch_size=4, out_dir=str(tmp_path), progress=False)
    with pytest.raises(RunFolderError, match=r"not a geo_neuralop run \(thesis.tex\)"):
        Trainer(nn.Linear(3, 1), data, loss=nn.MSELoss(), config=cfg).fit()
    assert [p.name for p in tmp_path.iterdir()] == ["thesis.tex"]


# --- one process at a time (T44) ---------------------------------------------------------------
def test_a_second_train_on_a_busy_folder_is_refused_naming_the_first(tmp_path, darcy, capsys):
    """T44: two train processes on one --out: one died obscurely, the other's metrics.jsonl
    repeated an epoch. Now the second is refused at once, naming the first one's pid."""
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from geo_neuralop.training.run_folder import open_run_folder\n"
        f"with open_run_folder({str(out)!r}):\n"
        "    print('held', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        config = write_config(tmp_path / "c.yaml", darcy)
        assert main(["train", str(config), "--out", str(out)]) == 2
        line = _one_line(capsys.readouterr().err)
        assert f"run folder {out} is in use by another process (pid {holder.pid}" in line
        assert not (out / "checkpoints").exists() and not (out / "metrics.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    assert main(["train", str(config), "--out", str(out), "--no-eval"]) == 0


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with open_run_folder(tmp_path / "r") as folder, open_run_folder(folder):
        pass
    with open_run_folder(tmp_path / "r", resume=True):
        pass


# --- file-system errors, devices, folders given as files (T38-T40, E09) ------------------------
def test_unwritable_run_folder_is_one_line(tmp_path, darcy, monkeypatch, capsys):
    """T38: a new run into an immutable folder gave a PermissionError traceback. Simulated
    (the tests may run as root, which ignores permissions)."""
    from geo_neuralop.training import run_folder

    def refuse(folder, *args, **kwargs):
        raise PermissionError(13, "Operation not permitted", str(Path(folder) / RUN_MARKER))

    monkeypatch.setattr(run_folder, "write_marker", refuse)
    config = write_config(tmp_path / "c.yaml", darcy)
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("geo-neuralop train: cannot access") and \
        "Operation not permitted" in line and "read-only or immutable" in line


def test_folder_made_immutable_during_training_is_one_line_and_resumable(tmp_path, darcy,
                                                                         monkeypatch, capsys):
    """T40: the folder became immutable after epoch 1: a traceback at the next checkpoint.
    Now one line (rc 2); nothing is lost, and --resume continues once it is writable again."""
    config = write_config(tmp_path / "c.yaml", darcy, epochs=3)
    reference = tmp_path / "reference"
    assert main(["train", str(config), "--out", str(reference), "--no-eval"]) == 0
    original = CheckpointManager.save
    calls = []

    def save(self, state, best=False):
        calls.append(1)
        if len(calls) == 2:
            raise PermissionError(1, "Operation not permitted", str(self.directory / "x.pt"))
        return original(self, state, best)

    monkeypatch.setattr(CheckpointManager, "save", save)
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--no-eval"]) == 2
    assert "Operation not permitted" in _one_line(capsys.readouterr().err)
    assert load_checkpoint(out / "checkpoints" / "last.pt")["progress"]["epoch"] == 1
    monkeypatch.setattr(CheckpointManager, "save", original)
    assert main(["train", str(config), "--out", str(out), "--resume", "--no-eval"]) == 0
    a = load_checkpoint(out / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(reference / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_a_folder_given_as_the_config_file_is_one_line(tmp_path, capsys):
    assert main(["train", str(tmp_path)]) == 2
    assert str(tmp_path) in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "gpu0"])
def test_unknown_device_is_one_line(tmp_path, device, capsys):
    """E09: --device tpu gave a RuntimeError traceback from torch.device."""
    assert main(["evaluate", str(tmp_path), "--device", device]) == 2
    assert _one_line(capsys.readouterr().err) == (
        f"geo-neuralop evaluate: --device {device!r} is not a device; use auto, cpu, cuda or "
        f"cuda:I (e.g. cuda:0)")


def test_a_run_folder_of_an_earlier_version_is_recognised_by_its_checkpoint(tmp_path, darcy):
    """Run folders written before the marker existed (a demo run kept from an earlier
    version) stay ours: their training checkpoint proves it, so --overwrite and --resume
    still work on them, while a file merely named checkpoints/last.pt proves nothing."""
    out = tmp_path / "run"
    config = write_config(tmp_path / "a.yaml", darcy, epochs=1)
    assert main(["train", str(config), "--out", str(out), "--no-eval"]) == 0
    (out / RUN_MARKER).unlink()
    assert main(["train", str(config), "--out", str(out), "--overwrite", "--no-eval"]) == 0
    assert (out / RUN_MARKER).exists()
    fake = tmp_path / "fake"
    (fake / "checkpoints").mkdir(parents=True)
    (fake / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    assert main(["train", str(config), "--out", str(fake), "--overwrite", "--no-eval"]) == 2
    assert (fake / "checkpoints" / "last.pt").read_bytes() == b"not a checkpoint"


def test_unknown_training_device_is_one_line(tmp_path, darcy, capsys):
    """trainer.device: tpu reached torch.device inside the trainer (a RuntimeError traceback);
    it is a config error naming the key now."""
    config = write_config(tmp_path / "c.yaml", darcy)
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--set",
                 "trainer.device=tpu"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "trainer.device: 'tpu' is not a device; use auto, cpu, cuda or cuda:I" in line
    assert not (tmp_path / "run").exists()
