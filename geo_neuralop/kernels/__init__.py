"""Basis functions, neighbour search and sparse DISCO kernel construction."""

from geo_neuralop.kernels.basis import (
    FilterBasis,
    MorletBasis,
    PiecewiseLinearBasis,
    ZernikeBasis,
    get_basis,
)
from geo_neuralop.kernels.disco import DiscoKernel, clear_kernel_cache, disco_kernel
from geo_neuralop.kernels.neighbors import radius_pairs

__all__ = [
    "DiscoKernel",
    "FilterBasis",
    "MorletBasis",
    "PiecewiseLinearBasis",
    "ZernikeBasis",
    "clear_kernel_cache",
    "disco_kernel",
    "get_basis",
    "radius_pairs",
]
