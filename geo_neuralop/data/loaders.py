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

Datasets larger than memory *stream*: each sample reads only its window's frames
from the HDF5 files (stored one chunk per frame), through file handles opened
lazily in the process that reads (so every DataLoader worker has its own, never
one inherited across a fork), and only the small per-trajectory geometry is
cached, within ``cache_bytes``. Streaming is chosen when the split's fields do
not fit in ``cache_bytes`` (or with ``stream=True``); otherwise whole
trajectories are cached.

Batches: ``torch_geometric.loader.DataLoader`` collates samples of any sizes
(meshes of different vertex counts) into one graph. ``dataset.tensor_view()``
gives ``(x [C_in, *grid_shape], y [C_out, *grid_shape])`` pairs for grid models.
"""

from __future__ import annotations

import copy
import json
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
        Memory for cached data, per process: whole trajectories (least recently
        used first out), or, when streaming, the trajectories' geometry.
    stream : bool, optional
        Read each sample's frames from disk instead of caching trajectories
        (default: when the split's fields take more than ``cache_bytes``).
    max_open_files : int
        Sample files kept open per process when streaming (each open HDF5 file
        holds about 1.5 MB of library caches).

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
        stream: bool | None = None,
        max_open_files: int = 4,
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
        self._files = _FileHandles(max_open_files)
        self._layouts: OrderedDict[int, _Layout] = OrderedDict()
        self._layout_bytes = 0

        headers = [read_header(sample_path(self.root, i)) for i in self.indices]
        field_bytes = sum(4 * h.num_frames * h.num_points * len(h.field_names) for h in headers)
        self.stream = bool(field_bytes > self._cache_limit) if stream is None else bool(stream)
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
        if self.kind == "static":
            in_frames, out_frames = [0], [0]
        else:
            s = self.frame_step
            in_frames = [t0 + k * s for k in range(self.input_steps)]
            out_frames = [t0 + (self.input_steps + k) * s for k in range(self.target_steps)]
        if self.stream:
            layout = self._layout(index)
            cloud, times, static, params = layout.cloud, layout.times, layout.static, \
                layout.params
            x = self._read_frames(index, self.inputs, in_frames)  # [Ti, N, C]
            y = self._read_frames(index, self.targets, out_frames)  # [To, N, C]
        else:
            traj = self.trajectory(index)
            cloud, times, static, params = self.cloud(index), traj.times, traj.static, \
                traj.params
            x = self._frames(traj, self.inputs, in_frames)  # [Ti, N, C]
            y = self._frames(traj, self.targets, out_frames)  # [To, N, C]
        if self.normalize:
            x = self.normalizer.encode(x, self.inputs)
            y = self.normalizer.encode(y, self.targets)
        n = x.shape[1]
        x = x.permute(1, 0, 2).reshape(n, -1)
        y = y[0] if self.target_steps == 1 else y.permute(1, 0, 2).contiguous()
        sample = copy.copy(cloud)
        sample.x = x
        sample.y = y
        if "node_type" in static:
            sample.node_type = torch.as_tensor(static["node_type"], dtype=torch.long)
        if self.conditioning_names:
            sample.conditioning = torch.tensor(
                [[float(params[k]) for k in self.conditioning_names]], dtype=self.dtype)
        sample.trajectory = index
        sample.start = in_frames[0]
        sample.frame_time = float(times[in_frames[-1]])
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    # --- streaming ----------------------------------------------------------------------
    def _read_frames(self, index: int, names: list[str], frames: list[int]) -> torch.Tensor:
        """``[T, N, C]`` of the given (increasing) frames, read from the file."""
        path = sample_path(self.root, index)
        try:
            group = self._files.open(path)["fields"]
            data = np.stack([group[name][frames] for name in names], axis=-1)
        except (OSError, KeyError, ValueError) as error:
            raise DatasetError(f"{path} could not be read (truncated or corrupted?): "
                               f"{error}") from error
        return torch.from_numpy(data).to(self.dtype)

    def _layout(self, index: int) -> _Layout:
        """The geometry, times, static data and parameters of trajectory ``index`` (cached
        within ``cache_bytes``; a grid dataset's samples share one cloud)."""
        if index in self._layouts:
            self._layouts.move_to_end(index)
            return self._layouts[index]
        path = sample_path(self.root, index)
        try:
            f = self._files.open(path)
            g = f["geometry"]
            grid = json.loads(g.attrs["grid"]) if "grid" in g.attrs else None
            shared = "grid" if grid is not None else None
            if shared is not None and shared in self._clouds:
                cloud = self._clouds[shared]
            else:
                cloud = cloud_from_arrays(g["pos"][()], g["weights"][()], str(g.attrs["manifold"]),
                                          g["faces"][()] if "faces" in g else None, grid,
                                          self.dtype)
                if shared is not None:
                    self._clouds[shared] = cloud
            static = {k: v[()] for k, v in f["static"].items()} if "static" in f else {}
            layout = _Layout(cloud, f["times"][()], static, json.loads(f.attrs["params"]))
        except (OSError, KeyError, ValueError) as error:
            raise DatasetError(f"{path} could not be read (truncated or corrupted?): "
                               f"{error}") from error
        self._layouts[index] = layout
        self._layout_bytes += layout.nbytes
        while self._layout_bytes > self._cache_limit and len(self._layouts) > 1:
            _, old = self._layouts.popitem(last=False)
            self._layout_bytes -= old.nbytes
        return layout

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()  # no open files or caches travel to worker processes
        state["_files"] = _FileHandles(self._files.max_open)
        state["_cache"], state["_cache_bytes"] = OrderedDict(), 0
        state["_layouts"], state["_layout_bytes"] = OrderedDict(), 0
        return state

    def tensor_view(self) -> GridTensorDataset:
        """The same samples as channel-first grid tensors (grid datasets only)."""
        return GridTensorDataset(self)

    def __repr__(self) -> str:
        return (f"FieldDataset({self.card['name']!r}, split={self.split!r}, samples={len(self)}, "
                f"inputs={self.inputs}x{self.input_steps}, targets={self.targets}"
                f"x{self.target_steps}, normalize={self.normalize})")


class _Layout:
    """What every sample of one trajectory shares when streaming."""

    def __init__(self, cloud: PointCloud, times: np.ndarray, static: dict, params: dict) -> None:
        self.cloud, self.times, self.static, self.params = cloud, times, static, params
        tensors = [v for v in cloud.to_dict().values() if isinstance(v, torch.Tensor)]
        self.nbytes = (sum(t.numel() * t.element_size() for t in tensors) + times.nbytes
                       + sum(np.asarray(v).nbytes for v in static.values()))


class _FileHandles:
    """Read-only h5py files kept open per process (least recently used closed first).

    Handles are never shared across processes: after a fork (DataLoader workers)
    the child drops the parent's handles and opens its own.
    """

    def __init__(self, max_open: int = 4) -> None:
        if isinstance(max_open, bool) or not isinstance(max_open, int) or max_open < 1:
            raise ValueError(f"max_open_files must be a positive int, got {max_open!r}")
        self.max_open = max_open
        self.pid = os.getpid()
        self.files: OrderedDict[Path, Any] = OrderedDict()

    def open(self, path: Path) -> Any:
        import h5py

        if os.getpid() != self.pid:  # a forked child: the parent's handles are not ours
            self.pid, self.files = os.getpid(), OrderedDict()
        if path in self.files:
            self.files.move_to_end(path)
            return self.files[path]
        # no HDF5 chunk cache (1 MB per dataset by default, so up to 1 MB per field of
        # every open file): a sample reads each frame once, the OS page cache does the rest
        handle = h5py.File(path, "r", rdcc_nbytes=0)
        self.files[path] = handle
        while len(self.files) > self.max_open:
            _, old = self.files.popitem(last=False)
            old.close()
        return handle


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
