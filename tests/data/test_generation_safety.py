"""Generation never touches a user's files, refuses what is not ours with one line, locks its
folder, verifies what it claims complete, and can be split into shards (RELIABILITY.md D*).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from geo_neuralop.cli import main
from geo_neuralop.data import DatasetError, generate_dataset, load_dataset, read_card
from geo_neuralop.data import generate as gen
from geo_neuralop.data.storage import sample_indices, sample_path
from geo_neuralop.utils.folders import FolderBusyError, FolderLock

DARCY = {"resolution": 9}


def _generate(kind, root, n, **kwargs):
    kwargs.setdefault("progress", False)
    kwargs.setdefault("log", None)
    return generate_dataset(kind, root, n, **kwargs)


def _cli(*args):
    return main(["generate", *args, "--no-progress"])


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


# --- data loss: --overwrite deletes only our own files (D25, D28) ------------------------------
def test_overwrite_keeps_user_files_with_sample_like_names(tmp_path):
    """D25: sample_000001_backup.h5 and sample_best.vtu survive --overwrite of another dataset,
    and so does an HDF5 file named like a sample whose contents are not ours."""
    root = tmp_path / "d"
    _generate("darcy", root, 3, params=DARCY)
    samples = root / "samples"
    (samples / "sample_000001_backup.h5").write_bytes(sample_path(root, 1).read_bytes())
    (samples / "sample_best.vtu").write_text("<?xml my mesh")
    (samples / "my_notes.txt").write_text("notes")
    (root / "notes.txt").write_text("top")
    _generate("darcy", root, 2, params={"resolution": 17}, overwrite=True)
    kept = sorted(p.name for p in samples.iterdir())
    assert kept == ["my_notes.txt", "sample_000000.h5", "sample_000001.h5",
                    "sample_000001_backup.h5", "sample_best.vtu"]
    assert (root / "notes.txt").read_text() == "top"
    assert read_card(root)["parameters"]["resolution"] == 17


def test_overwrite_never_deletes_a_listed_file_that_is_not_ours(tmp_path):
    """A file at a listed sample name whose format attribute is not ours is kept, and a card
    entry naming a file outside the folder is never followed."""
    root = tmp_path / "d"
    _generate("darcy", root, 2, params=DARCY)
    with h5py.File(sample_path(root, 1), "w") as f:  # the user's own HDF5 under our name
        f.attrs["format"] = "my_lab.measurement"
    outside = tmp_path / "outside.h5"
    outside.write_bytes(b"precious")
    card = read_card(root)
    card["files"]["../outside.h5"] = {"bytes": 8, "sha256": _sha(outside)}
    (root / "card.yaml").write_text(json.dumps(card))
    with pytest.raises(DatasetError, match="cannot be reused"):
        _generate("darcy", root, 2, params={"resolution": 17}, overwrite=True)
    assert outside.read_bytes() == b"precious"
    with h5py.File(sample_path(root, 1), "r") as f:
        assert f.attrs["format"] == "my_lab.measurement"


@pytest.mark.parametrize("content", [{"format": "mine", "n_samples": 3}, [1, 2, 3],
                                     {"generator": "swe", "note": "my run"}, "not json {"],
                         ids=["foreign-dict", "list", "no-format", "broken"])
def test_a_generation_json_of_someone_else_is_never_taken_for_ours(tmp_path, content, capsys):
    """D28 (deleted with --overwrite), D29 (AttributeError traceback), D30 (compared as if it
    were a dataset): a generation.json without our format is refused, nothing touched."""
    root = tmp_path / "mine"
    root.mkdir()
    text = content if isinstance(content, str) else json.dumps(content)
    (root / "generation.json").write_text(text)
    for extra in ([], ["--overwrite"]):
        assert _cli("darcy", "--out", str(root), "--n-samples", "2", "--param",
                    "resolution=9", *extra) == 2
        line = _one_line(capsys.readouterr().err)
        assert "is not a geo_neuralop generation manifest" in line and "choose another" in line
    assert sorted(p.name for p in root.iterdir()) == ["generation.json"]
    assert (root / "generation.json").read_text() == text


# --- silent wrong results and unclear errors (D07, D15, D18, D35, D41) ------------------------
def test_zero_samples_is_refused(tmp_path, capsys):
    """D07: --n-samples 0 made the default 20 samples."""
    assert _cli("darcy", "--out", str(tmp_path / "z"), "--n-samples", "0") == 2
    assert "--n-samples must be a positive integer, got 0" in capsys.readouterr().err
    assert not (tmp_path / "z").exists()
    with pytest.raises(ValueError, match="n_samples must be a positive int, got 0"):
        _generate("darcy", tmp_path / "z", 0, params=DARCY)


@pytest.mark.parametrize("value", ["1e2", "1E+2", "100.0", "1.0e2"])
def test_param_reads_numbers_as_train_set_does(tmp_path, value):
    """D18/D41: --param max_wind=1e2 was the string '1e2' (YAML 1.1) and crashed a worker."""
    out = tmp_path / "swe"
    assert _cli("swe", "--out", str(out), "--n-samples", "1", "--param", "nlat=8",
                "--param", "n_frames=2", "--param", f"max_wind={value}",
                "--param", "height_rms=5e1") == 0
    params = read_card(out)["parameters"]
    assert params["max_wind"] == 100.0 and params["height_rms"] == 50.0


def test_a_parameter_of_the_wrong_kind_is_named_before_anything_is_written(tmp_path, capsys):
    """D41: a bad value failed inside sample 0 without naming the parameter and left a
    half-made folder; now it is refused first, and a folder whose earlier run made no sample
    is taken over by the fixed command without --overwrite."""
    out = tmp_path / "swe"
    assert _cli("swe", "--out", str(out), "--param", "height_rms=fifty") == 2
    assert _one_line(capsys.readouterr().err) == (
        "geo-neuralop generate: generator 'swe' parameter height_rms must be a number, got "
        "'fifty'")
    assert not out.exists()
    # an earlier run that failed before its first sample (simulated): only our manifest left
    out.mkdir()
    manifest = gen.make_manifest("darcy", gen.resolve_parameters("darcy", {"resolution": 17}), 0,
                             2, gen.compute_splits(2))
    (out / "generation.json").write_text(json.dumps(manifest))
    (out / "samples").mkdir()
    assert _cli("darcy", "--out", str(out), "--n-samples", "2", "--param", "resolution=9") == 0
    assert read_card(out)["parameters"]["resolution"] == 9


def test_darcy_resolution_two_names_the_real_rule(capsys, tmp_path):
    """D15: resolution=2 reported 'solver_resolution - 1 must be a multiple of resolution - 1,
    got 2 and 2' (1 divides 1)."""
    assert _cli("darcy", "--out", str(tmp_path / "d"), "--param", "resolution=2") == 2
    assert "resolution must be an int >= 3 (nodes per side, including the two boundary " \
           "nodes), got 2" in capsys.readouterr().err
    with pytest.raises(ValueError, match="resolution must be an int >= 3"):
        gen.resolve_parameters("darcy", {"resolution": np.int64(2)})
    assert gen.resolve_parameters("darcy", {"resolution": np.int64(5)})["resolution"] == 5


def test_a_corrupted_sample_of_a_complete_dataset_is_reported(tmp_path, capsys):
    """D35: one flipped byte (same size) was 'already complete; nothing to do'."""
    root = tmp_path / "d"
    args = ("darcy", "--out", str(root), "--n-samples", "3", "--param", "resolution=9")
    assert _cli(*args) == 0
    path = sample_path(root, 1)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    capsys.readouterr()
    assert _cli(*args) == 2
    assert "samples/sample_000001.h5 does not match its SHA-256" in \
        _one_line(capsys.readouterr().err)


# --- paths a card names stay inside the dataset folder (D39, D40) -----------------------------
@pytest.mark.parametrize("entry", ["../../../../../../dev/zero", "/dev/zero",
                                   "../outside.txt", "samples/../../outside.txt"])
def test_card_paths_are_confined_to_the_dataset_folder(tmp_path, entry):
    """D39: ../../etc/hostname was hashed and its size reported; D40: /dev/zero hung
    loading and training. Both are refused at once, naming the entry."""
    root = tmp_path / "d"
    _generate("darcy", root, 3, params=DARCY)
    (tmp_path / "outside.txt").write_text("x")
    card = read_card(root)
    card["files"][entry] = {"bytes": 0, "sha256": "0" * 64}
    (root / "card.yaml").write_text(json.dumps(card))
    def hung(signum, frame):
        raise TimeoutError("loading hung (hashing an endless file?)")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)  # before the fix, /dev/zero was hashed forever
    try:
        start = time.perf_counter()
        for verify in (True, False):
            with pytest.raises(DatasetError, match=r"files entry .* (leaves the folder|is an "
                                                   r"absolute path|is not a regular file)"):
                load_dataset(root, "train", verify=verify)
        assert time.perf_counter() - start < 5
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_card_entry_that_is_a_device_or_folder_is_refused(tmp_path):
    root = tmp_path / "d"
    _generate("darcy", root, 3, params=DARCY)
    os.symlink("/dev/zero", root / "zero.bin")  # inside by name, a device by nature
    card = read_card(root)
    card["files"]["zero.bin"] = {"bytes": 0, "sha256": "0" * 64}
    card["files"]["samples"] = {"bytes": 0, "sha256": "0" * 64}
    (root / "card.yaml").write_text(json.dumps(card))
    with pytest.raises(DatasetError, match="(leaves the folder|is a folder|not a regular file)"):
        load_dataset(root, "train", verify=False)


# --- one writer at a time; errors of the file system as one line (D22, D34) -------------------
def test_a_second_generation_into_the_same_folder_is_refused_naming_the_first(tmp_path,
                                                                               capsys):
    root = tmp_path / "d"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from geo_neuralop.utils.folders import FolderLock\n"
        f"lock = FolderLock({str(root)!r}).acquire(); print('held', flush=True); "
        "time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert _cli("darcy", "--out", str(root), "--n-samples", "2", "--param",
                    "resolution=9") == 2
        line = _one_line(capsys.readouterr().err)
        assert f"in use by another process (pid {holder.pid}" in line
        with pytest.raises(FolderBusyError):
            FolderLock(root).acquire()
    finally:
        holder.kill()
        holder.wait()
    assert _cli("darcy", "--out", str(root), "--n-samples", "2", "--param", "resolution=9") == 0


def _lock_holder(root: Path, shared: bool) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from geo_neuralop.utils.folders import FolderLock\n"
        f"lock = FolderLock({str(root)!r}, shared={shared}).acquire(); "
        "print('held', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_finished_dataset_is_confirmed_while_another_process_confirms_it(tmp_path):
    """Two training runs started at once both confirm one finished dataset: the check takes
    a shared lock (it took the exclusive one, and the second run died with FolderBusyError)."""
    root = tmp_path / "d"
    _generate("darcy", root, 3, params=DARCY)
    card = (root / "card.yaml").read_bytes()
    holder = _lock_holder(root, shared=True)
    try:
        messages = []
        assert _generate("darcy", root, 3, params=DARCY, log=messages.append) == \
            root / "card.yaml"
        assert any("already complete" in m for m in messages), messages
        assert (root / "card.yaml").read_bytes() == card
        # another dataset in the folder still needs the exclusive lock, which is refused
        with pytest.raises(FolderBusyError):
            _generate("darcy", root, 4, params=DARCY)
    finally:
        holder.kill()
        holder.wait()


def test_a_finished_dataset_is_not_confirmed_while_a_writer_holds_it(tmp_path):
    root = tmp_path / "d"
    _generate("darcy", root, 3, params=DARCY)
    holder = _lock_holder(root, shared=False)
    try:
        with pytest.raises(FolderBusyError, match=f"pid {holder.pid}"):
            _generate("darcy", root, 3, params=DARCY)
    finally:
        holder.kill()
        holder.wait()


def test_permission_errors_are_one_line(tmp_path, monkeypatch, capsys):
    """D22: a read-only or immutable --out gave a PermissionError traceback (rc 1). Simulated,
    since the tests may run as root."""
    import pathlib

    real_mkdir = pathlib.Path.mkdir

    def mkdir(self, *args, **kwargs):
        if "locked_parent" in str(self):
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    out = tmp_path / "locked_parent" / "d"
    assert _cli("darcy", "--out", str(out), "--n-samples", "2", "--param", "resolution=9") == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("geo-neuralop generate: cannot access") and "Permission denied" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_is_one_line(tmp_path, capsys):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        assert _cli("darcy", "--out", str(parent / "d"), "--param", "resolution=9") == 2
        assert "Permission denied" in _one_line(capsys.readouterr().err)
    finally:
        parent.chmod(0o755)


# --- kill -9 of the parent leaves no worker behind (D33) ---------------------------------------
def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_kill_9_of_generate_with_workers_leaves_no_orphans(tmp_path):
    out = tmp_path / "d"
    proc = subprocess.Popen(
        [sys.executable, "-m", "geo_neuralop.cli", "generate", "darcy", "--out", str(out),
         "--n-samples", "40", "--param", "resolution=9", "--param", "solver_resolution=257",
         "--workers", "2", "--no-progress"], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not sample_indices(out):
            time.sleep(0.2)  # the pool is at work once the first sample is written
        assert sample_indices(out), "no sample was written"
        family = _descendants(proc.pid)
        assert len(family) >= 3  # forkserver and two workers (and the resource tracker)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(p) for p in family):
        time.sleep(0.2)
    assert not [p for p in family if _alive(p)]
    done = len(sample_indices(out))
    time.sleep(1.0)
    assert len(sample_indices(out)) == done  # nobody writes samples any more


# --- shards (issue 13: many machines, one dataset) ---------------------------------------------
def test_shards_equal_one_run(tmp_path):
    """Three shards one after the other, then finalize: the same bytes as one run (the
    two-process version below runs them at the same time)."""
    sharded, single = tmp_path / "sharded", tmp_path / "single"
    for i in (2, 0, 1):
        assert _generate("darcy", sharded, 7, seed=3, params=DARCY, shard=f"{i}/3") is None
        assert not (sharded / "card.yaml").exists()
    _generate("darcy", sharded, 7, seed=3, params=DARCY, finalize=True)
    _generate("darcy", single, 7, seed=3, params=DARCY)
    assert read_card(sharded)["files"] == read_card(single)["files"]


@pytest.mark.slow
def test_two_shards_in_two_processes_equal_one_run(tmp_path):
    """Shards 0/2 and 1/2 run at the same time in two processes into one folder; --finalize
    writes the card; every sample file and every checksum of the card equal those of a
    single-process run, byte for byte."""
    args = ["-m", "geo_neuralop.cli", "generate", "darcy", "--n-samples", "7", "--seed", "3",
            "--param", "resolution=9", "--no-progress"]
    sharded, single = tmp_path / "sharded", tmp_path / "single"
    procs = [subprocess.Popen([sys.executable, *args, "--out", str(sharded), "--shard",
                               f"{i}/2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert not (sharded / "card.yaml").exists()  # shards never write the card
    assert sample_indices(sharded) == list(range(7))
    assert _generate("darcy", sharded, 7, seed=3, params=DARCY, finalize=True) == \
        sharded / "card.yaml"
    _generate("darcy", single, 7, seed=3, params=DARCY)
    a, b = read_card(sharded), read_card(single)
    assert a["files"] == b["files"]  # every sha256 and size, normalizer included
    for i in range(7):
        assert _sha(sample_path(sharded, i)) == _sha(sample_path(single, i))
    assert a["statistics"]["samples_timed"] == 7
    assert not list(sharded.glob(".geo_neuralop-shard-*")) and not (sharded / "timings").exists()


def test_finalize_refuses_missing_and_damaged_samples(tmp_path, capsys):
    root = tmp_path / "d"
    base = ("darcy", "--out", str(root), "--n-samples", "5", "--param", "resolution=9")
    assert _cli(*base, "--shard", "0/2") == 0
    assert sample_indices(root) == [0, 2, 4]
    capsys.readouterr()
    assert _cli(*base, "--finalize") == 2
    assert "cannot finalize, 2 of 5 samples are missing (indices 1, 3)" in \
        _one_line(capsys.readouterr().err)
    assert _cli(*base, "--shard", "1/2") == 0
    path = sample_path(root, 3)
    path.write_bytes(path.read_bytes()[:1000])  # truncated by a failing disk
    capsys.readouterr()
    assert _cli(*base, "--finalize") == 2
    assert "sample_000003.h5" in _one_line(capsys.readouterr().err)
    assert not (root / "card.yaml").exists()
    path.unlink()
    assert _cli(*base, "--shard", "1/2") == 0  # makes sample 3 again
    assert _cli(*base, "--finalize") == 0
    assert read_card(root)["n_samples"] == 5
    assert _cli(*base, "--shard", "1/2") == 0  # a complete dataset: verified, nothing to do
    assert "already complete" in capsys.readouterr().out


@pytest.mark.parametrize("text", ["2/2", "-1/2", "1", "a/b", "0/0"])
def test_bad_shards_are_refused(text, capsys, tmp_path):
    assert _cli("darcy", "--out", str(tmp_path / "d"), f"--shard={text}") == 2
    assert "shard must be I/N" in _one_line(capsys.readouterr().err)
