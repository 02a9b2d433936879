"""Datasets: generation (resumable, parallel), storage with dataset cards, loaders,
normalizers, prediction files and sample transforms. The solvers live in
:mod:`geo_neuralop.data.solvers`."""

from geo_neuralop.data.dataset_card import read_card, verify_dataset
from geo_neuralop.data.generate import GENERATORS, generate_dataset, resolve_parameters
from geo_neuralop.data.kernel_store import KernelStore, geometry_key
from geo_neuralop.data.loaders import FieldDataset, GridTensorDataset, load_dataset
from geo_neuralop.data.normalizers import FieldNormalizer
from geo_neuralop.data.predictions import Predictions, load_predictions, save_predictions
from geo_neuralop.data.storage import DatasetError, Trajectory, read_trajectory
from geo_neuralop.data.transforms import AttachKernels, PrecomputeKernels, batch_kernels

__all__ = [
    "GENERATORS",
    "AttachKernels",
    "DatasetError",
    "FieldDataset",
    "FieldNormalizer",
    "GridTensorDataset",
    "KernelStore",
    "PrecomputeKernels",
    "Predictions",
    "Trajectory",
    "batch_kernels",
    "generate_dataset",
    "geometry_key",
    "load_dataset",
    "load_predictions",
    "read_card",
    "read_trajectory",
    "resolve_parameters",
    "save_predictions",
    "verify_dataset",
]
