"""Run folders: written only when absent, empty or already a run of ours; one writer at a time.

:func:`open_run_folder` is what the trainer and :func:`~geo_neuralop.training.run_experiment`
call before writing anything: it refuses a folder holding files of someone else (a
user's config, notes, another tool's outputs), writes the marker file
``.geo_neuralop-run`` that identifies a run of ours, and takes an exclusive lock so a
second ``train`` on the same folder is refused naming the first one's pid (a folder of an
earlier version, without the marker, is recognised by its training checkpoint). Starting
afresh in a folder of ours (``overwrite``, or a run that never wrote a checkpoint)
deletes the files a run writes (:data:`RUN_FILES`) and nothing else.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from geo_neuralop.training.checkpointing import FORMAT as CHECKPOINT_FORMAT
from geo_neuralop.utils.folders import (
    LOCK_NAME,
    FolderLock,
    FolderNotOursError,
    folder_entries,
    read_marker,
    remove_owned_files,
    write_marker,
)

__all__ = ["RUN_FILES", "RUN_MARKER", "RunFolderError", "open_run_folder"]

#: Marker file written first into every run folder.
RUN_MARKER = ".geo_neuralop-run"
RUN_MARKER_FORMAT = "geo_neuralop.run"

#: Files a run writes (fnmatch patterns of paths relative to the run folder): the only
#: ones ``overwrite`` deletes.
RUN_FILES = (
    "config.yaml", "model.pt", "metrics.jsonl", "metrics.csv",
    ".config.*.tmp.yaml", ".model.*.tmp.pt", ".metrics.*.tmp.jsonl", ".metrics.*.tmp.csv",
    "checkpoints/last.pt", "checkpoints/previous.pt", "checkpoints/best.pt",
    "checkpoints/staged.pt", "checkpoints/.*.tmp.pt",
    "evaluation/metrics.json", "evaluation/.metrics.*.tmp.json",
    "evaluation/predictions/*_rollout[0-9][0-9][0-9].h5",
    "evaluation/predictions/*_sample[0-9][0-9][0-9].h5",
    "evaluation/predictions/.*.tmp.h5",
    "tensorboard/events.out.tfevents.*",
    # the default kernel store of mesh models (data.precompute_kernels): one folder per
    # store format and kernel recipe, one file per geometry
    "kernel_store/v[0-9]*/*/recipe.json", "kernel_store/v[0-9]*/*/*.kb",
    "kernel_store/v[0-9]*/*/.*.tmp.kb", "kernel_store/v[0-9]*/*/.*.tmp.json",
)


class RunFolderError(FolderNotOursError):
    """The run folder holds someone else's files, or a run that must not be replaced."""


def _checkpoints(folder: Path) -> list[str]:
    return [name for name in ("last.pt", "previous.pt", "staged.pt")
            if (folder / "checkpoints" / name).exists()]


def _earlier_run(folder: Path) -> bool:
    """A run folder written before the marker existed: its checkpoint says it is ours."""
    import torch

    for name in ("last.pt", "previous.pt"):
        path = folder / "checkpoints" / name
        if not path.is_file() or path.is_symlink():
            continue
        try:  # mmap: the header only, not the tensors
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # noqa: BLE001 - any unreadable file is simply not proof
            continue
        if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
            return True
    return False


@contextlib.contextmanager
def open_run_folder(folder: str | os.PathLike, *, resume: bool = False,
                    overwrite: bool = False) -> Iterator[Path]:
    """Claim a run folder for writing, holding its lock for the ``with`` block.

    Parameters
    ----------
    folder : path
        The run folder (created when absent).
    resume : bool
        Continue the run in the folder (its files are kept).
    overwrite : bool
        Start afresh even though the folder holds a run of ours with checkpoints;
        that run's files (:data:`RUN_FILES`) are deleted first, nothing else.

    Yields
    ------
    Path
        The folder.

    Raises
    ------
    RunFolderError
        When the folder exists but is not a folder, holds files and no marker (not a
        run of ours; nothing is written or deleted), or holds a run with checkpoints
        and neither ``resume`` nor ``overwrite`` is given.
    FolderBusyError
        When another process holds the folder (naming its pid).

    Notes
    -----
    Re-entrant: inside the block (the same process, e.g. the trainer inside
    :func:`~geo_neuralop.training.run_experiment`) a second call only counts the lock
    and checks nothing again.
    """
    path = Path(folder)
    lock = FolderLock(path, what="run folder")
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"run folder {path} exists and is not a folder")
    if lock.held_here:
        with lock:
            yield path
        return
    marked = read_marker(path, RUN_MARKER, RUN_MARKER_FORMAT) is not None
    ours = marked or _earlier_run(path)
    found = folder_entries(path, ignore=(LOCK_NAME, RUN_MARKER))
    if found and not ours:
        shown = ", ".join(found[:10]) + (f" and {len(found) - 10} more" if len(found) > 10
                                         else "")
        raise RunFolderError(
            f"run folder {path} already holds files that are not a geo_neuralop run ({shown}); "
            f"nothing was written or deleted. Choose an empty or new --out folder")
    with lock:
        if not marked:
            write_marker(path, RUN_MARKER, RUN_MARKER_FORMAT, version=1)
        existing = _checkpoints(path)
        if not resume:
            if existing and not overwrite:
                raise RunFolderError(
                    f"run folder {path} already holds a run; pass --resume (resume=True) to "
                    f"continue it, --overwrite (overwrite=True) to start over, or choose "
                    f"another --out (found checkpoints/{existing[0]})")
            remove_owned_files(path, RUN_FILES)
        yield path
