"""Neural operator layers: DISCO convolutions, differential convolutions, spectral layers."""

from geo_neuralop.layers.differential_conv import GridDifferentialConv, PointDifferentialConv
from geo_neuralop.layers.disco_conv import DiscoConv

__all__ = ["DiscoConv", "GridDifferentialConv", "PointDifferentialConv"]
