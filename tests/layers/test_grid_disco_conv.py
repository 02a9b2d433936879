"""The FFT path of grid DISCO convolutions equals the sparse DISCO kernel on the same grid."""

import pytest
import torch

from geo_neuralop.geometry import regular_grid
from geo_neuralop.layers import DiscoConv
from geo_neuralop.layers.grid_disco_conv import GridDiscoStencil, grid_disco_forward


@pytest.mark.parametrize("periodic", [True, False, (True, False)], ids=["periodic", "bounded",
                                                                         "mixed"])
@pytest.mark.parametrize("normalization", ["none", "mean", "nodal"])
@pytest.mark.parametrize("basis,kernel_shape,groups", [("piecewise_linear", (3, 4), 1),
                                                       ("piecewise_linear", (3, 4), 2),
                                                       ("morlet", (2, 2), 1)])
def test_fft_path_equals_sparse_kernel(periodic, normalization, basis, kernel_shape, groups):
    torch.manual_seed(0)
    shape, domain = (24, 20), [(0.0, 2.0), (-1.0, 0.5)]
    conv = DiscoConv(4, 6, kernel_shape, basis=basis, radius=0.23, normalization=normalization,
                     groups=groups).double()
    torch.nn.init.normal_(conv.bias)
    flags = [periodic] * 2 if isinstance(periodic, bool) else list(periodic)
    grid = regular_grid(shape, domain, flags, dtype=torch.float64)
    x = torch.randn(2, 4, *shape, dtype=torch.float64, requires_grad=True)
    reference = conv(x.flatten(2).transpose(1, 2), conv.build_kernel(grid, dtype=torch.float64))
    reference = reference.transpose(1, 2).reshape(2, 6, *shape)
    stencil = GridDiscoStencil(conv.basis, conv.radius, shape, domain, flags, normalization,
                               dtype=torch.float64)
    out = grid_disco_forward(x, stencil, conv.weight, conv.groups, conv.bias)
    torch.testing.assert_close(out, reference, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(out)
    grads = torch.autograd.grad((out * g).sum(), (x, conv.weight))
    ref_grads = torch.autograd.grad((reference * g).sum(), (x, conv.weight))
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)


def test_one_dimensional_and_three_dimensional_grids():
    torch.manual_seed(1)
    for shape, domain in (((40,), [(0.0, 1.0)]), ((10, 9, 8), [(0.0, 1.0)] * 3)):
        conv = DiscoConv(2, 3, 3, radius=0.21).double()
        grid = regular_grid(shape, domain, True, dtype=torch.float64)
        x = torch.randn(1, 2, *shape, dtype=torch.float64)
        ref = conv(x.flatten(2).transpose(1, 2), conv.build_kernel(grid, dtype=torch.float64))
        stencil = GridDiscoStencil(conv.basis, conv.radius, shape, domain, [True] * len(shape),
                                   "mean", dtype=torch.float64)
        out = grid_disco_forward(x, stencil, conv.weight, 1, conv.bias)
        torch.testing.assert_close(out.flatten(2).transpose(1, 2), ref, rtol=1e-12, atol=1e-12)


def test_bad_stencils():
    conv = DiscoConv(1, 1, (3, 4), radius=0.6)
    with pytest.raises(ValueError, match="spans more than the periodic axis 0"):
        GridDiscoStencil(conv.basis, 0.6, (8, 8), [(0.0, 1.0)] * 2, [True, True])
    with pytest.raises(ValueError, match="normalization must be"):
        GridDiscoStencil(conv.basis, 0.1, (8, 8), [(0.0, 1.0)] * 2, [True, True], "sum")
    stencil = GridDiscoStencil(conv.basis, 0.1, (8, 8), [(0.0, 1.0)] * 2, [True, True])
    with pytest.raises(ValueError, match=r"x has grid \(8, 9\)"):
        stencil.apply(torch.zeros(1, 1, 8, 9))


def test_disco_spectrum_shares_the_ffts_of_a_spectral_layer():
    """``irfftn(grid_disco_spectrum(rfftn(x)))`` equals ``grid_disco_forward(x)`` on a periodic
    grid, and the function refuses bounded grids, nodal scales and wrong spectra."""
    from geo_neuralop.layers.grid_disco_conv import grid_disco_spectrum

    torch.manual_seed(4)
    shape, domain = (18, 14), [(0.0, 3.0), (0.0, 1.0)]
    conv = DiscoConv(4, 6, (3, 4), radius=0.3, groups=2, bias=False).double()
    stencil = GridDiscoStencil(conv.basis, conv.radius, shape, domain, [True, True], "mean",
                               dtype=torch.float64)
    x = torch.randn(3, 4, *shape, dtype=torch.float64)
    x_hat = torch.fft.rfftn(x, dim=(2, 3), norm="forward")
    y = torch.fft.irfftn(grid_disco_spectrum(x_hat, stencil, conv.weight, 2), s=shape,
                         dim=(2, 3), norm="forward")
    torch.testing.assert_close(y, grid_disco_forward(x, stencil, conv.weight, 2), rtol=1e-12,
                               atol=1e-12)
    bounded = GridDiscoStencil(conv.basis, conv.radius, shape, domain, [True, False])
    with pytest.raises(ValueError, match="fully periodic grid"):
        grid_disco_spectrum(x_hat, bounded, conv.weight, 2)
    with pytest.raises(ValueError, match="x_hat must be a complex rfftn"):
        grid_disco_spectrum(x_hat[..., :-1], stencil, conv.weight, 2)
    with pytest.raises(ValueError, match="x_hat has 4 channels, the weight expects 2"):
        grid_disco_spectrum(x_hat, stencil, conv.weight, 1)
