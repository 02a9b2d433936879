"""A dataset folder from trajectories read elsewhere: the layout ``geo-neuralop generate`` writes.

:func:`write_dataset` takes an iterator of :class:`~geo_neuralop.data.Trajectory` (one is
in memory at a time), writes ``samples/sample_NNNNNN.h5`` atomically, fits the
normalizer on the training split (reading the files back, one at a time) and writes the
dataset card last, so the trainer and the loaders take an imported dataset exactly as a
generated one. The card's ``generator`` reads ``import:<format>`` and its ``parameters``
record what was imported from where.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from geo_neuralop.data.dataset_card import (
    card_geometry,
    code_version,
    compute_splits,
    file_entries,
    make_card,
    read_card,
    split_indices,
    write_card,
)
from geo_neuralop.data.normalizers import FieldNormalizer
from geo_neuralop.data.storage import (
    CARD_NAME,
    NORMALIZER_NAME,
    SAMPLES_DIR,
    DatasetError,
    Trajectory,
    params_hash,
    read_header,
    read_trajectory,
    sample_path,
    write_trajectory,
)
from geo_neuralop.utils import atomic_path

__all__ = ["IMPORT_MANIFEST", "write_dataset"]

#: Written first and removed when the card is written: marks an unfinished import.
IMPORT_MANIFEST = "import.json"
MANIFEST_FORMAT = "geo_neuralop.import"
_OURS = (CARD_NAME, NORMALIZER_NAME, IMPORT_MANIFEST, SAMPLES_DIR)


def _remove_dataset(root: Path) -> None:
    for name in (CARD_NAME, NORMALIZER_NAME, IMPORT_MANIFEST):
        with contextlib.suppress(FileNotFoundError):
            (root / name).unlink()
    folder = root / SAMPLES_DIR
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith(("sample_", ".sample_")) and p.suffix in (".h5", ".vtu"):
                p.unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()


def _prepare(root: Path, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise DatasetError(f"--out {root} exists and is not a folder")
    if not root.exists():
        root.mkdir(parents=True)
        return
    entries = sorted(p.name for p in root.iterdir())
    if not entries:
        return
    ours = (root / CARD_NAME).exists() or (root / IMPORT_MANIFEST).exists()
    if ours and (root / CARD_NAME).exists():
        read_card(root)  # a foreign card.yaml is refused here, never deleted
    if not ours:
        raise DatasetError(f"{root} is not empty and holds no geo_neuralop dataset "
                           f"({entries[:5]}); refusing to write into it: choose another --out")
    foreign = [name for name in entries if name not in _OURS]
    if foreign:
        raise DatasetError(f"{root} holds a dataset and other files ({foreign[:5]}); refusing "
                           f"to write into it: choose another --out")
    if not overwrite:
        state = "a dataset" if (root / CARD_NAME).exists() else "an unfinished import"
        raise DatasetError(f"{root} already holds {state}; pass --overwrite to replace it "
                           f"(only the dataset's own files are deleted) or choose another --out")
    _remove_dataset(root)


def write_dataset(
    out: str | os.PathLike,
    samples: Iterable[Trajectory],
    n_samples: int,
    *,
    source: str,
    description: str,
    task: dict,
    fields: dict,
    parameters: dict,
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    splits: dict[str, list[int]] | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Write trajectories as a geo_neuralop dataset folder; return the card's path.

    Parameters
    ----------
    out : path
        Dataset folder: absent, empty, or (with ``overwrite``) an earlier dataset.
    samples : iterable of Trajectory
        Exactly ``n_samples`` trajectories, consumed one at a time.
    n_samples : int
    source : str
        Format name; the card's generator is ``import:<source>``.
    description : str
    task : dict
        ``{"kind": "rollout" | "static", "inputs": [...], "targets": [...]}``.
    fields : dict
        ``{name: {"units": ..., "description": ...}}`` of every stored field.
    parameters : dict
        Plain JSON values recorded in the card (source file, variables, ...).
    split_fractions : (train, val, test)
        Contiguous index ranges (see :func:`~geo_neuralop.data.dataset_card.compute_splits`).
    splits : dict, optional
        ``{"train": [lo, hi], "val": [...], "test": [...]}`` given by the source (for
        example its own split folders); replaces ``split_fractions``.
    overwrite : bool
        Replace an earlier dataset (card or unfinished import) in ``out``.
    log : callable, optional
        Receives one-line progress messages.

    Raises
    ------
    DatasetError
        ``out`` holds something else; the reader yields a different number of samples.
    ValueError
        A sample with inconsistent shapes or non-finite values (the message names it).
    """
    log = log or (lambda message: None)
    if splits is None:
        splits = compute_splits(n_samples, tuple(split_fractions))
    else:
        splits = {k: [int(v[0]), int(v[1])] for k, v in splits.items()}
        if splits.get("train", [0, 0])[1] <= splits.get("train", [0, 0])[0]:
            raise DatasetError(f"the {source} source has no training sample (splits {splits})")
    root = Path(out)
    _prepare(root, overwrite)
    generator = f"import:{source}"
    manifest = {"format": MANIFEST_FORMAT, "generator": generator, "parameters": parameters,
                "n_samples": int(n_samples), "splits": splits}
    dataset_hash = params_hash({"generator": generator, "parameters": parameters})
    with atomic_path(root / IMPORT_MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    (root / SAMPLES_DIR).mkdir(exist_ok=True)
    count = 0
    for traj in samples:
        if count >= n_samples:
            raise DatasetError(f"the {source} reader gave more than the {n_samples} samples it "
                               f"announced")
        try:
            write_trajectory(sample_path(root, count), traj, generator, count, 0, dataset_hash)
        except ValueError as error:
            raise ValueError(f"sample {count}: {error}") from error
        count += 1
        if count % 50 == 0 or count == n_samples:
            log(f"{root}: {count} of {n_samples} samples written")
    if count != n_samples:
        raise DatasetError(f"the {source} reader gave {count} samples, {n_samples} were "
                           f"announced")
    card = _finish(root, generator, splits, task, fields, parameters, description, n_samples)
    with contextlib.suppress(FileNotFoundError):
        (root / IMPORT_MANIFEST).unlink()
    stats = card["statistics"]
    log(f"{root}: {n_samples} samples, {stats['bytes_total'] / 1e6:.1f} MB")
    return root / CARD_NAME


def _finish(root: Path, generator: str, splits: dict, task: dict, fields: dict,
            parameters: dict, description: str, n_samples: int) -> dict:
    headers = [read_header(sample_path(root, i)) for i in range(n_samples)]
    train = split_indices({"splits": splits, "name": root.name}, "train")

    def train_samples():
        for i in train:
            traj = read_trajectory(sample_path(root, i))
            yield traj.fields, traj.weights

    normalizer = FieldNormalizer.fit(train_samples(), fitted_on="train")
    normalizer.save(root / NORMALIZER_NAME)
    rel = [f"{SAMPLES_DIR}/{h.path.name}" for h in headers] + [NORMALIZER_NAME]
    files = file_entries(root, rel)
    geometry = card_geometry(read_trajectory(headers[0].path), headers)
    sample_bytes = [files[f"{SAMPLES_DIR}/{h.path.name}"]["bytes"] for h in headers]
    statistics = {
        "frames_per_sample": headers[0].num_frames,
        "bytes_per_sample": {"mean": float(np.mean(sample_bytes)),
                             "min": float(np.min(sample_bytes)),
                             "max": float(np.max(sample_bytes))},
        "bytes_total": int(sum(e["bytes"] for e in files.values())),
    }
    card = make_card(
        name=root.name, generator=generator, seed=0, n_samples=n_samples,
        parameters=json.loads(json.dumps(parameters, default=str)), splits=splits, task=task,
        fields=fields, files=files, description=description, geometry=geometry,
        statistics=statistics, version_info=code_version(),
        normalizer={"file": NORMALIZER_NAME, "fitted_on": "train", "weighting": "quadrature",
                    "fields": {k: {"mean": normalizer.mean[k], "std": normalizer.std[k]}
                               for k in normalizer.names}})
    write_card(root, card)
    return card
