"""Datasets: generation (resumable, parallel), storage with dataset cards, loaders,
normalizers, prediction files, sample transforms, and importers of other formats
(xarray/NetCDF/Zarr, The Well, PDEBench; :mod:`geo_neuralop.data.importers`). The solvers
live in :mod:`geo_neuralop.data.solvers`."""

from geo_neuralop.data.dataset_card import read_card, verify_dataset
from geo_neuralop.data.generate import GENERATORS, generate_dataset, resolve_parameters
from geo_neuralop.data.importers import (
    export_well,
    from_xarray,
    import_pdebench,
    import_well,
    import_xarray,
    to_xarray,
)
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
    "export_well",
    "from_xarray",
    "generate_dataset",
    "geometry_key",
    "import_pdebench",
    "import_well",
    "import_xarray",
    "load_dataset",
    "load_predictions",
    "read_card",
    "read_trajectory",
    "resolve_parameters",
    "save_predictions",
    "to_xarray",
    "verify_dataset",
]
