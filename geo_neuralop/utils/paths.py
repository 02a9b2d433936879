"""The one resolver of paths that a file names (dataset cards, manifests): inside its folder.

A dataset card lists its files by relative path; a crafted or damaged card could name
``../../etc/hostname`` (read, hashed and its size reported) or ``/dev/zero`` (hashed
forever). :func:`confined_file` resolves such a name, symbolic links included, and
accepts it only when it stays inside the folder and is a regular file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = ["PathOutsideFolderError", "confined_file", "confined_path"]


class PathOutsideFolderError(ValueError):
    """A path named by a file leaves its folder, or is not a regular file."""


def confined_path(folder: str | os.PathLike, name: str, what: str = "path") -> Path:
    """``folder / name`` resolved (symbolic links followed), checked to stay inside ``folder``.

    Parameters
    ----------
    folder : path
        The folder the name is relative to.
    name : str
        A relative path with ``/`` separators.
    what : str
        How messages call the name (e.g. ``"card.yaml files entry"``).

    Raises
    ------
    PathOutsideFolderError
        For an empty, absolute or non-string name, or one that resolves outside ``folder``.

    Examples
    --------
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> confined_path(root, "samples/a.h5").relative_to(Path(root).resolve()).as_posix()
    'samples/a.h5'
    >>> confined_path(root, "../x")
    Traceback (most recent call last):
    ...
    geo_neuralop.utils.paths.PathOutsideFolderError: path '../x' leaves the folder ...
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        raise PathOutsideFolderError(f"{what} {name!r} is not a relative file name")
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or \
            PureWindowsPath(name).drive:
        raise PathOutsideFolderError(f"{what} {name!r} is an absolute path; only names "
                                     f"relative to {folder} are allowed")
    base = Path(folder).resolve()
    path = (base / name).resolve()
    if path != base and base not in path.parents:
        raise PathOutsideFolderError(f"{what} {name!r} leaves the folder {folder} (it resolves "
                                     f"to {path})")
    return path


def confined_file(folder: str | os.PathLike, name: str, what: str = "path",
                  must_exist: bool = True) -> Path | None:
    """Like :func:`confined_path`, and the result must be a regular file (not a device,
    pipe or folder).

    Returns
    -------
    Path or None
        The resolved path; None when it does not exist and ``must_exist`` is False.

    Raises
    ------
    PathOutsideFolderError
        As :func:`confined_path`, or when the path exists but is not a regular file.
    FileNotFoundError
        When it does not exist and ``must_exist`` is True.
    """
    path = confined_path(folder, name, what)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if must_exist:
            raise FileNotFoundError(f"{what} {name!r}: no such file in {folder}") from None
        return None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device, pipe or " \
                                                      "socket)"
        raise PathOutsideFolderError(f"{what} {name!r} in {folder} is {kind}")
    return path
