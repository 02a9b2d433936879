"""Hartley spectral layer (basis="hartley"): equals the discrete Hartley transform product computed
by explicit cas sums, is the convolution with the even kernel when its multiplier is even, and
keeps the Fourier layer's mode set and (about) its parameter count."""

import math

import pytest
import torch

from geo_neuralop.layers import SpectralConv
from geo_neuralop.layers.spectral_conv import symmetric_frequencies


def _cas_matrix(shape, kept) -> torch.Tensor:
    """cas(2 pi k.n / N) for every kept frequency k (FFT order, both signs) and grid point n."""
    full = [torch.cat([torch.arange(0, k + 1), torch.arange(-k, 0)]).double() for k in kept]
    ks = torch.stack(torch.meshgrid(*full, indexing="ij"), -1).reshape(-1, len(shape))
    pts = torch.stack(torch.meshgrid(*[torch.arange(n).double() / n for n in shape],
                                     indexing="ij"), -1).reshape(-1, len(shape))
    phase = 2 * math.pi * ks @ pts.T  # [F, N]
    return torch.cos(phase) + torch.sin(phase)


def _direct_hartley_layer(conv: SpectralConv, x: torch.Tensor) -> torch.Tensor:
    """y = H^-1 (W . H x) with H x(k) = (1/N) sum_n x(n) cas(2 pi k.n / N): explicit sums."""
    shape = x.shape[2:]
    kept = [m // 2 for m in conv.n_modes]
    cas = _cas_matrix(shape, kept)  # [F, N]
    n = cas.shape[1]
    xh = torch.einsum("fn,bin->bif", cas, x.reshape(*x.shape[:2], -1)) / n
    w = conv.hartley_weight().detach()  # [*S, I, O]
    w = w.reshape(-1, conv.in_channels, conv.out_channels).permute(1, 2, 0)
    yh = torch.einsum("bif,iof->bof", xh, w)
    y = torch.einsum("fn,bof->bon", cas, yh)
    return y.reshape(x.shape[0], -1, *shape) + conv.bias.detach()


@pytest.mark.parametrize(("n_modes", "shape"), [((9,), (21,)), ((6, 8), (13, 11)),
                                                ((4, 6), (10, 16)), ((4, 4, 2), (5, 6, 7))])
def test_equals_the_direct_hartley_product(float64, n_modes, shape):
    conv = SpectralConv(2, 3, n_modes=n_modes, basis="hartley")
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 2, *shape)
    expected = _direct_hartley_layer(conv, x)
    assert (conv(x).detach() - expected).abs().max() < 1e-12 * expected.abs().max()


def test_even_multiplier_is_the_convolution_with_the_even_kernel(float64):
    """W(k) = W(-k): y = kappa * x, kappa(s) = sum_k W(k) cos(2 pi k.s), by direct circular sums."""
    conv = SpectralConv(1, 1, n_modes=(6, 6), basis="hartley", bias=False)
    with torch.no_grad():
        w = conv.weight  # [7, 7, 1, 1], FFT order on both frequency axes
        w.copy_(0.5 * (w + torch.roll(torch.flip(w, [0, 1]), (1, 1), (0, 1))))
    shape = (11, 9)
    x = torch.randn(1, 1, *shape)
    kept = [3, 3]
    freqs = symmetric_frequencies([3, 3], dtype=torch.float64)
    full0 = freqs[0]
    full1 = torch.cat([torch.arange(0, 4), torch.arange(-3, 0)]).double()
    assert len(full0) == 7
    wk = conv.weight.detach()[:, :, 0, 0]  # [7, 7], FFT order on both axes
    kappa = torch.zeros(shape, dtype=torch.float64)
    s0 = torch.arange(shape[0]).double()[:, None] / shape[0]
    s1 = torch.arange(shape[1]).double()[None, :] / shape[1]
    for a, k0 in enumerate(full0):
        for b, k1 in enumerate(full1):
            kappa += wk[a, b] * torch.cos(2 * math.pi * (k0 * s0 + k1 * s1))
    y = torch.zeros(shape, dtype=torch.float64)
    for i in range(shape[0]):
        for j in range(shape[1]):
            y += x[0, 0, i, j] * torch.roll(kappa, (i, j), (0, 1))
    y /= shape[0] * shape[1]
    assert (conv(x).detach()[0, 0] - y).abs().max() < 1e-12 * y.abs().max()
    assert kept == [m // 2 for m in conv.n_modes]
    # an even multiplier commutes with translations; a general one does not
    shifted = conv(torch.roll(x, (3, 2), (2, 3)))
    assert (shifted - torch.roll(conv(x), (3, 2), (2, 3))).abs().max() < 1e-12
    general = SpectralConv(1, 1, n_modes=(6, 6), basis="hartley", bias=False)
    err = general(torch.roll(x, (3, 2), (2, 3))) - torch.roll(general(x), (3, 2), (2, 3))
    assert err.abs().max() > 1e-3


def test_same_mode_set_and_parameter_count_as_the_fourier_layer():
    fourier = SpectralConv(8, 8, n_modes=(16, 16))
    hartley = SpectralConv(8, 8, n_modes=(16, 16), basis="hartley")
    assert tuple(hartley.weight.shape) == (17, 17, 8, 8)  # |k_1|, |k_2| <= 8, both signs
    assert tuple(fourier.weight.shape) == (17, 9, 8, 8, 2)  # |k_1| <= 8, 0 <= k_2 <= 8, complex
    ratio = hartley.count_parameters() / fourier.count_parameters()
    assert ratio == pytest.approx(17 / 18)
    x = torch.randn(2, 8, 24, 24)
    hartley(x).square().mean().backward()
    assert hartley.weight.grad.abs().min() > 0  # every multiplier reaches the output
    tucker = SpectralConv(8, 8, n_modes=(16, 16), basis="hartley", factorization="tucker",
                          rank=0.2)
    assert tucker(x).shape == x.shape and not tucker.weight.complex_valued
    dense_view = tucker.hartley_weight()  # the rebuilt multipliers, frequency-major
    assert dense_view.shape == (17, 17, 8, 8) and not dense_view.is_complex()


def test_unknown_basis_is_refused():
    with pytest.raises(ValueError, match="basis"):
        SpectralConv(2, 2, (4, 4), basis="cosine")
