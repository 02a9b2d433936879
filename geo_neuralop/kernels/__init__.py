"""Basis functions, neighbour search, and the precomputed DISCO operators layers apply.

Three forms of one operator: :class:`DiscoKernel` (sparse, any point clouds),
:class:`GridDiscoKernel` (FFT, regular grids) and :class:`SphereRingKernel`
(longitude FFTs, latitude-longitude grids). :class:`RadiusField` gives graded
meshes a support radius that varies with position.
"""

from geo_neuralop.kernels.basis import (
    FilterBasis,
    MorletBasis,
    PiecewiseLinearBasis,
    ZernikeBasis,
    get_basis,
)
from geo_neuralop.kernels.bundle import BundleFile, KernelBundle
from geo_neuralop.kernels.disco import disco_kernel
from geo_neuralop.kernels.grid_disco import GridDiscoKernel
from geo_neuralop.kernels.moments import basis_first_moments
from geo_neuralop.kernels.neighbors import build_graph, radius_pairs
from geo_neuralop.kernels.radius_field import RadiusField
from geo_neuralop.kernels.sparse import DiscoKernel, SparseBasisOperator
from geo_neuralop.kernels.sphere_ring import RingStencil, SphereRingKernel

__all__ = [
    "BundleFile",
    "DiscoKernel",
    "FilterBasis",
    "GridDiscoKernel",
    "KernelBundle",
    "MorletBasis",
    "PiecewiseLinearBasis",
    "RadiusField",
    "RingStencil",
    "SparseBasisOperator",
    "SphereRingKernel",
    "ZernikeBasis",
    "basis_first_moments",
    "build_graph",
    "disco_kernel",
    "get_basis",
    "radius_pairs",
]
