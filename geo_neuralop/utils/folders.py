"""The one guard of folders this library writes into: a marker file, an exclusive lock, and
deletion of its own files only.

A run folder (``geo-neuralop train``) or a dataset folder (``geo-neuralop generate``) is
written only when it is absent, empty, or already holds a folder of ours, recognised by
a marker file written first (:func:`write_marker`, :func:`read_marker`). While a process
writes, it holds an advisory lock on the folder (:class:`FolderLock`): a second process
is refused with the first one's pid instead of interleaving its files. ``--overwrite``
deletes only the files whose exact names the caller owns (:func:`remove_owned_files`),
never anything else found in the folder.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fnmatch
import json
import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from geo_neuralop.utils.atomic import atomic_path

__all__ = [
    "LOCK_NAME",
    "FolderBusyError",
    "FolderLock",
    "FolderNotOursError",
    "folder_entries",
    "read_marker",
    "remove_owned_files",
    "write_marker",
]

#: Name of the lock file inside a locked folder (it holds the pid of the exclusive holder).
LOCK_NAME = ".geo_neuralop.lock"

# errno values of file systems without working locks: proceed unlocked, with a warning
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class FolderBusyError(RuntimeError):
    """Another process holds the folder's lock."""


class FolderNotOursError(ValueError):
    """The folder holds files that this library did not write (no marker)."""


# locks this process holds: resolved lock path -> [fd, count, shared]
_HELD: dict[str, list[Any]] = {}


class FolderLock:
    """An advisory lock on a folder (``flock`` on ``folder/.geo_neuralop.lock``).

    Re-entrant within a process: taking a lock this process already holds only
    counts. The lock file stays behind (empty when unlocked is not guaranteed; it
    holds the pid of the last exclusive holder); it is never a sign of a held lock
    by itself, the kernel's lock is.

    Parameters
    ----------
    folder : path
        The folder (created if absent).
    shared : bool
        A shared lock (several holders, e.g. shards of one dataset) instead of an
        exclusive one.
    name : str
        Lock file name inside ``folder`` (a folder can carry several locks).
    what : str
        How messages call the folder (``"run folder"``, ``"dataset folder"``).

    Raises
    ------
    FolderBusyError
        On :meth:`acquire`, when another process holds a conflicting lock (naming
        its pid when the lock file records one).

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with FolderLock(folder) as lock:
    ...     lock.held
    True
    """

    def __init__(self, folder: str | os.PathLike, shared: bool = False, name: str = LOCK_NAME,
                 what: str = "folder") -> None:
        self.folder, self.shared, self.name, self.what = Path(folder), bool(shared), name, what
        self.path = self.folder / name
        self.held = False

    def _key(self) -> str:
        return str(self.path.resolve())

    @property
    def held_here(self) -> bool:
        """Whether this process already holds this lock (through any FolderLock object)."""
        return self._key() in _HELD

    def acquire(self) -> FolderLock:
        """Take the lock without waiting; see the class docstring."""
        if self.held:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        key = self._key()
        if key in _HELD:
            entry = _HELD[key]
            if entry[2] and not self.shared:
                raise FolderBusyError(f"{self.what} {self.folder} is locked shared by this "
                                      f"process; it cannot also take it exclusively")
            entry[1] += 1
            self.held = True
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if not _lock(fd, self.shared, self.path):
                holder = _holder(self.path)
                raise FolderBusyError(
                    f"{self.what} {self.folder} is in use by another process{holder}; wait "
                    f"until it ends, or choose another folder")
            if not self.shared:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()} {' '.join(sys.argv)[:200]}\n".encode())
        except BaseException:
            os.close(fd)
            raise
        _HELD[key] = [fd, 1, self.shared]
        self.held = True
        return self

    def release(self) -> None:
        """Give the lock back (the last release of this process unlocks it)."""
        if not self.held:
            return
        self.held = False
        key = self._key()
        entry = _HELD.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del _HELD[key]
            os.close(entry[0])  # closing the descriptor releases the flock

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock(fd: int, shared: bool, path: Path) -> bool:
    """Lock ``fd``; False when another process holds a conflicting lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        warnings.warn(f"file locks are not available on this platform; {path.parent} is not "
                      f"protected against a second process", stacklevel=4)
        return True
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno in _NO_LOCKS:
            warnings.warn(f"the file system of {path.parent} does not support locks "
                          f"({error.strerror}); it is not protected against a second process",
                          stacklevel=4)
            return True
        raise
    return True


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        text = path.read_text().strip()
        if text:
            pid, _, command = text.partition(" ")
            if pid.isdigit():
                return f" (pid {pid}{': ' + command if command else ''})"
    return ""


def read_marker(folder: str | os.PathLike, name: str, fmt: str) -> dict | None:
    """The marker ``folder/name`` if it is a JSON object with ``"format": fmt``, else None."""
    path = Path(folder) / name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("format") != fmt:
        return None
    return data


def write_marker(folder: str | os.PathLike, name: str, fmt: str, **info: Any) -> Path:
    """Write the marker ``folder/name`` atomically: ``{"format": fmt, "created": ...}`` + info."""
    path = Path(folder) / name
    data = {"format": fmt, "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            **info}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def folder_entries(folder: str | os.PathLike, ignore: Iterable[str] = (LOCK_NAME,)
                   ) -> list[str]:
    """Sorted names in ``folder`` other than ``ignore`` ([] for an absent folder)."""
    path = Path(folder)
    if not path.is_dir():
        return []
    skip = set(ignore)
    return sorted(p.name for p in path.iterdir() if p.name not in skip)


def _owned(rel: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(rel, pattern) for pattern in patterns)


def remove_owned_files(folder: str | os.PathLike, patterns: Sequence[str]) -> list[Path]:
    """Delete the regular files of ``folder`` whose relative paths match ``patterns``.

    Patterns are ``fnmatch`` patterns of ``/``-separated relative paths (``*`` does
    not stop at ``/``, so write one pattern per depth, e.g.
    ``"evaluation/predictions/*.h5"``). Symbolic links are not followed and never
    deleted; folders are left in place, and removed only when nothing is left in them
    and one of the patterns named a file inside.

    Returns
    -------
    list of Path
        The files deleted.
    """
    root = Path(folder)
    removed: list[Path] = []
    touched: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for name in filenames:
            path = base / name
            if path.is_symlink() or not path.is_file():
                continue
            if _owned(prefix + name, patterns):
                path.unlink()
                removed.append(path)
                touched.add(base)
        dirnames.sort()
    for directory in sorted(touched, key=lambda p: len(p.parts), reverse=True):
        current = directory
        while current != root:
            with contextlib.suppress(OSError):
                current.rmdir()  # only empty folders go
            current = current.parent
    return removed


@contextlib.contextmanager
def locked(folder: str | os.PathLike, shared: bool = False, name: str = LOCK_NAME,
           what: str = "folder") -> Iterator[FolderLock]:
    """``with locked(folder): ...``: a :class:`FolderLock` held for the block."""
    lock = FolderLock(folder, shared=shared, name=name, what=what).acquire()
    try:
        yield lock
    finally:
        lock.release()
