"""Dataset generation: parallel, resumable, one atomic file per trajectory.

``generate_dataset("swe", "datasets/swe_small", n_samples=20, seed=0, workers=2)``
writes ``datasets/swe_small/`` (layout in :mod:`geo_neuralop.data.storage`):

1. ``generation.json`` records the generator, its parameters (defaults filled in),
   the seed and the sample count. A later call with the same settings resumes:
   finished trajectories (files under their final name) are skipped, leftover
   temporary files of an interrupted write are removed, and only the missing
   samples are computed. Different settings are refused, never written over.
2. Each sample ``i`` is computed from ``numpy.random.SeedSequence([seed, i])``
   alone, in a worker process (one torch thread each) with a tqdm progress bar,
   and written to a temporary file that is renamed when complete.
3. When every sample exists, the per-field normalizer is fitted on the training
   split, and the dataset card (with checksums of every file) is written last. A
   complete dataset is verified byte for byte (SHA-256) when generation is run again.

One process generates into a folder at a time (an exclusive lock; a second one is
refused naming the first one's pid), and a folder that holds anything but a dataset
of ours is never written into; ``overwrite`` deletes only the old dataset's files that
its card or manifest lists and whose contents prove they are ours.

Several machines: ``generate_dataset(..., shard=(I, N))`` (``geo-neuralop generate ...
--shard I/N``) makes only the samples ``i % N == I`` (shards share the folder and run
at the same time), and ``finalize=True`` (``--finalize``) checks that every sample is
present and readable and writes the normalizer and the card. Sample files hold no
time stamps, so the dataset is byte-identical to one made by a single process.

The generators are in :mod:`geo_neuralop.data.generators`, the folder rules in
:mod:`geo_neuralop.data.dataset_folder`.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np
import torch

from geo_neuralop.data.dataset_card import (
    card_geometry,
    code_version,
    compute_splits,
    file_entries,
    make_card,
    read_card,
    split_indices,
    verify_dataset,
    write_card,
)
from geo_neuralop.data.dataset_folder import (
    check_not_foreign,
    finished_samples,
    make_manifest,
    manifest_differences,
    prepare_folder,
    read_manifest,
)
from geo_neuralop.data.generators import GENERATORS, resolve_parameters, sample_rng
from geo_neuralop.data.normalizers import FieldNormalizer
from geo_neuralop.data.storage import (
    CARD_NAME,
    MANIFEST_NAME,
    NORMALIZER_NAME,
    SAMPLES_DIR,
    TIMINGS_DIR,
    DatasetError,
    read_header,
    read_timing,
    read_trajectory,
    remove_stale_temporaries,
    sample_path,
    timing_path,
    write_mesh_vtu,
    write_timing,
    write_trajectory,
)
from geo_neuralop.utils import atomic_path
from geo_neuralop.utils.checks import is_int
from geo_neuralop.utils.folders import locked


# --- the driver ---------------------------------------------------------------------------
@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


#: Seconds between two checks of a worker that the generating process is still alive.
PARENT_POLL_SECONDS = 0.5


def _exit_with_parent(parent_pid: int) -> None:
    """In a worker: end this process as soon as the process that started the pool is gone.

    A ``kill -9`` of ``geo-neuralop generate`` cannot tell its workers; without this,
    they (and the forkserver that made them) would go on computing the queued samples
    and then wait forever.
    """
    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_SECONDS)
            if not _alive(parent_pid):
                os._exit(1)

    threading.Thread(target=watch, name="geo_neuralop-parent-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a pid reused by another user's process
        return True
    return True


def _worker_init(parent_pid: int | None = None) -> None:
    torch.set_num_threads(1)
    if parent_pid is not None:
        _exit_with_parent(parent_pid)


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _one_thread_environment() -> Iterator[None]:
    """One BLAS/OpenMP thread in the worker processes started inside (unless the user set it)."""
    added = [name for name in _THREAD_VARIABLES if name not in os.environ]
    for name in added:
        os.environ[name] = "1"
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _process_context():
    """Fresh worker processes (never a fork of a process that already runs torch threads).

    "forkserver" where available: one server process imports geo_neuralop once and
    forks the workers from it; "spawn" elsewhere.
    """
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["geo_neuralop.data.generate"])
        return context
    return multiprocessing.get_context("spawn")


def generate_sample(generator: str, index: int, seed: int, params: dict,
                    root: str | os.PathLike, dataset_hash: str) -> tuple[int, float, float, int]:
    """Compute sample ``index`` and write it atomically; return (index, wall s, CPU s, bytes).

    The sample file depends only on ``(generator, params, seed, index)``; the timing is
    written beside it (:func:`~geo_neuralop.data.storage.write_timing`), before the
    sample file, whose appearance marks the sample as done.
    """
    spec = GENERATORS[generator]
    wall, cpu = time.perf_counter(), time.process_time()
    traj = spec.make(index, sample_rng(seed, index), params)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    path = sample_path(root, index)
    if traj.faces is not None:  # meshes: a VTU beside the data (written before the h5 file)
        write_mesh_vtu(path.with_suffix(".vtu"), traj)
    write_timing(root, index, wall, cpu)
    write_trajectory(path, traj, generator, index, seed, dataset_hash)
    return index, wall, cpu, path.stat().st_size


def parse_shard(text: str | tuple[int, int]) -> tuple[int, int]:
    """``"I/N"`` (or ``(I, N)``) as ``(I, N)`` with ``0 <= I < N``.

    Shard ``I`` of ``N`` makes the samples whose index ``i`` has ``i % N == I``.

    Examples
    --------
    >>> parse_shard("2/4"), parse_shard((0, 1))
    ((2, 4), (0, 1))
    """
    if isinstance(text, str):
        first, sep, second = text.partition("/")
        try:
            shard = (int(first), int(second)) if sep else None
        except ValueError:
            shard = None
        if shard is None:
            raise ValueError(f"shard must be I/N with integers 0 <= I < N (e.g. 0/4), got "
                             f"{text!r}")
    else:
        try:
            shard = tuple(text)  # type: ignore[assignment]
        except TypeError:
            shard = None
        if shard is None or len(shard) != 2 or not all(is_int(v) for v in shard):
            raise ValueError(f"shard must be (I, N) with integers 0 <= I < N, got {text!r}")
        shard = (int(shard[0]), int(shard[1]))
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard must be I/N with 0 <= I < N, got {index}/{count}")
    return index, count


def generate_dataset(
    generator: str,
    out: str | os.PathLike,
    n_samples: int,
    seed: int = 0,
    workers: int = 1,
    params: dict | None = None,
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    shard: str | tuple[int, int] | None = None,
    finalize: bool = False,
) -> Path | None:
    """Generate (or resume, or confirm) a dataset; return the card's path.

    Parameters
    ----------
    generator : {"cylinder", "swe", "darcy", "ns2d"}
    out : path
        Dataset folder (created). Must be empty, absent, or hold this same dataset.
    n_samples : int
        Number of trajectories (samples).
    seed : int
        Dataset seed; sample ``i`` depends only on ``(seed, i)`` and the parameters.
    workers : int
        Processes (1 runs in this process).
    params : dict, optional
        Generator parameters (see ``GENERATORS[generator].defaults``).
    split_fractions : (train, val, test)
        Contiguous index ranges, see :func:`~geo_neuralop.data.dataset_card.compute_splits`.
    overwrite : bool
        If ``out`` holds a *different* geo_neuralop dataset, delete its files
        (card, manifest, normalizer, and the sample files its card or manifest lists
        whose contents prove they are ours; nothing else) instead of refusing.
    progress : bool
        Show a tqdm progress bar.
    log : callable, optional
        Receives one-line status messages (None for silence).
    shard : "I/N" or (I, N), optional
        Make only the samples ``i`` with ``i % N == I`` (several machines, e.g. a SLURM
        array, fill one folder); the card is not written. Shards of one dataset run at
        the same time on one (shared) folder.
    finalize : bool
        Compute nothing: check that every sample is present and readable (refusing,
        naming the missing or damaged ones) and write the normalizer and the card. A
        run without ``shard`` does the same after computing what is missing.

    Returns
    -------
    Path or None
        The card's path; None for a shard (the card comes with ``finalize``).

    Raises
    ------
    ValueError
        Bad arguments or parameters (``DatasetError`` for folder problems: a foreign or
        different dataset, damaged files, missing samples at ``finalize``).
    FolderBusyError
        Another process generates into ``out`` (naming its pid).
    RuntimeError
        A sample failed (finished samples are kept; run again to resume).
    """
    log = log or (lambda message: None)
    if not is_int(seed) or int(seed) < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not is_int(workers) or int(workers) < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    if not is_int(n_samples) or int(n_samples) < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    seed, workers, n_samples = int(seed), int(workers), int(n_samples)
    shard = None if shard is None else parse_shard(shard)
    if shard is not None and finalize:
        raise ValueError("finalize=True writes the card of the whole dataset; it takes no shard")
    splits = compute_splits(n_samples, tuple(split_fractions))
    params = resolve_parameters(generator, params)
    root = Path(out)
    manifest = make_manifest(generator, params, seed, n_samples, splits)
    check_not_foreign(root)
    if shard is None and not finalize and _confirm_finished(root, manifest, log):
        return root / CARD_NAME
    # shards share the folder, each holding its own shard; a whole run or finalize excludes all
    with locked(root, shared=shard is not None, what="dataset folder"), (
            locked(root, name=f".geo_neuralop-shard-{shard[0]}-of-{shard[1]}.lock",
                   what=f"shard {shard[0]}/{shard[1]} of dataset folder")
            if shard is not None else contextlib.nullcontext()):
        return _generate_locked(generator, root, manifest, workers, overwrite, progress, log,
                                shard, finalize)


def _confirm_finished(root: Path, manifest: dict, log: Callable[[str], None]) -> bool:
    """Verify a finished dataset of the same settings under a shared lock; False when the
    folder holds no card or another dataset (the exclusive path then decides).

    Several processes (two training runs started at once) confirm one dataset together;
    a process that writes into the folder holds the exclusive lock and makes this raise
    :class:`~geo_neuralop.utils.folders.FolderBusyError`.
    """
    if not (root / CARD_NAME).exists():
        return False
    with locked(root, shared=True, what="dataset folder"):
        if not (root / CARD_NAME).exists() or manifest_differences(read_card(root), manifest):
            return False
        _verify_finished(root, manifest["n_samples"], log)
    return True


def _verify_finished(root: Path, n_samples: int, log: Callable[[str], None]) -> None:
    """Check every byte of a finished dataset against its card (raises when damaged)."""
    verify_dataset(root, checksums=True)
    log(f"{root}: dataset already complete ({n_samples} samples, checksums verified); "
        f"nothing to do")


def _generate_locked(generator: str, root: Path, manifest: dict, workers: int, overwrite: bool,
                     progress: bool, log: Callable[[str], None], shard: tuple[int, int] | None,
                     finalize: bool) -> Path | None:
    n_samples, seed, params = manifest["n_samples"], manifest["seed"], manifest["parameters"]
    if prepare_folder(root, manifest, overwrite, log):  # finished since the shared check
        _verify_finished(root, n_samples, log)
        return root / CARD_NAME
    with atomic_path(root / MANIFEST_NAME) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    (root / SAMPLES_DIR).mkdir(exist_ok=True)
    mine = None if shard is None else [i for i in range(n_samples) if i % shard[1] == shard[0]]
    if not finalize:
        removed = remove_stale_temporaries(root, mine)
        if removed:
            log(f"removed {len(removed)} temporary file(s) of an interrupted run")
    todo = finished_samples(root, generator, manifest["dataset_hash"], n_samples)
    if finalize:
        if todo:
            raise DatasetError(
                f"{root}: cannot finalize, {len(todo)} of {n_samples} samples are missing "
                f"(indices {_ranges(todo)}); run the shards that make them (shard I/N makes "
                f"the indices i with i % N == I), or run without --finalize to make them here")
        todo_here: list[int] = []
    else:
        todo_here = todo if mine is None else [i for i in todo if i % shard[1] == shard[0]]
        if len(todo_here) < (n_samples if mine is None else len(mine)):
            done = (n_samples if mine is None else len(mine)) - len(todo_here)
            what = "samples" if mine is None else f"samples of shard {shard[0]}/{shard[1]}"
            log(f"{root}: resuming, {done} of {n_samples if mine is None else len(mine)} "
                f"{what} already done")
    _run(generator, todo_here, seed, params, root, manifest["dataset_hash"], workers, progress)
    if shard is not None:
        left = [i for i in todo if i not in set(todo_here)]
        if left:
            log(f"{root}: shard {shard[0]}/{shard[1]} done; {len(left)} samples of other shards "
                f"are still missing; when every shard is done, run the same command with "
                f"--finalize (instead of --shard) to write the card")
        else:
            log(f"{root}: shard {shard[0]}/{shard[1]} done; every sample is present: run the "
                f"same command with --finalize (instead of --shard) to write the card")
        return None
    card = finalize_dataset(root, manifest)
    for stale in root.glob(".geo_neuralop-shard-*.lock"):  # no shard runs: we hold the folder
        with contextlib.suppress(OSError):
            stale.unlink()
    stats = card["statistics"]
    wall = stats["wall_seconds_per_sample"]
    per_sample = f", {wall['mean']:.2f} s per sample" if wall else ""
    log(f"{root}: {n_samples} samples, {stats['bytes_total'] / 1e6:.1f} MB{per_sample}")
    return root / CARD_NAME


def _ranges(indices: list[int]) -> str:
    """``0-3, 7, 9-10`` (the first 10 runs)."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    text = ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in runs[:10])
    return text + (", ..." if len(runs) > 10 else "")


def _run(generator, todo, seed, params, root, dataset_hash, workers, progress) -> None:
    if not todo:
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc=f"generate {generator}", unit="sample",
               disable=not progress)
    try:
        if workers == 1 or len(todo) == 1:
            with _single_thread():
                for i in todo:
                    try:
                        _, wall, _, _ = generate_sample(generator, i, seed, params, root,
                                                        dataset_hash)
                    except Exception as error:
                        raise RuntimeError(
                            f"sample {i} of {generator!r} failed: {error}; finished samples "
                            f"are kept, run again to resume") from error
                    bar.set_postfix_str(f"{wall:.2f} s/sample", refresh=False)
                    bar.update(1)
            return
        context = _process_context()
        pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=context,
                                   initializer=_worker_init, initargs=(os.getpid(),))
        try:
            with _one_thread_environment():
                futures = {pool.submit(generate_sample, generator, i, seed, params, str(root),
                                       dataset_hash): i for i in todo}
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for future in done:
                        error = future.exception()
                        if error is not None:
                            raise RuntimeError(
                                f"sample {futures[future]} of {generator!r} failed: {error}; "
                                f"finished samples are kept, run again to resume") from error
                        _, wall, _, _ = future.result()
                        bar.set_postfix_str(f"{wall:.2f} s/sample", refresh=False)
                        bar.update(1)
        except BaseException:
            # a failure or Ctrl-C: drop the queued samples instead of waiting for them
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    finally:
        bar.close()


def _summary(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {}
    return {"mean": float(arr.mean()), "min": float(arr.min()), "max": float(arr.max()),
            "total": float(arr.sum())}


def finalize_dataset(root: str | os.PathLike, manifest: dict | None = None) -> dict:
    """Check every sample, fit the normalizer on the training split and write the card.

    Every sample file is read completely (a truncated, unreadable or non-finite sample
    is refused, naming it) before anything is written.

    Raises
    ------
    DatasetError
        A sample is missing or damaged.
    """
    root = Path(root)
    if manifest is None:
        manifest = read_manifest(root)
    generator, n = manifest["generator"], manifest["n_samples"]
    spec = GENERATORS[generator]
    headers = []
    for i in range(n):
        path = sample_path(root, i)
        try:
            read_trajectory(path).validate()
        except ValueError as error:  # DatasetError included
            raise DatasetError(f"{root}: cannot finalize, sample {i} is damaged: "
                               f"{error}") from error
        headers.append(read_header(path))
    train = split_indices({"splits": manifest["splits"], "name": root.name}, "train")

    def train_samples():
        for i in train:
            traj = read_trajectory(sample_path(root, i))
            yield traj.fields, traj.weights

    normalizer = FieldNormalizer.fit(train_samples(), fitted_on="train")
    normalizer.save(root / NORMALIZER_NAME)
    rel = [f"{SAMPLES_DIR}/{h.path.name}" for h in headers]
    rel += [f"{SAMPLES_DIR}/{h.path.with_suffix('.vtu').name}" for h in headers
            if h.path.with_suffix(".vtu").exists()]
    rel.append(NORMALIZER_NAME)
    files = file_entries(root, rel)
    geometry = card_geometry(read_trajectory(headers[0].path), headers)
    sample_bytes = [files[f"{SAMPLES_DIR}/{h.path.name}"]["bytes"] for h in headers]
    timings = [read_timing(root, h.index) for h in headers]
    walls = [w if w is not None else h.wall_seconds for (w, _), h in zip(timings, headers,
                                                                           strict=True)]
    cpus = [c if c is not None else h.cpu_seconds for (_, c), h in zip(timings, headers,
                                                                         strict=True)]
    statistics = {
        "frames_per_sample": headers[0].num_frames,
        "wall_seconds_per_sample": _summary([w for w in walls if w is not None]),
        "cpu_seconds_per_sample": _summary([c for c in cpus if c is not None]),
        "samples_timed": sum(w is not None for w in walls),
        "bytes_per_sample": _summary(sample_bytes),
        "bytes_total": int(sum(e["bytes"] for e in files.values())),
    }
    card = make_card(
        name=root.name, generator=generator, seed=manifest["seed"], n_samples=n,
        parameters=manifest["parameters"], splits=manifest["splits"], task=spec.task,
        fields=spec.fields, files=files, description=spec.description, geometry=geometry,
        statistics=statistics, version_info=code_version(),
        normalizer={"file": NORMALIZER_NAME, "fitted_on": "train",
                    "weighting": "quadrature", "fields": {
                        k: {"mean": normalizer.mean[k], "std": normalizer.std[k]}
                        for k in normalizer.names}})
    write_card(root, card)
    with contextlib.suppress(FileNotFoundError):
        (root / MANIFEST_NAME).unlink()
    for h in headers:  # summarized in the card
        with contextlib.suppress(FileNotFoundError):
            timing_path(root, h.index).unlink()
    with contextlib.suppress(OSError):
        (root / TIMINGS_DIR).rmdir()
    return card
