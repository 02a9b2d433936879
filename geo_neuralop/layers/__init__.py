"""Neural operator layers: DISCO convolutions, differential convolutions, spectral layers."""

from geo_neuralop.layers.am_spectral_conv import AMSpectralConv
from geo_neuralop.layers.channel_mlp import ChannelMLP, PointwiseLinear
from geo_neuralop.layers.differential_conv import GridDifferentialConv, PointDifferentialConv
from geo_neuralop.layers.disco_conv import DiscoConv
from geo_neuralop.layers.embeddings import GridEmbedding, SphereEmbedding
from geo_neuralop.layers.kan import KAN, KANLinear
from geo_neuralop.layers.skip_connections import SoftGating, skip_connection
from geo_neuralop.layers.spectral_block import SpectralBlock
from geo_neuralop.layers.spectral_conv import SpectralConv
from geo_neuralop.layers.sphere_ring_conv import SphereRingKernel
from geo_neuralop.layers.spherical_spectral_conv import SphericalSpectralConv

__all__ = [
    "AMSpectralConv",
    "ChannelMLP",
    "DiscoConv",
    "GridDifferentialConv",
    "GridEmbedding",
    "KAN",
    "KANLinear",
    "PointDifferentialConv",
    "PointwiseLinear",
    "SoftGating",
    "SpectralBlock",
    "SpectralConv",
    "SphereEmbedding",
    "SphereRingKernel",
    "SphericalSpectralConv",
    "skip_connection",
]
