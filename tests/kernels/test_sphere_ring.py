"""Ring (longitude FFT) application of sphere kernels equals the sparse kernels."""

import math

import pytest
import torch

from geo_neuralop.geometry import sphere_grid
from geo_neuralop.kernels import SphereRingKernel
from geo_neuralop.layers import DiscoConv
from geo_neuralop.layers.differential_conv import PointDifferentialConv


def layers_and_kernels(nlat, nlon, grid, radius):
    torch.manual_seed(0)
    cloud = sphere_grid(nlat, nlon, grid, dtype=torch.float64)
    disco = DiscoConv(3, 4, (3, 4), radius=radius, bias=False).double()
    diff = PointDifferentialConv(3, 4, (3, 4), radius=radius).double()
    kernels = [disco.build_kernel(cloud, cloud, dtype=torch.float64),
               diff.build_kernel(cloud, cloud, dtype=torch.float64)]
    return disco, diff, kernels


@pytest.mark.parametrize("grid,nlat,nlon,radius", [("equiangular", 24, 48, math.pi / 8),
                                                   ("equiangular", 33, 64, math.pi / 8),
                                                   ("legendre-gauss", 17, 32, math.pi / 6)])
@pytest.mark.parametrize("block_rows", [None, 1, 5, 100])
def test_ring_product_equals_sparse_kernels(grid, nlat, nlon, radius, block_rows):
    """Forward and gradients (input and weights) of DISCO + differential layers agree with
    the sparse kernels to float64 round-off, for any latitude blocking."""
    disco, diff, kernels = layers_and_kernels(nlat, nlon, grid, radius)
    ring = SphereRingKernel(kernels, nlat, nlon, block_rows=block_rows, dtype=torch.float64)
    assert ring.kernel_size == disco.kernel_size + diff.kernel_size
    x = torch.randn(2, 3, nlat, nlon, dtype=torch.float64, requires_grad=True)
    weight = torch.cat([disco.weight, diff.weight], dim=2)
    out = ring.apply(x, weight)
    flat = x.flatten(2).transpose(1, 2)
    ref = (disco(flat, kernels[0]) + diff(flat, kernels[1])).transpose(1, 2).reshape(out.shape)
    torch.testing.assert_close(out, ref, rtol=1e-11, atol=1e-11)
    g = torch.randn_like(out)
    grads = torch.autograd.grad((out * g).sum(), (x, disco.weight, diff.weight))
    ref_grads = torch.autograd.grad((ref * g).sum(), (x, disco.weight, diff.weight))
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_single_precision_and_one_kernel():
    """float32 kernels (their symmetry holds to float32 round-off) and one kernel alone."""
    disco, _, kernels = layers_and_kernels(16, 32, "equiangular", math.pi / 6)
    cloud = sphere_grid(16, 32, "equiangular", dtype=torch.float64)
    single = disco.build_kernel(cloud, cloud, dtype=torch.float32)
    ring = SphereRingKernel([single], 16, 32)
    x = torch.randn(3, 3, 16, 32, dtype=torch.float64)
    out = ring.apply(x.float(), disco.weight.float())
    ref = disco(x.flatten(2).transpose(1, 2), kernels[0]).transpose(1, 2).reshape(3, 4, 16, 32)
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-5)


def test_bad_kernels_and_inputs():
    disco, _, kernels = layers_and_kernels(16, 32, "equiangular", math.pi / 6)
    with pytest.raises(ValueError, match="expected the 16 x 33 grid"):
        SphereRingKernel(kernels, 16, 33)
    with pytest.raises(TypeError, match=r"kernels\[0\] must be a DiscoKernel"):
        SphereRingKernel([torch.zeros(3)], 16, 32)
    with pytest.raises(ValueError, match="at least one"):
        SphereRingKernel([], 16, 32)
    broken = kernels[0].clone()
    broken.edge_values = broken.edge_values.clone()
    broken.edge_values[5000] *= 1.5  # one longitude's stencil differs from its ring's
    with pytest.raises(ValueError, match=r"kernels\[0\] is not invariant under longitude"):
        SphereRingKernel([broken], 16, 32)
    ring = SphereRingKernel(kernels[:1], 16, 32)
    with pytest.raises(ValueError, match=r"x must have shape \[B, C, 16, 32\]"):
        ring.apply(torch.zeros(1, 3, 16, 16), disco.weight)
    with pytest.raises(ValueError, match="weight has shape"):
        ring.apply(torch.zeros(1, 3, 16, 32), torch.zeros(4, 3, 2))
    with pytest.raises(ValueError, match="block_rows must be a positive int"):
        SphereRingKernel(kernels, 16, 32, block_rows=0)
