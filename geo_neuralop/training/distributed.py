"""Data-parallel training with ``torchrun``: process group, samplers, DDP wrapping.

``torchrun --nproc_per_node=K script.py`` (or ``python -m torch.distributed.run``)
starts K processes and sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them and
joins the process group (NCCL when the process trains on a GPU, gloo on the
CPU). Without those variables everything here degrades to one process: the
helpers return rank 0 / world size 1 and :func:`barrier` does nothing, so the
same code and config run on one process, several, or several machines.

Several machines: start one ``torchrun`` per machine with the same rendezvous,
e.g. ``torchrun --nnodes=N --nproc_per_node=K --rdzv_backend=c10d
--rdzv_endpoint=HOST:PORT --rdzv_id=JOB script.py`` (``HOST`` one of the
machines; torchrun then also sets ``GROUP_RANK``, the machine's index, and
``LOCAL_WORLD_SIZE``). The README has a SLURM script. The training output
folder must be on a file system every machine sees: rank 0 writes the
checkpoints and every rank reads them to resume.

Conventions used by :class:`geo_neuralop.training.Trainer`:

- the configured batch size is the *global* batch: each of the ``W`` processes
  takes ``batch_size / W`` samples per step, and DDP averages the gradients,
  so one step equals a single-process step on the same global batch;
- :class:`ResumableDistributedSampler` shuffles with ``seed + epoch`` exactly as
  ``torch.utils.data.DistributedSampler`` does (the same global permutation for
  every world size) and can start mid-epoch, for exact resumption;
- only the main process (rank 0) writes files and shows progress bars.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler, Sampler

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedInfo:
    """Where this process sits in the job.

    Attributes
    ----------
    rank, local_rank, world_size : int
    backend : str or None
        "nccl", "gloo", or None when not distributed.
    device : torch.device
        The device this process trains on.
    initialized_here : bool
        True when :func:`init_distributed` created the process group (and
        :func:`cleanup_distributed` should destroy it).
    node_rank : int
        Index of this machine (torchrun's ``GROUP_RANK``; 0 on one machine).
    local_world_size : int
        Processes on this machine (torchrun's ``LOCAL_WORLD_SIZE``).
    """

    rank: int
    local_rank: int
    world_size: int
    backend: str | None
    device: torch.device
    initialized_here: bool = False
    node_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from exc


def env_world_size() -> int:
    """``WORLD_SIZE`` set by torchrun (1 when absent)."""
    return _env_int("WORLD_SIZE", 1)


def is_distributed() -> bool:
    """True when a ``torch.distributed`` process group is initialized."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Global rank of this process (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0 (and in a single process): the one that writes files."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for every process; a no-op without a process group."""
    if is_distributed():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def _collective_device() -> torch.device:
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over all processes (a copy; the input itself without a group)."""
    if not is_distributed():
        return tensor
    out = tensor.detach().to(_collective_device()).clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(tensor.device)


def select_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"``: GPU ``local_rank`` when CUDA is available, else the CPU.

    An explicit ``"cuda"`` without an index also becomes ``cuda:<local_rank>``.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else \
            torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"device={device!r} is not a device; use auto, cpu, cuda or cuda:I "
                         f"(e.g. cuda:0)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
    return dev


def init_distributed(
    device: str | torch.device = "auto",
    backend: str | None = None,
    timeout_s: float = 600.0,
) -> DistributedInfo:
    """Join the torchrun process group if the environment asks for one.

    Parameters
    ----------
    device : str or torch.device
        Training device (see :func:`select_device`); ``cuda`` devices are made
        current for this process.
    backend : {"nccl", "gloo"}, optional
        Default: NCCL on CUDA devices, gloo otherwise.
    timeout_s : float
        Collective timeout.

    Returns
    -------
    DistributedInfo
        For ``WORLD_SIZE`` unset or 1: rank 0 of 1, no backend.
    """
    world_size = env_world_size()
    local_rank = _env_int("LOCAL_RANK", 0)
    node = {"node_rank": _env_int("GROUP_RANK", 0),
            "local_world_size": _env_int("LOCAL_WORLD_SIZE", world_size)}
    dev = select_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if is_distributed():
        return DistributedInfo(dist.get_rank(), local_rank, dist.get_world_size(),
                               dist.get_backend(), dev, initialized_here=False, **node)
    if world_size <= 1:
        return DistributedInfo(0, local_rank, 1, None, dev, initialized_here=False, **node)
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ValueError(f"WORLD_SIZE={world_size} but {name} is not set: start the job "
                             f"with torchrun (python -m torch.distributed.run)")
    if backend is None:
        backend = "nccl" if dev.type == "cuda" else "gloo"
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"backend must be 'nccl' or 'gloo', got {backend!r}")
    kwargs: dict[str, Any] = {}
    if backend == "nccl":
        kwargs["device_id"] = dev
    dist.init_process_group(backend=backend, init_method="env://",
                            timeout=datetime.timedelta(seconds=timeout_s), **kwargs)
    info = DistributedInfo(dist.get_rank(), local_rank, dist.get_world_size(), backend, dev,
                           initialized_here=True, **node)
    logger.info("joined process group: rank %d of %d (%s) on %s, machine %d (%d processes)",
                info.rank, info.world_size, backend, dev, info.node_rank,
                info.local_world_size)
    return info


def cleanup_distributed(info: DistributedInfo | None = None) -> None:
    """Destroy the process group if it exists (and, given ``info``, if it was made here)."""
    if not is_distributed():
        return
    if info is not None and not info.initialized_here:
        return
    dist.destroy_process_group()


def wrap_model(model: nn.Module, info: DistributedInfo, **ddp_kwargs: Any) -> nn.Module:
    """``DistributedDataParallel(model)`` when several processes train, else ``model``.

    The model must already be on ``info.device``. DDP broadcasts rank 0's
    parameters and buffers at construction, so all processes start equal.
    """
    if info.world_size <= 1:
        return model
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("model has no trainable parameters to train with DDP")
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, **ddp_kwargs)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the model itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


class ResumableDistributedSampler(DistributedSampler):
    """``DistributedSampler`` that can start part-way through an epoch.

    The index order is exactly that of ``torch.utils.data.DistributedSampler``
    (permutation by a generator seeded with ``seed + epoch``, padded or cut to
    a multiple of ``num_replicas``, then ``indices[rank::num_replicas]``).
    :meth:`set_start` skips the first ``k`` indices of this process's share, so a
    run resumed after ``s`` steps of local batch size ``b`` continues with
    ``set_start(s * b)``.

    Parameters
    ----------
    dataset : Dataset
    num_replicas, rank : int
        Default: from the process group (1 and 0 without one).
    shuffle, seed, drop_last
        As in ``DistributedSampler``.
    """

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        num_replicas = get_world_size() if num_replicas is None else num_replicas
        rank = get_rank() if rank is None else rank
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         seed=seed, drop_last=drop_last)
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` indices of this process's share in the next iteration."""
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"start must be in [0, {self.num_samples}], got {start}")
        self.start = int(start)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.epoch), "start": int(self.start), "seed": int(self.seed)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if int(state["seed"]) != self.seed:
            raise ValueError(f"sampler seed {self.seed} differs from the saved seed "
                             f"{state['seed']}")
        self.set_epoch(int(state["epoch"]))
        self.set_start(int(state["start"]))


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + W, rank + 2W, ...`` without padding, for evaluation.

    Every sample is seen exactly once over all processes, so sums all-reduced
    over processes give exact dataset means.
    """

    def __init__(self, dataset: Dataset, num_replicas: int | None = None,
                 rank: int | None = None) -> None:
        self.n = len(dataset)  # type: ignore[arg-type]
        self.num_replicas = get_world_size() if num_replicas is None else num_replicas
        self.rank = get_rank() if rank is None else rank
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"rank must be in [0, {self.num_replicas}), got {self.rank}")

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.num_replicas))
