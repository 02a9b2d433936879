"""The folder of a dataset being generated: its manifest, and what generation may touch.

``generation.json`` (the manifest) records the generator, its parameters, the seed and
the sample count, so a later run resumes or refuses other settings. A folder holding
anything but a dataset of ours is never written into, and ``overwrite`` deletes only
the old dataset's files that its card or manifest lists and whose contents prove they
are ours.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from geo_neuralop.data.dataset_card import read_card
from geo_neuralop.data.normalizers import FieldNormalizer
from geo_neuralop.data.storage import (
    CARD_NAME,
    MANIFEST_NAME,
    NORMALIZER_NAME,
    SAMPLES_DIR,
    TIMINGS_DIR,
    DatasetError,
    is_sample_file,
    is_sample_vtu,
    params_hash,
    read_header,
    remove_stale_temporaries,
    sample_indices,
    sample_name,
    sample_path,
    timing_path,
)
from geo_neuralop.utils.checks import is_int
from geo_neuralop.utils.folders import LOCK_NAME, folder_entries
from geo_neuralop.utils.paths import PathOutsideFolderError, confined_file

__all__ = ["MANIFEST_FORMAT", "check_not_foreign", "finished_samples", "make_manifest",
           "manifest_differences", "prepare_folder", "read_manifest"]

#: Value of the ``"format"`` entry of ``generation.json``.
MANIFEST_FORMAT = "geo_neuralop.generation"


def make_manifest(generator: str, params: dict, seed: int, n_samples: int, splits: dict) -> dict:
    return {"format": MANIFEST_FORMAT, "generator": generator, "parameters": params,
            "seed": int(seed), "n_samples": int(n_samples), "splits": splits,
            "dataset_hash": params_hash({"generator": generator, "parameters": params,
                                         "seed": int(seed)})}


def manifest_differences(old: dict, new: dict) -> list[str]:
    """What differs between two datasets' manifests (or cards): one phrase per setting."""
    out = []
    for key in ("generator", "seed", "n_samples", "parameters", "splits"):
        if old.get(key) != new.get(key):
            if key == "parameters" and isinstance(old.get(key), dict):
                keys = sorted(set(old[key]) | set(new[key]))
                changed = [k for k in keys if old[key].get(k) != new[key].get(k)]
                out.append(f"parameters {changed}")
            else:
                out.append(f"{key} ({old.get(key)!r} -> {new.get(key)!r})")
    return out


def _ignored(name: str) -> bool:
    """Lock files, which a refused or running generation may leave in a folder."""
    return name == LOCK_NAME or (name.startswith(".geo_neuralop") and name.endswith(".lock"))


def _foreign_entries(root: Path) -> list[str]:
    return [name for name in folder_entries(root, ignore=()) if not _ignored(name)]


def read_manifest(root: str | os.PathLike) -> dict:
    """The generation manifest (``generation.json``) of an unfinished dataset.

    Raises
    ------
    DatasetError
        When it is not a JSON object with ``"format": "geo_neuralop.generation"`` (a
        file of someone else's, which is never taken for ours), naming the file.
    """
    path = Path(root) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path} is not a geo_neuralop generation manifest (not readable "
                           f"JSON: {error}); refusing to write into {root}: choose another "
                           f"--out") from error
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or not is_int(
            data.get("n_samples")):
        kind = type(data).__name__ if not isinstance(data, dict) else \
            f"format {data.get('format')!r}"
        raise DatasetError(f"{path} is not a geo_neuralop generation manifest ({kind}); "
                           f"refusing to write into {root}: choose another --out")
    return data


def _existing_dataset(root: Path) -> dict | None:
    """The card, else the manifest, of the dataset in ``root``; None when it holds neither."""
    if (root / CARD_NAME).exists():
        return read_card(root)
    if (root / MANIFEST_NAME).exists():
        return read_manifest(root)
    return None


def check_not_foreign(root: Path) -> None:
    """Refuse (before writing anything, even a lock file) a folder holding no dataset of ours."""
    if root.exists() and not root.is_dir():
        raise DatasetError(f"--out {root} exists and is not a folder")
    if not root.is_dir():
        return
    if _existing_dataset(root) is None:
        foreign = _foreign_entries(root)
        if foreign:
            raise DatasetError(
                f"{root} is not empty and holds no geo_neuralop dataset ({foreign[:5]}); "
                f"refusing to write into it: choose another --out")


def _listed_files(root: Path, existing: dict) -> list[str]:
    """Relative paths the old dataset's card (or manifest) names as its own."""
    if existing.get("format") == MANIFEST_FORMAT:
        names = []
        for i in range(int(existing["n_samples"])):
            names += [f"{SAMPLES_DIR}/{sample_name(i)}",
                      f"{SAMPLES_DIR}/{Path(sample_name(i)).with_suffix('.vtu').name}"]
        return names + [NORMALIZER_NAME]
    return [str(rel) for rel in existing["files"]]


def _remove_our_files(root: Path, existing: dict) -> list[Path]:
    """Delete the old dataset's files: only those its card or manifest lists whose names and
    contents prove they are ours (sample files by their format attribute, VTU files by
    their point data, the normalizer by its format key), then the card and manifest."""
    removed = []
    indices = []
    for rel in _listed_files(root, existing):
        try:
            path = confined_file(root, rel, "listed file", must_exist=False)
        except PathOutsideFolderError:
            continue  # never follow a name out of the folder
        if path is None:
            continue
        rel_path = Path(rel)
        ours = False
        if rel_path.parent.as_posix() == SAMPLES_DIR and rel_path.suffix == ".h5":
            ours = is_sample_file(root / rel)
            if ours:
                indices.append(int(rel_path.stem.split("_")[1]))
        elif rel_path.parent.as_posix() == SAMPLES_DIR and rel_path.suffix == ".vtu":
            ours = is_sample_vtu(root / rel)
        elif rel == NORMALIZER_NAME:
            ours = _is_our_normalizer(path)
        if ours:
            (root / rel).unlink()
            removed.append(root / rel)
    for i in indices:
        timing = timing_path(root, i)
        if timing.is_file() and not timing.is_symlink():
            timing.unlink()
    removed += remove_stale_temporaries(root)
    for name in (CARD_NAME, MANIFEST_NAME):  # validated as ours by _existing_dataset
        path = root / name
        if path.is_file() and not path.is_symlink():
            path.unlink()
            removed.append(path)
    for folder in (SAMPLES_DIR, TIMINGS_DIR):
        with contextlib.suppress(OSError):
            (root / folder).rmdir()  # only when empty
    return removed


def _is_our_normalizer(path: Path) -> bool:
    try:
        FieldNormalizer.load(path)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def prepare_folder(root: Path, manifest: dict, overwrite: bool,
                    log: Callable[[str], None]) -> bool:
    """Check the output folder (the caller holds its lock); return True when the dataset is
    already complete."""
    root.mkdir(parents=True, exist_ok=True)
    existing = _existing_dataset(root)
    if existing is None:
        foreign = _foreign_entries(root)
        if foreign:
            raise DatasetError(
                f"{root} is not empty and holds no geo_neuralop dataset ({foreign[:5]}); "
                f"refusing to write into it: choose another --out")
        return False
    differences = manifest_differences(existing, manifest)
    if differences:
        unfinished_empty = not (root / CARD_NAME).exists() and not sample_indices(root)
        if unfinished_empty:  # an earlier run failed before its first sample: nothing to lose
            log(f"{root}: the earlier generation here made no sample; starting over with the "
                f"new settings ({'; '.join(differences)})")
            _remove_our_files(root, existing)
            return False
        if not overwrite:
            raise DatasetError(
                f"{root} already holds a different dataset: {'; '.join(differences)} differ. "
                f"Choose another --out, or pass --overwrite to delete the old dataset's files")
        _remove_our_files(root, existing)
        return False
    return (root / CARD_NAME).exists()


def finished_samples(root: Path, generator: str, dataset_hash: str, n_samples: int) -> list[int]:
    """Indices still to compute; raises for a finished file that is damaged or foreign."""
    present = set(sample_indices(root))
    bad = []
    for i in sorted(present):
        if i >= n_samples:
            bad.append(f"{SAMPLES_DIR}/sample_{i:06d}.h5 (index beyond n_samples={n_samples})")
            continue
        try:
            header = read_header(sample_path(root, i))
        except DatasetError as error:
            bad.append(str(error))
            continue
        if (header.generator, header.index, header.dataset_params_hash) != (
                generator, i, dataset_hash):
            bad.append(f"{header.path} was made with other settings")
    if bad:
        raise DatasetError(
            f"{len(bad)} existing sample file(s) cannot be reused: {'; '.join(bad[:5])}. Delete "
            f"them (or the folder) to regenerate; nothing is overwritten automatically")
    return [i for i in range(n_samples) if i not in present]
