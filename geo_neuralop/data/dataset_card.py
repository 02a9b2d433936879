"""Dataset cards: a YAML description of a generated dataset, written next to its data.

``datasets/<name>/card.yaml`` records what made the data and lets a reader check
that the files are the ones described::

    format: geo_neuralop.dataset
    version: 1
    name: swe_small
    generator: swe                     # cylinder | swe | darcy | ns2d
    description: ...
    created: '2025-01-01T12:00:00+00:00'
    seed: 0                            # sample i uses numpy SeedSequence([seed, i])
    n_samples: 20
    parameters: {...}                  # every generator parameter, defaults included
    code_version: {geo_neuralop: 0.1.0, git_commit: ..., git_dirty: false,
                   torch: ..., torch_harmonics: ..., numpy: ..., scipy: ...}
    splits: {train: [0, 16], val: [16, 18], test: [18, 20]}   # index ranges [lo, hi)
    task: {kind: rollout, inputs: [...], targets: [...]}      # or kind: static
    fields: {height: {units: m, description: ...}, ...}
    geometry: {...}                    # grid description, or mesh sizes
    normalizer: {file: normalizer.json, fitted_on: train}
    statistics: {...}                  # generation time per sample, bytes on disk
    files: {samples/sample_000000.h5: {bytes: ..., sha256: ...}, ..., normalizer.json: ...}

The card is written last, atomically: its presence means the dataset is complete.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
from pathlib import Path

import yaml

from geo_neuralop.data.storage import (
    CARD_NAME,
    SAMPLES_DIR,
    DatasetError,
    file_sha256,
    sample_indices,
    sample_name,
)
from geo_neuralop.utils import atomic_path
from geo_neuralop.utils.checks import is_int
from geo_neuralop.utils.paths import PathOutsideFolderError, confined_file
from geo_neuralop.utils.yaml_values import load_yaml

CARD_FORMAT = "geo_neuralop.dataset"
CARD_VERSION = 1
SPLITS = ("train", "val", "test")
_REQUIRED = ("format", "version", "generator", "seed", "n_samples", "parameters", "splits",
             "task", "fields", "files")


def code_version() -> dict:
    """Versions of geo_neuralop (and its git commit, if run from a checkout) and key libraries."""
    import numpy
    import scipy
    import torch

    from geo_neuralop import _version

    info: dict = {"geo_neuralop": _version.__version__}
    root = Path(_version.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True)
        info["git_commit"] = commit.stdout.strip()
        info["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    info["torch"] = str(torch.__version__)
    try:
        import torch_harmonics

        info["torch_harmonics"] = str(torch_harmonics.__version__)
    except ImportError:  # only the shallow water generator needs it
        info["torch_harmonics"] = None
    info["numpy"] = str(numpy.__version__)
    info["scipy"] = str(scipy.__version__)
    return info


def compute_splits(n_samples: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
                   ) -> dict[str, list[int]]:
    """Contiguous index ranges ``[lo, hi)`` for train / val / test.

    ``val`` and ``test`` get ``round(fraction * n)`` samples each (at least one when
    their fraction is positive and enough samples exist), ``train`` the rest (at
    least one).
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"split fractions must be three non-negative numbers, got {fractions}")
    total = float(sum(fractions))
    train_f, val_f, test_f = (f / total for f in fractions)
    sizes = []
    for frac in (val_f, test_f):
        k = round(frac * n_samples)
        if frac > 0 and k == 0 and n_samples >= 3:
            k = 1
        sizes.append(k)
    n_val, n_test = sizes
    n_train = n_samples - n_val - n_test
    if n_train < 1:
        raise ValueError(f"split fractions {fractions} leave no training sample out of "
                         f"{n_samples}")
    return {"train": [0, n_train], "val": [n_train, n_train + n_val],
            "test": [n_train + n_val, n_samples]}


def split_indices(card: dict, split: str) -> list[int]:
    """Sample indices of a split named in the card.

    Raises
    ------
    DatasetError
        For a split the card does not define or that is empty.
    """
    splits = card.get("splits", {})
    if split not in splits:
        raise DatasetError(f"dataset {card.get('name')!r} has no split {split!r}; it has "
                           f"{sorted(splits)}")
    lo, hi = splits[split]
    if hi <= lo:
        raise DatasetError(f"split {split!r} of dataset {card.get('name')!r} is empty "
                           f"(generate more samples or change the split fractions)")
    return list(range(int(lo), int(hi)))


def card_file(root: str | os.PathLike, rel: str, must_exist: bool = False) -> Path | None:
    """The file a card names, confined to the dataset folder and required to be a regular
    file (:func:`~geo_neuralop.utils.paths.confined_file`); None if absent.

    Raises
    ------
    DatasetError
        For a name that leaves the folder (``../../etc/hostname``, ``/dev/zero``), or a
        path that is a folder, device or pipe, naming the entry.
    """
    try:
        return confined_file(root, rel, f"{CARD_NAME} files entry", must_exist=must_exist)
    except (PathOutsideFolderError, FileNotFoundError) as error:
        raise DatasetError(f"dataset at {root}: {error}") from None


def card_geometry(first, headers) -> dict:
    """The card's ``geometry`` entry of a dataset's samples.

    Parameters
    ----------
    first : Trajectory
        The first sample (its grid description, manifold and point count).
    headers : sequence of sample headers
        Every sample's header (``num_points``): meshes record the range of sizes.
    """
    if first.grid is not None:
        return {**first.grid, "manifold": first.manifold, "points": first.num_points}
    sizes = [int(h.num_points) for h in headers]
    return {"kind": "mesh", "manifold": first.manifold, "points_min": min(sizes),
            "points_max": max(sizes), "points_mean": float(sum(sizes) / len(sizes))}


def file_entries(root: str | os.PathLike, relative_paths) -> dict[str, dict]:
    """``{relative path: {bytes, sha256}}`` for files under ``root``."""
    root = Path(root)
    out = {}
    for rel in relative_paths:
        p = card_file(root, str(rel), must_exist=True)
        out[str(rel)] = {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
    return out


def make_card(
    name: str,
    generator: str,
    seed: int,
    n_samples: int,
    parameters: dict,
    splits: dict,
    task: dict,
    fields: dict,
    files: dict,
    description: str = "",
    geometry: dict | None = None,
    statistics: dict | None = None,
    normalizer: dict | None = None,
    version_info: dict | None = None,
) -> dict:
    """Assemble a card (a plain dict, see the module docstring)."""
    return {
        "format": CARD_FORMAT,
        "version": CARD_VERSION,
        "name": name,
        "generator": generator,
        "description": description,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "seed": int(seed),
        "n_samples": int(n_samples),
        "parameters": parameters,
        "code_version": version_info if version_info is not None else code_version(),
        "splits": splits,
        "task": task,
        "fields": fields,
        "geometry": geometry or {},
        "normalizer": normalizer or {},
        "statistics": statistics or {},
        "files": files,
    }


def write_card(root: str | os.PathLike, card: dict) -> Path:
    """Write ``card.yaml`` atomically."""
    path = Path(root) / CARD_NAME
    plain = json.loads(json.dumps(card, default=str))  # str subclasses, numpy scalars
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(plain, sort_keys=False, default_flow_style=None))
    return path


def read_card(root: str | os.PathLike) -> dict:
    """Read and check a dataset card.

    Raises
    ------
    DatasetError
        No card (an incomplete or interrupted generation, or not a dataset
        folder), unparsable YAML, or missing keys.
    """
    root = Path(root)
    path = root / CARD_NAME
    if not path.exists():
        hint = (" (generation was interrupted: run the same `geo-neuralop generate` command "
                "again to resume)") if (root / "generation.json").exists() else ""
        raise DatasetError(f"no dataset card at {path}{hint}")
    if not path.is_file():
        raise DatasetError(f"{path} is not a file")
    try:
        card = load_yaml(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise DatasetError(f"{path} is not a geo_neuralop dataset card")
    missing = [k for k in _REQUIRED if k not in card]
    if missing:
        raise DatasetError(f"{path} lacks the keys {missing}")
    files = card["files"]
    if not isinstance(files, dict) or not all(
            isinstance(entry, dict) and is_int(entry.get("bytes")) and entry["bytes"] >= 0
            and isinstance(entry.get("sha256"), str) for entry in files.values()):
        raise DatasetError(f"{path}: files must map relative paths to {{bytes, sha256}}")
    return card


def verify_dataset(root: str | os.PathLike, checksums: bool = True) -> dict:
    """Check that a dataset folder matches its card; return the card.

    Checks that every sample index ``0 .. n_samples - 1`` has a file, that no
    extra sample files exist, and that every file the card lists exists with the
    recorded size and (if ``checksums``) SHA-256. Every path the card names must stay
    inside the dataset folder and be a regular file (:func:`card_file`).

    Raises
    ------
    DatasetError
        Naming every file that is missing or differs.
    """
    root = Path(root)
    card = read_card(root)
    problems = []
    present = set(sample_indices(root))
    expected = set(range(int(card["n_samples"])))
    for i in sorted(expected - present):
        problems.append(f"missing {SAMPLES_DIR}/{sample_name(i)}")
    for i in sorted(present - expected):
        problems.append(f"unexpected {SAMPLES_DIR}/{sample_name(i)} (not in the card)")
    for rel, entry in card["files"].items():
        p = card_file(root, rel)
        if p is None:
            if not any(rel.endswith(sample_name(i)) for i in expected - present):
                problems.append(f"missing {rel}")
            continue
        size = p.stat().st_size
        if size != entry["bytes"]:
            problems.append(f"{rel} has {size} bytes, the card says {entry['bytes']} "
                            f"(truncated or modified)")
        elif checksums and file_sha256(p) != entry["sha256"]:
            problems.append(f"{rel} does not match its SHA-256 in the card (corrupted or "
                            f"modified)")
    if problems:
        shown = "; ".join(problems[:10])
        more = f" and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise DatasetError(f"dataset at {root} does not match its card: {shown}{more}")
    return card
