"""The datasets of a study: generated with geo_neuralop's generators, shared between studies.

Each :class:`~benchmarks.accuracy.spec.DatasetSpec` lives in
``<work>/data/<generator>_<hash>/``; ``generate_dataset`` resumes an interrupted
generation and confirms a finished one. A ``stride_of`` dataset (Navier-Stokes at
a coarser grid) is written from the finer dataset's files: the ``ns2d`` generator
stores every ``k``-th point of its solver grid, so taking every ``k``-th point of
a finer stored grid gives the same numbers without solving again (tested against
direct generation).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch

from geo_neuralop.data import generate_dataset, read_card, resolve_parameters
from geo_neuralop.data.dataset_card import compute_splits
from geo_neuralop.data.dataset_folder import MANIFEST_FORMAT
from geo_neuralop.data.storage import (
    CARD_NAME,
    MANIFEST_NAME,
    Trajectory,
    grid_description,
    params_hash,
    read_header,
    read_trajectory,
    sample_path,
    write_trajectory,
)
from geo_neuralop.geometry import regular_grid
from geo_neuralop.utils import atomic_path

from .spec import DatasetSpec

__all__ = ["STRIDABLE", "dataset_root", "derive_strided", "ensure_datasets"]

#: Generators whose stored grid is every k-th point of the solver grid (periodic square).
STRIDABLE = ("ns2d",)


def dataset_root(work_dir: str | os.PathLike, spec: DatasetSpec) -> Path:
    """Folder of a dataset under the work folder."""
    return Path(work_dir) / "data" / spec.folder_name()


def _stride(source_params: Mapping, params: Mapping) -> int:
    different = sorted(k for k in params if k != "resolution"
                       and params[k] != source_params.get(k))
    if different:
        raise ValueError(f"stride_of: the datasets differ in {different} (only 'resolution' "
                         f"may differ)")
    fine, coarse = int(source_params["resolution"]), int(params["resolution"])
    if coarse > fine or fine % coarse:
        raise ValueError(f"stride_of: resolution {coarse} must divide the source resolution "
                         f"{fine}")
    return fine // coarse


def derive_strided(source: str | os.PathLike, spec: DatasetSpec, out: str | os.PathLike,
                   log: Callable[[str], None] | None = print) -> Path:
    """Write ``spec`` (a coarser ``ns2d`` grid) from the finished dataset ``source``.

    The sample files carry the header ``generate_dataset`` would write for
    ``spec`` (generator, index, seed, dataset hash), so ``generate_dataset`` then
    finds every sample present and writes the normalizer and the card.

    Raises
    ------
    ValueError
        When ``spec`` is not a coarser grid of the same generator settings and seed.
    """
    if spec.generator not in STRIDABLE:
        raise ValueError(f"stride_of works for the generators {STRIDABLE}, got "
                         f"{spec.generator!r}")
    source, root = Path(source), Path(out)
    card = read_card(source)
    if card["generator"] != spec.generator or int(card["seed"]) != spec.seed or \
            int(card["n_samples"]) != spec.n_samples:
        raise ValueError(f"stride_of: {source} holds {card['generator']!r} seed {card['seed']} "
                         f"with {card['n_samples']} samples; {spec.generator!r} seed "
                         f"{spec.seed} with {spec.n_samples} samples is needed")
    params = resolve_parameters(spec.generator, dict(spec.params))
    stride = _stride(card["parameters"], params)
    splits = compute_splits(spec.n_samples, tuple(spec.split_fractions))
    dataset_hash = params_hash({"generator": spec.generator, "parameters": params,
                                "seed": spec.seed})
    if not (root / CARD_NAME).exists():
        root.mkdir(parents=True, exist_ok=True)
        manifest = {"format": MANIFEST_FORMAT, "generator": spec.generator,
                    "parameters": params, "seed": spec.seed, "n_samples": spec.n_samples,
                    "splits": splits, "dataset_hash": dataset_hash}
        if not (root / MANIFEST_NAME).exists():
            with atomic_path(root / MANIFEST_NAME) as tmp:
                tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        (root / "samples").mkdir(exist_ok=True)
        n = int(params["resolution"])
        cloud = regular_grid((n, n), periodic=True, dtype=torch.float64)
        for index in range(spec.n_samples):
            target = sample_path(root, index)
            if target.exists():
                continue
            src = read_trajectory(sample_path(source, index))
            header = read_header(sample_path(source, index))
            fields = {}
            for name, values in src.fields.items():
                fine = int(round(np.sqrt(values.shape[1])))
                grid = values.reshape(values.shape[0], fine, fine)[:, ::stride, ::stride]
                fields[name] = np.ascontiguousarray(grid.reshape(values.shape[0], -1))
            traj = Trajectory(pos=cloud.pos.numpy(), weights=cloud.weights.numpy(),
                              manifold=src.manifold, times=src.times, fields=fields,
                              grid=grid_description(cloud), params=src.params,
                              units=src.units, descriptions=src.descriptions)
            timing = {"wall_seconds": header.wall_seconds or 0.0,
                      "cpu_seconds": header.cpu_seconds or 0.0}
            write_trajectory(target, traj, spec.generator, index, spec.seed, dataset_hash,
                             timing=timing)
        if log:
            log(f"{root}: every {stride}-th grid point of {source}")
    return generate_dataset(spec.generator, root, spec.n_samples, seed=spec.seed,
                            params=params, split_fractions=tuple(spec.split_fractions),
                            progress=False, log=log)


def ensure_datasets(datasets: Mapping[str, DatasetSpec], work_dir: str | os.PathLike,
                    keys: list[str] | None = None, workers: int = 1,
                    log: Callable[[str], None] | None = print) -> dict[str, Path]:
    """Generate (or resume, or confirm) datasets; return their folders by key.

    Datasets others are strided from come first.
    """
    keys = list(datasets) if keys is None else list(keys)
    order = [k for k in keys if datasets[k].stride_of is None]
    order += [k for k in keys if datasets[k].stride_of is not None]
    for key in order:  # sources of strided datasets are needed even if not asked for
        source = datasets[key].stride_of
        if source is not None and source not in order:
            order.insert(0, source)
    roots: dict[str, Path] = {}
    for key in order:
        spec = datasets[key]
        root = dataset_root(work_dir, spec)
        if spec.stride_of is None:
            generate_dataset(spec.generator, root, spec.n_samples, seed=spec.seed,
                             workers=workers, params=dict(spec.params),
                             split_fractions=tuple(spec.split_fractions), progress=False,
                             log=log)
        else:
            source = dataset_root(work_dir, datasets[spec.stride_of])
            derive_strided(source, spec, root, log=log)
        roots[key] = root
    return roots
