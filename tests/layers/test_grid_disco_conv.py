"""GridDiscoConv (the FFT path) equals DiscoConv with the sparse DISCO kernel on the same grid."""

import pytest
import torch

from geo_neuralop.geometry import GridSpec, regular_grid
from geo_neuralop.layers import DiscoConv, GridDiscoConv


def _pair(in_channels, out_channels, kernel_shape, radius, domain, periodic, **kwargs):
    """A GridDiscoConv and a DiscoConv with the same weights (float64)."""
    sparse = DiscoConv(in_channels, out_channels, kernel_shape, radius=radius, **kwargs).double()
    grid = GridDiscoConv(in_channels, out_channels, kernel_shape, radius=radius,
                         n_dim=len(domain), domain=domain, periodic=periodic, **kwargs).double()
    with torch.no_grad():
        grid.weight.copy_(sparse.weight)
        if sparse.bias is not None:
            torch.nn.init.normal_(sparse.bias)
            grid.bias.copy_(sparse.bias)
    return grid, sparse


@pytest.mark.parametrize("periodic", [True, False, (True, False)], ids=["periodic", "bounded",
                                                                         "mixed"])
@pytest.mark.parametrize("normalization", ["none", "mean", "nodal"])
@pytest.mark.parametrize("basis,kernel_shape,groups", [("piecewise_linear", (3, 4), 1),
                                                       ("piecewise_linear", (3, 4), 2),
                                                       ("morlet", (2, 2), 1)])
def test_fft_path_equals_sparse_kernel(periodic, normalization, basis, kernel_shape, groups):
    torch.manual_seed(0)
    shape, domain = (24, 20), [(0.0, 2.0), (-1.0, 0.5)]
    flags = [periodic] * 2 if isinstance(periodic, bool) else list(periodic)
    conv, sparse = _pair(4, 6, kernel_shape, 0.23, domain, flags, basis=basis,
                         normalization=normalization, groups=groups)
    grid = regular_grid(shape, domain, flags, dtype=torch.float64)
    x = torch.randn(2, 4, *shape, dtype=torch.float64, requires_grad=True)
    reference = sparse(x.flatten(2).transpose(1, 2), grid)
    reference = reference.transpose(1, 2).reshape(2, 6, *shape)
    out = conv(x)
    torch.testing.assert_close(out, reference, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(out)
    grads = torch.autograd.grad((out * g).sum(), (x, conv.weight, conv.bias))
    ref_grads = torch.autograd.grad((reference * g).sum(), (x, sparse.weight, sparse.bias))
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)


def test_one_dimensional_and_three_dimensional_grids():
    torch.manual_seed(1)
    for shape, domain in (((40,), [(0.0, 1.0)]), ((10, 9, 8), [(0.0, 1.0)] * 3)):
        conv, sparse = _pair(2, 3, 3, 0.21, domain, True)
        grid = regular_grid(shape, domain, True, dtype=torch.float64)
        x = torch.randn(1, 2, *shape, dtype=torch.float64)
        ref = sparse(x.flatten(2).transpose(1, 2), grid)
        torch.testing.assert_close(conv(x).flatten(2).transpose(1, 2), ref, rtol=1e-12,
                                   atol=1e-12)


def test_padded_grid_is_the_same_operator_on_a_larger_box():
    """With ``grid=`` a padded grid (same spacing, larger box) is convolved as a whole grid of
    that box: the result equals the sparse kernel of the padded grid."""
    torch.manual_seed(2)
    domain = [(0.0, 1.0), (0.0, 2.0)]
    conv, sparse = _pair(2, 2, (2, 4), 0.15, domain, False, bias=False)
    padded = GridSpec((20, 30), domain, False).padded((5, 3))
    x = torch.randn(1, 2, 25, 33, dtype=torch.float64)
    cloud = regular_grid(padded.shape, padded.domain, padded.periodic, dtype=torch.float64)
    ref = sparse(x.flatten(2).transpose(1, 2), cloud).transpose(1, 2).reshape(x.shape)
    torch.testing.assert_close(conv(x, grid=padded), ref, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"grid has shape \(25, 33\) but x has \(24, 33\)"):
        conv(x[:, :, :24], grid=padded)


def test_fourier_term_shares_the_ffts_of_a_spectral_layer():
    """``irfftn(fourier_term(x)(rfftn(x)))`` equals the layer on a periodic grid; no term where
    the layer is not a Fourier multiplier (bounded axes, nodal scales, a bias)."""
    torch.manual_seed(4)
    shape, domain = (18, 14), [(0.0, 3.0), (0.0, 1.0)]
    conv = GridDiscoConv(4, 6, (3, 4), radius=0.3, domain=domain, groups=2, bias=False).double()
    x = torch.randn(3, 4, *shape, dtype=torch.float64)
    x_hat = torch.fft.rfftn(x, dim=(2, 3), norm="forward")
    y = torch.fft.irfftn(conv.fourier_term(x)(x_hat), s=shape, dim=(2, 3), norm="forward")
    torch.testing.assert_close(y, conv(x), rtol=1e-12, atol=1e-12)
    bounded = GridDiscoConv(4, 6, radius=0.3, domain=domain, periodic=(True, False), groups=2,
                            bias=False).double()
    nodal = GridDiscoConv(4, 6, radius=0.3, domain=domain, normalization="nodal", groups=2,
                          bias=False).double()
    biased = GridDiscoConv(4, 6, radius=0.3, domain=domain, groups=2).double()
    assert all(layer.fourier_term(x) is None for layer in (bounded, nodal, biased))


def test_kernels_are_built_once_per_grid_and_bad_input_is_refused():
    conv = GridDiscoConv(1, 1, radius=0.1, cache_size=2)
    for _ in range(3):
        conv(torch.randn(1, 1, 16, 16))
    conv(torch.randn(1, 1, 32, 32))
    assert conv.kernels.builds == 2
    with pytest.raises(ValueError, match=r"x must have shape \[B, 1, \*2 spatial axes\]"):
        conv(torch.randn(1, 2, 16, 16))
    with pytest.raises(ValueError, match="radius must be a finite positive number"):
        GridDiscoConv(1, 1, radius=0.0)
    with pytest.raises(ValueError, match="normalization must be one of"):
        GridDiscoConv(1, 1, normalization="sum")
