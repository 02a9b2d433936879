"""Helpers of the models that take point clouds (PyG ``Data`` or ``Batch``) directly."""

from __future__ import annotations

from typing import Any

import torch
from torch_geometric.data import Batch

from geo_neuralop.geometry.point_cloud import PointCloud

__all__ = ["check_cloud", "graph_index", "segment_sum"]


def check_cloud(cloud: Any, name: str = "cloud") -> None:
    """Raise TypeError unless ``cloud`` is a :class:`PointCloud` or a PyG batch of them."""
    if not isinstance(cloud, (PointCloud, Batch)):
        raise TypeError(f"{name} must be a PointCloud or a PyG Batch of them, got "
                        f"{type(cloud).__name__}")


def graph_index(cloud: Any) -> tuple[torch.Tensor, int]:
    """``(batch [N], number of graphs)``: the graph of every point (one graph for a cloud)."""
    batch = getattr(cloud, "batch", None)
    if batch is None:
        return torch.zeros(cloud.num_nodes, dtype=torch.long, device=cloud.pos.device), 1
    return batch, int(cloud.num_graphs)


def segment_sum(values: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """Sums of ``values [N, ...]`` per graph: ``[num_graphs, ...]``."""
    out = values.new_zeros((num_graphs, *values.shape[1:]))
    return out.index_add_(0, batch, values)
