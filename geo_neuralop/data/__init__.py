"""Datasets, storage and loaders."""

from geo_neuralop.data.cylinder_flow import (
    CylinderFlowResult,
    shedding_statistics,
    simulate_cylinder_flow,
    to_point_cloud,
)
from geo_neuralop.data.cylinder_mesh import CylinderMesh, cylinder_channel_mesh
from geo_neuralop.data.dataset_card import read_card, verify_dataset
from geo_neuralop.data.generate import GENERATORS, generate_dataset, resolve_parameters
from geo_neuralop.data.loaders import (
    AttachKernels,
    FieldDataset,
    GridTensorDataset,
    batch_kernels,
    load_dataset,
)
from geo_neuralop.data.navier_stokes_fem import NavierStokesSolver, SolverDivergedError
from geo_neuralop.data.normalizers import FieldNormalizer
from geo_neuralop.data.predictions import Predictions, load_predictions, save_predictions
from geo_neuralop.data.storage import DatasetError, Trajectory, read_trajectory

__all__ = [
    "GENERATORS",
    "AttachKernels",
    "CylinderFlowResult",
    "CylinderMesh",
    "DatasetError",
    "FieldDataset",
    "FieldNormalizer",
    "GridTensorDataset",
    "NavierStokesSolver",
    "Predictions",
    "SolverDivergedError",
    "Trajectory",
    "batch_kernels",
    "cylinder_channel_mesh",
    "generate_dataset",
    "load_dataset",
    "load_predictions",
    "read_card",
    "read_trajectory",
    "resolve_parameters",
    "save_predictions",
    "shedding_statistics",
    "simulate_cylinder_flow",
    "to_point_cloud",
    "verify_dataset",
]
