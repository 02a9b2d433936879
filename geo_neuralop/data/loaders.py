"""Datasets of generated data: ``PointCloud`` samples with input and target fields.

``load_dataset("datasets/swe_small", "train")`` checks the folder against its
card and returns a :class:`FieldDataset`, a ``torch.utils.data.Dataset`` whose
items are :class:`~geo_neuralop.geometry.PointCloud` samples (grids included:
sphere grids and regular grids keep their ``grid_shape`` metadata) carrying::

    ``x``            ``[N, C_in]`` input channels (``input_steps`` frames, frame-major),
    ``y``            ``[N, C_out]`` target channels, or ``[N, target_steps, C_out]``
                     when ``target_steps > 1`` (rollout targets),
    ``node_type``    ``[N]`` long, where the data has one (meshes: 0 interior, 1 inlet,
                     2 outlet, 3 walls, 4 cylinder),
    ``conditioning`` ``[1, P]`` per-sample scalars named by ``dataset.conditioning_names``
                     (the card's ``task.conditioning``, e.g. the Reynolds number), if any,
    ``trajectory``, ``start``, ``frame_time``: where the window comes from (the file index,
                     its first input frame, and the physical time of its last input frame).

For time-dependent data (``task.kind == "rollout"``) every window of frames is a
sample: inputs at frames ``t0, t0 + s, ..., t0 + (input_steps - 1) s`` and targets
at the ``target_steps`` frames after, with ``s = frame_step``. Static data (Darcy)
gives one sample per file.

Channels are normalized by the dataset's :class:`FieldNormalizer` (fitted on the
training split at generation time) unless ``normalize=False``;
``dataset.decode_target`` maps predictions back to physical units.

Batches: ``torch_geometric.loader.DataLoader`` collates samples of any sizes
(meshes of different vertex counts) into one graph. ``dataset.tensor_view()``
gives ``(x [C_in, *grid_shape], y [C_out, *grid_shape])`` pairs for grid models.
"""

from __future__ import annotations

import copy
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from geo_neuralop.data.dataset_card import split_indices, verify_dataset
from geo_neuralop.data.normalizers import FieldNormalizer
from geo_neuralop.data.storage import (
    NORMALIZER_NAME,
    DatasetError,
    Trajectory,
    cloud_from_arrays,
    read_header,
    read_trajectory,
    sample_path,
)
from geo_neuralop.geometry.point_cloud import PointCloud


class FieldDataset(Dataset):
    """Windows of a generated dataset's split as ``PointCloud`` samples.

    Parameters
    ----------
    root : path
        Dataset folder (with ``card.yaml``).
    split : {"train", "val", "test"}
    input_steps : int
        Frames concatenated into ``x`` (rollout data).
    target_steps : int
        Frames in ``y`` (rollout data); ``> 1`` gives ``y`` of shape ``[N, T, C]``.
    frame_step : int
        Frames between consecutive inputs/targets.
    normalize : bool
        Normalize ``x`` and ``y`` with the dataset's normalizer (train statistics).
    transform : callable, optional
        Applied to each sample (e.g. :class:`AttachKernels`).
    verify : bool
        Check every file's SHA-256 against the card (sizes are always checked).
    inputs, targets : sequence of str, optional
        Field names (default: the card's task).
    dtype : torch.dtype
        dtype of ``x``, ``y``, ``pos`` and ``weights``.
    cache_bytes : int
        Trajectories are kept in memory up to this many bytes (least recently
        used first out).

    Raises
    ------
    DatasetError
        Missing or incomplete dataset, card/data mismatch (truncated, corrupted,
        missing files), missing or empty split, or no window fits the frames.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        input_steps: int = 1,
        target_steps: int = 1,
        frame_step: int = 1,
        normalize: bool = True,
        transform: Callable[[PointCloud], PointCloud] | None = None,
        verify: bool = True,
        inputs: Sequence[str] | None = None,
        targets: Sequence[str] | None = None,
        dtype: torch.dtype = torch.float32,
        cache_bytes: int = 2 * 1024**3,
    ) -> None:
        for name, value in (("input_steps", input_steps), ("target_steps", target_steps),
                            ("frame_step", frame_step)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"no dataset folder at {self.root}")
        # every path the card names is confined to the folder and must be a regular file
        self.card = verify_dataset(self.root, checksums=verify)
        self.split = split
        self.indices = split_indices(self.card, split)
        task = self.card["task"]
        self.kind = task["kind"]
        self.inputs = list(inputs) if inputs is not None else list(task["inputs"])
        self.targets = list(targets) if targets is not None else list(task["targets"])
        if self.kind == "static" and (input_steps, target_steps) != (1, 1):
            raise ValueError(f"dataset {self.card['name']!r} is static (no time): input_steps "
                             f"and target_steps must be 1")
        self.input_steps, self.target_steps, self.frame_step = input_steps, target_steps, \
            frame_step
        self.normalize, self.transform, self.dtype = normalize, transform, dtype
        self.normalizer = FieldNormalizer.load(self.root / NORMALIZER_NAME)
        self.conditioning_names = list(task.get("conditioning", []))
        self._cache: OrderedDict[int, Trajectory] = OrderedDict()
        self._cache_bytes, self._cache_limit = 0, int(cache_bytes)
        self._clouds: dict = {}

        headers = [read_header(sample_path(self.root, i)) for i in self.indices]
        available = set(headers[0].field_names)
        for name in (*self.inputs, *self.targets):
            if name not in available:
                raise DatasetError(f"dataset {self.card['name']!r} has no field {name!r}; it "
                                   f"has {sorted(available)}")
        span = (input_steps + target_steps - 1) * frame_step
        self._windows: list[tuple[int, int]] = []
        for h in headers:
            count = 1 if self.kind == "static" else max(0, h.num_frames - span)
            self._windows.extend((h.index, t0) for t0 in range(count))
        if not self._windows:
            raise DatasetError(
                f"no window of {input_steps} input and {target_steps} target frame(s), "
                f"frame_step {frame_step}, fits the {headers[0].num_frames} frames of "
                f"dataset {self.card['name']!r}")

    # --- names and normalization ------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        """Name of every channel of ``x`` (fields repeated per input frame)."""
        return self.inputs * self.input_steps

    @property
    def target_names(self) -> list[str]:
        """Name of every channel of ``y`` (per target frame)."""
        return list(self.targets)

    def decode_target(self, y: torch.Tensor) -> torch.Tensor:
        """Targets or predictions (channels last) back to physical units."""
        return self.normalizer.decode(y, self.targets) if self.normalize else y

    def encode_input(self, x: torch.Tensor) -> torch.Tensor:
        """Physical inputs (channels last, :attr:`input_names`) to normalized ones."""
        return self.normalizer.encode(x, self.input_names) if self.normalize else x

    # --- data access ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._windows)

    def trajectory(self, index: int) -> Trajectory:
        """The full trajectory (sample file) ``index`` (cached)."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        traj = read_trajectory(sample_path(self.root, index))
        size = sum(v.nbytes for v in traj.fields.values())
        self._cache[index] = traj
        self._cache_bytes += size
        while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= sum(v.nbytes for v in old.fields.values())
        return traj

    def cloud(self, index: int) -> PointCloud:
        """The geometry of trajectory ``index`` (shared by all samples of a grid dataset)."""
        traj = self.trajectory(index)
        key = "grid" if traj.grid is not None else index
        if key not in self._clouds:
            self._clouds[key] = cloud_from_arrays(traj.pos, traj.weights, traj.manifold,
                                                  traj.faces, traj.grid, self.dtype)
        return self._clouds[key]

    def _frames(self, traj: Trajectory, names: list[str], frames: list[int]) -> torch.Tensor:
        data = np.stack([traj.fields[n][frames] for n in names], axis=-1)  # [T, N, C]
        return torch.from_numpy(np.ascontiguousarray(data)).to(self.dtype)

    def __getitem__(self, item: int) -> PointCloud:
        if not -len(self) <= item < len(self):
            raise IndexError(f"index {item} out of range for {len(self)} samples")
        index, t0 = self._windows[item]
        traj = self.trajectory(index)
        if self.kind == "static":
            in_frames, out_frames = [0], [0]
        else:
            s = self.frame_step
            in_frames = [t0 + k * s for k in range(self.input_steps)]
            out_frames = [t0 + (self.input_steps + k) * s for k in range(self.target_steps)]
        x = self._frames(traj, self.inputs, in_frames)  # [Ti, N, C]
        y = self._frames(traj, self.targets, out_frames)  # [To, N, C]
        if self.normalize:
            x = self.normalizer.encode(x, self.inputs)
            y = self.normalizer.encode(y, self.targets)
        x = x.permute(1, 0, 2).reshape(traj.num_points, -1)
        y = y[0] if self.target_steps == 1 else y.permute(1, 0, 2).contiguous()
        sample = copy.copy(self.cloud(index))
        sample.x = x
        sample.y = y
        if "node_type" in traj.static:
            sample.node_type = torch.as_tensor(traj.static["node_type"], dtype=torch.long)
        if self.conditioning_names:
            sample.conditioning = torch.tensor(
                [[float(traj.params[k]) for k in self.conditioning_names]], dtype=self.dtype)
        sample.trajectory = index
        sample.start = in_frames[0]
        sample.frame_time = float(traj.times[in_frames[-1]])
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    def tensor_view(self) -> GridTensorDataset:
        """The same samples as channel-first grid tensors (grid datasets only)."""
        return GridTensorDataset(self)

    def __repr__(self) -> str:
        return (f"FieldDataset({self.card['name']!r}, split={self.split!r}, samples={len(self)}, "
                f"inputs={self.inputs}x{self.input_steps}, targets={self.targets}"
                f"x{self.target_steps}, normalize={self.normalize})")


class GridTensorDataset(Dataset):
    """Channel-first tensors of grid samples, for FNO-style models.

    Items are ``(x, y)``: ``x [F, *grid_shape]`` and ``y [C_out, *grid_shape]``
    (``[T, C_out, *grid_shape]`` when ``target_steps > 1``), where ``grid_shape``
    is ``(nx, ny)`` for regular grids and ``(nlat, nlon)`` for sphere grids.

    Parameters
    ----------
    dataset : FieldDataset or Subset of one
        Samples on a regular or sphere grid.
    features : callable, optional
        ``features(sample) -> [N, F]``, the model input of a sample (default ``sample.x``).
    grid_shape : sequence of int, optional
        Expected grid (default: the first sample's); a sample on another grid is
        refused naming its index.
    """

    def __init__(self, dataset: Dataset, features: Callable[[Any], torch.Tensor] | None = None,
                 grid_shape: Sequence[int] | None = None) -> None:
        if grid_shape is None:
            base = dataset.dataset if isinstance(dataset, Subset) else dataset
            first = base.cloud(base.indices[0])  # type: ignore[attr-defined]
            grid_shape = getattr(first, "grid_shape", None)
            if grid_shape is None:
                raise ValueError(f"dataset {base.card['name']!r} is not on a grid (meshes "  # type: ignore[attr-defined]
                                 f"have no tensor view); use the PointCloud samples")
        self.dataset, self.grid_shape = dataset, tuple(int(n) for n in grid_shape)
        self.features = features

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.dataset[item]
        shape = getattr(sample, "grid_shape", None)
        if shape is None or tuple(shape) != self.grid_shape:
            raise ValueError(f"sample {item} is on a {shape} grid, expected {self.grid_shape}")
        x = sample.x if self.features is None else self.features(sample)
        x = x.T.reshape(-1, *self.grid_shape)
        if sample.y.dim() == 2:
            y = sample.y.T.reshape(-1, *self.grid_shape)
        else:
            y = sample.y.permute(1, 2, 0).reshape(sample.y.shape[1], -1, *self.grid_shape)
        return x.contiguous(), y.contiguous()


def load_dataset(root: str | os.PathLike, split: str = "train", **kwargs) -> FieldDataset:
    """A split of a generated dataset as ``PointCloud`` samples; see :class:`FieldDataset`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from geo_neuralop.data import generate_dataset, load_dataset
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "darcy_tiny"
    >>> _ = generate_dataset("darcy", out, n_samples=4, params={"resolution": 9},
    ...                      progress=False, log=None)
    >>> train = load_dataset(out, "train")
    >>> len(train), tuple(train[0].x.shape), tuple(train[0].y.shape), train[0].grid_shape
    (2, (81, 1), (81, 1), (9, 9))
    >>> x, y = train.tensor_view()[0]
    >>> tuple(x.shape), tuple(y.shape)
    ((1, 9, 9), (1, 9, 9))
    >>> import shutil; shutil.rmtree(out.parent)
    """
    return FieldDataset(root, split, **kwargs)
