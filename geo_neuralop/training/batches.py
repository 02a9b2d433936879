"""Batches between the data loader and the trainer: splitting, moving, collating, counting.

``batch_fn(batch) -> (inputs, target, quadrature)`` turns a collated batch into what the
model and the loss take; :func:`default_batch_fn` understands PyG batches of point clouds
(their quadrature), ``{"x", "y"}`` dicts and ``(x, y)`` tuples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, default_collate
from torch_geometric.loader.dataloader import Collater

from geo_neuralop.geometry.integration import PointQuadrature, Quadrature

__all__ = ["BatchFn", "ForwardFn", "count_samples", "default_batch_fn", "default_forward_fn",
           "is_pyg", "loss_kwargs", "make_collate", "move_to_device"]


BatchFn = Callable[[Any], tuple[Any, torch.Tensor, Any]]


ForwardFn = Callable[[nn.Module, Any], torch.Tensor]


def is_pyg(obj: Any) -> bool:
    try:
        from torch_geometric.data.data import BaseData
    except ImportError:  # pragma: no cover - torch_geometric is a dependency
        return False
    return isinstance(obj, BaseData)


def default_batch_fn(batch: Any) -> tuple[Any, torch.Tensor, Quadrature | None]:
    """Split a collated batch into ``(inputs, target, quadrature)``.

    Understands

    - a PyG ``Batch``/``Data`` of point clouds: inputs = the batch itself, target =
      ``batch.y``, the quadrature of the clouds (weights and ``batch`` vector);
    - a mapping with ``"x"`` (or ``"input"``) and ``"y"`` (or ``"target"``);
    - a tuple/list ``(x, y)``.

    Mappings and tuples give no quadrature: the loss's own is used (e.g.
    ``LpLoss(quadrature=GridSpec(...))`` for grid-shaped data).

    Raises
    ------
    TypeError
        For other batch types (pass a ``batch_fn`` to the trainer).
    """
    if is_pyg(batch):
        if getattr(batch, "y", None) is None:
            raise TypeError("PyG batches need the target in batch.y for the default batch_fn; "
                            "pass batch_fn= to the Trainer for other layouts")
        if getattr(batch, "weights", None) is None:
            raise TypeError("PyG batches need quadrature weights (batch.weights): batch "
                            "PointCloud objects")
        return batch, batch.y, PointQuadrature.from_cloud(batch)
    if isinstance(batch, Mapping):
        x = batch["x"] if "x" in batch else batch.get("input")
        y = batch["y"] if "y" in batch else batch.get("target")
        if x is None or y is None:
            raise TypeError(f"dict batches need keys 'x'/'input' and 'y'/'target', got "
                            f"{sorted(batch)}")
        return x, y, batch.get("quadrature")
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1], None
    raise TypeError(f"default_batch_fn cannot split a batch of type {type(batch).__name__}; "
                    f"pass batch_fn=callable(batch) -> (inputs, target, quadrature)")


def default_forward_fn(model: nn.Module, inputs: Any) -> torch.Tensor:
    """``model(inputs)``."""
    return model(inputs)


def move_to_device(obj: Any, device: torch.device) -> Any:
    """Tensors, PyG data, and (nested) tuples/lists/dicts of them moved to ``device``."""
    if isinstance(obj, torch.Tensor) or is_pyg(obj):
        return obj.to(device, non_blocking=device.type == "cuda")
    if isinstance(obj, Mapping):
        return {k: move_to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(move_to_device(v, device) for v in obj)
    if isinstance(obj, list):
        return [move_to_device(v, device) for v in obj]
    return obj


def loss_kwargs(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Quadrature):
        return {"quadrature": value}
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"batch_fn's third value must be None, a Quadrature or a dict of loss "
                    f"keyword arguments, got {type(value).__name__}")


def count_samples(target: torch.Tensor, kwargs: Mapping[str, Any]) -> int:
    quad = kwargs.get("quadrature")
    if isinstance(quad, PointQuadrature):
        return quad.num_graphs
    return int(target.shape[0]) if target.dim() > 0 else 1


def make_collate(collate: Any, dataset: Dataset) -> Callable[[list], Any]:
    if callable(collate):
        return collate
    if collate == "auto":
        collate = "pyg" if len(dataset) > 0 and is_pyg(dataset[0]) else "default"  # type: ignore[arg-type]
    if collate == "pyg":
        return Collater(dataset)
    return default_collate
