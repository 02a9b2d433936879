"""Ring kernels built from the output meridians' stencils equal the sparse kernels between the
full grids, as operators and through the FFT product (forward and gradients)."""

import math

import pytest
import torch

from geo_neuralop.geometry import SphereGridSpec, sphere_grid
from geo_neuralop.kernels import PiecewiseLinearBasis, SphereRingKernel, sphere_ring
from geo_neuralop.kernels.sphere_ring import RingStencil, ring_meridians
from geo_neuralop.layers import DiscoConv
from geo_neuralop.layers.differential_conv import PointDifferentialConv

BASIS = PiecewiseLinearBasis((3, 4))


def layers(radius):
    torch.manual_seed(0)
    disco = DiscoConv(3, 4, (3, 4), radius=radius, bias=False).double()
    diff = PointDifferentialConv(3, 4, (3, 4), radius=radius).double()
    return disco, diff


def stencils(disco, diff=None):
    out = [RingStencil(disco.basis, disco.radius, disco.normalization)]
    if diff is not None:
        out.append(RingStencil(diff.basis, diff.radius, "nodal", differential=True))
    return out


@pytest.mark.parametrize("grid,nlat,nlon,radius", [("equiangular", 24, 48, math.pi / 8),
                                                   ("equiangular", 33, 64, math.pi / 8),
                                                   ("legendre-gauss", 17, 32, math.pi / 6)])
@pytest.mark.parametrize("block_rows", [None, 1, 5, 100])
def test_ring_product_equals_sparse_kernels(grid, nlat, nlon, radius, block_rows):
    """Forward and gradients (input and weights) of DISCO + differential layers agree with
    the sparse kernels to float64 round-off, for any latitude blocking."""
    disco, diff = layers(radius)
    cloud = sphere_grid(nlat, nlon, grid, dtype=torch.float64)
    kernels = [disco.build_kernel(cloud, dtype=torch.float64),
               diff.build_kernel(cloud, dtype=torch.float64)]
    ring = SphereRingKernel((nlat, nlon, grid), (nlat, nlon, grid), stencils(disco, diff),
                            block_rows=block_rows, dtype=torch.float64)
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


@pytest.mark.parametrize("src,dst", [((33, 64, "equiangular"), (17, 32, "equiangular")),
                                     ((17, 32, "equiangular"), (33, 64, "equiangular")),
                                     ((33, 64, "equiangular"), (16, 32, "legendre-gauss")),
                                     ((16, 32, "legendre-gauss"), (25, 96, "equiangular")),
                                     ((12, 24, "legendre-gauss"), (12, 18, "legendre-gauss"))])
def test_grid_changing_ring_kernels_equal_the_sparse_kernel(src, dst):
    """Down- and up-sampling (coarser output longitudes: one meridian; finer ones: several,
    interleaved; 24 -> 18: three meridians sampled every 4th shift) give the operator of the
    sparse kernel between the two full grids, forward and backward."""
    radius = 0.35
    disco, _ = layers(radius)
    src_cloud = sphere_grid(*src, dtype=torch.float64)
    dst_cloud = sphere_grid(*dst, dtype=torch.float64)
    kernel = disco.build_kernel(src_cloud, dst_cloud, dtype=torch.float64)
    ring = SphereRingKernel(src, dst, stencils(disco), dtype=torch.float64)
    assert ring.meridians == ring_meridians(src[1], dst[1])
    torch.testing.assert_close(ring.dense(), kernel.to_dense(), rtol=1e-12, atol=1e-12)
    x = torch.randn(2, 3, src[0], src[1], dtype=torch.float64, requires_grad=True)
    out = ring.apply(x, disco.weight)
    ref = disco(x.flatten(2).transpose(1, 2), kernel).transpose(1, 2).reshape(out.shape)
    torch.testing.assert_close(out, ref, rtol=1e-11, atol=1e-11)
    g = torch.randn_like(out)
    grads = torch.autograd.grad((out * g).sum(), (x, disco.weight))
    ref_grads = torch.autograd.grad((ref * g).sum(), (x, disco.weight))
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dft_cost_ratio", [0.0, 2.5, math.inf])
def test_spectra_recomputed_per_block_equal_the_sparse_kernels(monkeypatch, dft_cost_ratio):
    """Kernels too large to keep their spectra recompute them per block (by FFT, by a direct
    DFT of the nonzero longitudes, or each where cheaper): the same operator."""
    monkeypatch.setattr(sphere_ring, "DFT_COST_RATIO", dft_cost_ratio)
    disco, diff = layers(0.3)
    grid = (33, 64, "equiangular")
    stored = SphereRingKernel(grid, grid, stencils(disco, diff), dtype=torch.float64)
    lean = SphereRingKernel(grid, grid, stencils(disco, diff), dtype=torch.float64,
                            max_stored_bytes=0)
    assert stored.matrices is not None and lean.matrices is None
    assert lean.nbytes < stored.nbytes / 10
    cloud = sphere_grid(*grid, dtype=torch.float64)
    kernels = [disco.build_kernel(cloud, dtype=torch.float64),
               diff.build_kernel(cloud, dtype=torch.float64)]
    x = torch.randn(2, 3, 33, 64, dtype=torch.float64, requires_grad=True)
    flat = x.flatten(2).transpose(1, 2)
    ref = (disco(flat, kernels[0]) + diff(flat, kernels[1])).transpose(1, 2).reshape(2, 4, 33, 64)
    out = lean.apply(x, torch.cat([disco.weight, diff.weight], dim=2))
    torch.testing.assert_close(out, ref, rtol=1e-11, atol=1e-11)
    g = torch.randn_like(out)
    grads = torch.autograd.grad((out * g).sum(), (x, disco.weight))
    ref_grads = torch.autograd.grad((ref * g).sum(), (x, disco.weight))
    for u, v in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-10)


def test_only_the_meridian_is_built_and_its_memory_grows_with_nlat():
    """A ring kernel holds the stencils of nlat points, not nlat x nlon: doubling nlon
    leaves the number of stencil edges almost unchanged away from the poles."""
    spec = stencils(DiscoConv(1, 1, (3, 4), radius=0.2))
    a = SphereRingKernel((33, 64, "equiangular"), (33, 64, "equiangular"), spec)
    b = SphereRingKernel((33, 128, "equiangular"), (33, 128, "equiangular"), spec)
    sparse = DiscoConv(1, 1, (3, 4), radius=0.2).build_kernel(sphere_grid(33, 64))
    assert a.num_edges < sparse.edge_index.shape[1] / 30
    assert b.num_edges < 2.5 * a.num_edges  # polar rows hold whole rings of the finer grid


def test_single_precision():
    disco, _ = layers(math.pi / 6)
    cloud = sphere_grid(16, 32, "equiangular", dtype=torch.float64)
    kernel = disco.build_kernel(cloud, dtype=torch.float64)
    for stored in (1 << 30, 0):
        ring = SphereRingKernel((16, 32), (16, 32), stencils(disco), max_stored_bytes=stored)
        x = torch.randn(3, 3, 16, 32, dtype=torch.float64)
        out = ring.apply(x.float(), disco.weight.float())
        ref = disco(x.flatten(2).transpose(1, 2), kernel).transpose(1, 2).reshape(3, 4, 16, 32)
        torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-5)


def test_bad_stencils_and_inputs():
    disco, diff = layers(math.pi / 6)
    with pytest.raises(ValueError, match="at least one"):
        SphereRingKernel((16, 32), (16, 32), [])
    with pytest.raises(TypeError, match=r"stencils\[0\] must be a RingStencil"):
        SphereRingKernel((16, 32), (16, 32), [torch.zeros(3)])
    with pytest.raises(ValueError, match="radius must be an angle"):
        RingStencil(BASIS, 4.0)
    with pytest.raises(ValueError, match=r"stencils\[1\] is differential"):
        SphereRingKernel((16, 32), (8, 16), stencils(disco, diff))
    with pytest.raises(TypeError, match="in_grid must be a SphereGridSpec"):
        SphereRingKernel("16x32", (16, 32), stencils(disco))
    ring = SphereRingKernel(SphereGridSpec(16, 32), (16, 32), [dict(kernel_shape=(3, 4),
                                                                  radius=0.5)])
    with pytest.raises(ValueError, match=r"x must have shape \[B, C, 16, 32\]"):
        ring.apply(torch.zeros(1, 3, 16, 16), disco.weight)
    with pytest.raises(ValueError, match="weight has shape"):
        ring.apply(torch.zeros(1, 3, 16, 32), torch.zeros(4, 3, 2))
    with pytest.raises(ValueError, match="block_rows must be a positive int"):
        SphereRingKernel((16, 32), (16, 32), stencils(disco), block_rows=0)
    with pytest.raises(ValueError, match="has no src point within the radius"):
        SphereRingKernel((4, 8, "legendre-gauss"), (5, 8, "equiangular"),
                         [RingStencil(BASIS, 0.01)])
