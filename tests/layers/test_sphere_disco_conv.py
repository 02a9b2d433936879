"""SphereDiscoConv and SphereDifferentialConv: the ring path equals the sparse path, and both
equal DiscoConv / PointDifferentialConv on the same grids."""

import math

import pytest
import torch

from geo_neuralop.geometry import sphere_grid
from geo_neuralop.layers import SphereDifferentialConv, SphereDiscoConv


@pytest.mark.parametrize("grid,nlat,nlon", [("equiangular", 24, 48), ("legendre-gauss", 17, 32)])
def test_ring_path_equals_sparse_path_and_the_point_cloud_layer(grid, nlat, nlon):
    torch.manual_seed(0)
    for layer in (SphereDiscoConv(3, 4, radius=math.pi / 8, grid=grid, bias=True),
                  SphereDifferentialConv(3, 4, radius=math.pi / 8, grid=grid)):
        layer = layer.double()
        if layer.conv.bias is not None:
            torch.nn.init.normal_(layer.conv.bias)
        x = torch.randn(2, 3, nlat, nlon, dtype=torch.float64, requires_grad=True)
        ring = layer(x)
        layer.ring = False
        sparse = layer(x)
        cloud = sphere_grid(nlat, nlon, grid, dtype=torch.float64)
        flat = layer.conv(x.flatten(2).transpose(1, 2), cloud)
        torch.testing.assert_close(ring, sparse, rtol=1e-11, atol=1e-11)
        torch.testing.assert_close(sparse, flat.transpose(1, 2).reshape(ring.shape), rtol=1e-12,
                                   atol=1e-12)
        g = torch.randn_like(ring)
        a = torch.autograd.grad((ring * g).sum(), (x, layer.weight))
        b = torch.autograd.grad((sparse * g).sum(), (x, layer.weight))
        for u, v in zip(a, b, strict=True):
            torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-10)


def test_disco_maps_onto_another_grid_with_the_kernel_between_the_grids():
    torch.manual_seed(1)
    layer = SphereDiscoConv(2, 3, radius=0.4, grid="equiangular",
                            out_grid="legendre-gauss").double()
    x = torch.randn(1, 2, 25, 48, dtype=torch.float64)
    out = layer(x, output_shape=(12, 24))
    src = sphere_grid(25, 48, "equiangular", dtype=torch.float64)
    dst = sphere_grid(12, 24, "legendre-gauss", dtype=torch.float64)
    ref = layer.conv(x.flatten(2).transpose(1, 2), src, dst).transpose(1, 2).reshape(out.shape)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


def test_kernels_are_built_once_per_grid_and_radii_are_checked():
    layer = SphereDiscoConv(1, 1, radius=0.3)
    for _ in range(3):
        layer(torch.randn(1, 1, 17, 32))
    assert layer.rings.builds == 1
    with pytest.raises(ValueError, match=r"radius must be an angle in \(0, pi\)"):
        SphereDiscoConv(1, 1, radius=4.0)
    with pytest.raises(ValueError, match=r"x must have shape \[B, 1, nlat, nlon\]"):
        layer(torch.randn(1, 2, 17, 32))
    with pytest.raises(ValueError, match="grid must be one of"):
        SphereDifferentialConv(1, 1, grid="healpix")


@pytest.mark.parametrize("src,dst", [((33, 64), (17, 32)), ((17, 32), (33, 64)),
                                     ((24, 48), (24, 32))])
def test_grid_changing_ring_path_equals_sparse_path_with_gradients(src, dst):
    """Down- and up-sampling (and 48 -> 32 longitudes: two meridians) go through the ring
    path, built from the output meridians only, and equal the sparse path."""
    torch.manual_seed(3)
    layer = SphereDiscoConv(3, 4, radius=0.3, grid="legendre-gauss", out_grid="equiangular",
                            bias=True).double()
    torch.nn.init.normal_(layer.conv.bias)
    x = torch.randn(2, 3, *src, dtype=torch.float64, requires_grad=True)
    ring = layer(x, output_shape=dst)
    assert len(layer.rings) == 1 and len(layer.kernels) == 0  # no per-point sparse kernel
    layer.ring = False
    sparse = layer(x, output_shape=dst)
    torch.testing.assert_close(ring, sparse, rtol=1e-11, atol=1e-11)
    g = torch.randn_like(ring)
    a = torch.autograd.grad((ring * g).sum(), (x, layer.weight, layer.conv.bias))
    b = torch.autograd.grad((sparse * g).sum(), (x, layer.weight, layer.conv.bias))
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-10)


def test_grids_needing_many_meridians_fall_back_to_the_sparse_kernel():
    layer = SphereDiscoConv(1, 1, radius=0.4)
    out = layer(torch.randn(1, 1, 9, 16), output_shape=(9, 17))  # 17 meridians
    assert out.shape == (1, 1, 9, 17) and len(layer.rings) == 0 and len(layer.kernels) == 1
