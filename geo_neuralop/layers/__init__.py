"""Neural operator layers: DISCO and differential convolutions that own their kernels,
spectral layers, blocks, MLPs and embeddings."""

from geo_neuralop.layers.activations import get_activation
from geo_neuralop.layers.am_spectral_conv import AMSpectralConv
from geo_neuralop.layers.channel_mlp import ChannelMLP, PointwiseLinear
from geo_neuralop.layers.differential_conv import GridDifferentialConv, PointDifferentialConv
from geo_neuralop.layers.disco_conv import DiscoConv
from geo_neuralop.layers.embeddings import GridEmbedding, SphereEmbedding, ZonalEmbedding
from geo_neuralop.layers.factorized_tensors import FactorizedTensor, factorized_tensor
from geo_neuralop.layers.grid_disco_conv import GridDiscoConv
from geo_neuralop.layers.kan import KAN, KANLinear
from geo_neuralop.layers.multigrid_patching import MultigridPatching2D
from geo_neuralop.layers.neural_spectral_block import NeuralSpectralBlock2d
from geo_neuralop.layers.physics_attention import PhysicsAttention
from geo_neuralop.layers.skip_connections import SoftGating, skip_connection
from geo_neuralop.layers.spectral_block import SpectralBlock
from geo_neuralop.layers.spectral_conv import SpectralConv
from geo_neuralop.layers.sphere_disco_conv import SphereDifferentialConv, SphereDiscoConv
from geo_neuralop.layers.spherical_spectral_conv import SphericalSpectralConv

__all__ = [
    "AMSpectralConv",
    "ChannelMLP",
    "DiscoConv",
    "FactorizedTensor",
    "GridDifferentialConv",
    "GridDiscoConv",
    "GridEmbedding",
    "KAN",
    "KANLinear",
    "MultigridPatching2D",
    "NeuralSpectralBlock2d",
    "PhysicsAttention",
    "PointDifferentialConv",
    "PointwiseLinear",
    "SoftGating",
    "SpectralBlock",
    "SpectralConv",
    "SphereDifferentialConv",
    "SphereDiscoConv",
    "SphereEmbedding",
    "ZonalEmbedding",
    "SphericalSpectralConv",
    "factorized_tensor",
    "get_activation",
    "skip_connection",
]
