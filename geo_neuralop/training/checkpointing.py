"""Atomic training checkpoints and the random-number state needed to resume exactly.

A checkpoint is one ``torch.save`` file holding a plain dict (model, optimizer,
scheduler and grad-scaler state, RNG states, progress counters, sampler
position, config). Writing goes to a temporary file in the same folder, is
fsynced, then renamed over the target, so a reader finds either the previous
file or the new one, never a partial one, even after SIGKILL or power loss.

:class:`CheckpointManager` keeps ``last.pt`` and the one before it as
``previous.pt`` (plus ``best.pt`` on request); :meth:`CheckpointManager.load_latest`
falls back to ``previous.pt`` if ``last.pt`` is missing or unreadable.

RNG states are stored as tensors, ints and lists only, so checkpoints load with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geo_neuralop.utils import atomic_path
from geo_neuralop.utils.digest import DIGEST_KEY, check_digest, payload_digest

logger = logging.getLogger(__name__)

FORMAT = "geo_neuralop.checkpoint"
VERSION = 2  # 2: model parameter names of the 0.2 layer redesign


def capture_rng_state() -> dict[str, Any]:
    """Current states of the torch (CPU and CUDA), NumPy-global and Python RNGs.

    Returns
    -------
    dict
        ``{"torch": ByteTensor, "cuda": list of ByteTensor, "numpy": {...},
        "python": {...}}`` of weights-only-loadable values.
    """
    np_state = np.random.get_state()  # noqa: NPY002 (we save the legacy global RNG on purpose)
    py_version, py_internal, py_gauss = random.getstate()
    cuda = []
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = [s.clone() for s in torch.cuda.get_rng_state_all()]
    return {
        "torch": torch.get_rng_state().clone(),
        "cuda": cuda,
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": int(py_version), "internal": list(py_internal),
                   "gauss_next": py_gauss},
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore RNG states captured by :func:`capture_rng_state`.

    CUDA states are restored only when CUDA is available and as many devices
    are visible as were saved; otherwise they are skipped with a warning.
    """
    for key in ("torch", "numpy", "python"):
        if key not in state:
            raise ValueError(f"RNG state has no {key!r} entry; keys are {sorted(state)}")
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda:
        if torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
        else:
            logger.warning("checkpoint has %d CUDA RNG states but %d CUDA devices are visible; "
                           "CUDA RNG not restored", len(cuda),
                           torch.cuda.device_count() if torch.cuda.is_available() else 0)
    npst = state["numpy"]
    np.random.set_state((  # noqa: NPY002
        npst["name"], np.asarray(npst["keys"].numpy(), dtype=np.uint32), int(npst["pos"]),
        int(npst["has_gauss"]), float(npst["cached_gaussian"]),
    ))
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(v) for v in py["internal"]),
                     py["gauss_next"]))


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a folder
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename).

    Parameters
    ----------
    path : str or Path
    state : mapping
        Plain values and tensors (saved from their device); a ``"sha256"`` digest of
        them is added (:func:`~geo_neuralop.utils.digest.payload_digest`).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    payload = dict(state)
    payload[DIGEST_KEY] = payload_digest(payload)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
    _fsync_dir(path.parent)
    return path


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", weights_only: bool = True
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : str or Path
    map_location : str or torch.device
    weights_only : bool
        Use torch's restricted unpickler (default); set False only for trusted
        files holding arbitrary Python objects.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable checkpoint (naming the file and the cause), or a
        training checkpoint (``format`` :data:`FORMAT`) has no digest or one that does
        not match its contents (bits flipped on disk, or edited).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=weights_only)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as exc:
        # torch raises RuntimeError for a cut zip archive, UnpicklingError for garbage
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(f"checkpoint {path} is not readable: {type(exc).__name__}: "
                         f"{first_line}") from exc
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} holds a {type(state).__name__}, not a dict")
    if state.get("format") == FORMAT or DIGEST_KEY in state:
        check_digest(state, f"checkpoint {path}", "training checkpoint")
    state.pop(DIGEST_KEY, None)
    return state


def check_format(state: Mapping[str, Any], source: str = "checkpoint") -> None:
    """Raise ``ValueError`` unless ``state`` is a training checkpoint of this format version.

    Version 2 came with the layer redesign of geo_neuralop 0.2, which renamed model
    parameters: version-1 files are refused with a message naming the version.
    """
    if state.get("format") != FORMAT:
        raise ValueError(f"{source} is not a geo_neuralop training checkpoint (format="
                         f"{state.get('format')!r})")
    if state.get("version") != VERSION:
        raise ValueError(f"{source} is a training checkpoint of format version "
                         f"{state.get('version')!r}; this geo_neuralop reads version {VERSION} "
                         f"only (the layer redesign of 0.2 renamed model parameters): start "
                         f"the run afresh (--overwrite) or retrain, or use geo_neuralop 0.1")


def state_is_finite(state_dict: Mapping[str, Any]) -> bool:
    """True when every floating tensor of a (nested) state dict is finite."""
    for value in state_dict.values():
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() or value.is_complex():
                if not bool(torch.isfinite(value).all()):
                    return False
        elif isinstance(value, Mapping) and not state_is_finite(value):
            return False
    return True


class CheckpointManager:
    """``last.pt`` / ``previous.pt`` / ``best.pt`` in one folder, written atomically.

    Parameters
    ----------
    directory : str or Path
        Folder of the checkpoint files (created on first save).

    Examples
    --------
    >>> import tempfile
    >>> manager = CheckpointManager(tempfile.mkdtemp())
    >>> _ = manager.save({"step": 1})
    >>> _ = manager.save({"step": 2})
    >>> manager.load_latest()["step"], load_checkpoint(manager.previous_path)["step"]
    (2, 1)
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.last_path = self.directory / "last.pt"
        self.previous_path = self.directory / "previous.pt"
        self.best_path = self.directory / "best.pt"

    def exists(self) -> bool:
        """True when a last or previous checkpoint file exists."""
        return self.last_path.exists() or self.previous_path.exists()

    def save(self, state: Mapping[str, Any], best: bool = False) -> Path:
        """Write ``state`` as ``last.pt`` (the old one becomes ``previous.pt``).

        The new file is complete on disk before the old one is renamed, so at
        every instant at least one complete checkpoint exists.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        staged = self.directory / "staged.pt"
        save_checkpoint(staged, state)
        if self.last_path.exists():
            os.replace(self.last_path, self.previous_path)
        os.replace(staged, self.last_path)
        _fsync_dir(self.directory)
        if best:
            save_checkpoint(self.best_path, state)
        return self.last_path

    def load_latest(self, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
        """The newest readable checkpoint (``last.pt``, else ``previous.pt``), or None.

        A ``staged.pt`` left by a kill between writing and renaming is complete
        (it was fsynced before the rename) and newer than both, so it is tried
        first.
        """
        for path in (self.directory / "staged.pt", self.last_path, self.previous_path):
            if not path.exists():
                continue
            try:
                state = load_checkpoint(path, map_location=map_location)
            except ValueError as exc:
                logger.warning("skipping unreadable checkpoint: %s", exc)
                continue
            state["_path"] = str(path)
            return state
        return None
