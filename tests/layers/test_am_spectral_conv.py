"""AMSpectralConv: resolution-independent parameters, resolution-consistent outputs, the kernel
is the network's value at each frequency, orthogonal embeddings."""

import math

import pytest
import torch

from geo_neuralop.layers import AMSpectralConv, SpectralConv
from geo_neuralop.layers.am_spectral_conv import frequency_embedding, normalize_frequency
from geo_neuralop.layers.spectral_conv import symmetric_frequencies

VARIANTS = [
    {"kernel_network": "mlp", "factorization": "separable", "embedding": "chebyshev"},
    {"kernel_network": "mlp", "factorization": "full", "embedding": "fourier"},
    {"kernel_network": "kan", "factorization": "separable"},
    {"kernel_network": "kan", "factorization": "full"},
]


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _smooth_field(n: int, channels: int, seed: int = 0) -> torch.Tensor:
    """A band-limited field (|k| <= 5 per axis) sampled on an n x n grid of the unit torus."""
    g = torch.Generator().manual_seed(seed)
    x1, x2 = torch.meshgrid(torch.arange(n) / n, torch.arange(n) / n, indexing="ij")
    out = torch.zeros(1, channels, n, n)
    for _ in range(6):
        k = torch.randint(-5, 6, (2,), generator=g)
        amp = torch.randn(channels, 1, 1, generator=g)
        shift = torch.rand(1, generator=g)
        out[0] += amp * torch.cos(2 * math.pi * (k[0] * x1 + k[1] * x2 + shift))
    return out


@pytest.mark.parametrize("variant", VARIANTS)
def test_parameter_count_is_independent_of_resolution_and_modes(variant):
    conv = AMSpectralConv(6, 5, n_dim=2, **variant)
    capped = AMSpectralConv(6, 5, n_dim=2, n_modes=(12, 12), **variant)
    count = _n_params(conv)
    assert _n_params(capped) == count
    for n in (32, 128):
        y = conv(torch.randn(1, 6, n, n))
        assert y.shape == (1, 5, n, n)
        assert _n_params(conv) == count
        conv.zero_grad()
        y.square().mean().backward()
        for name, p in conv.named_parameters():
            assert p.grad is not None and p.grad.abs().max() > 0, name


@pytest.mark.parametrize("variant", VARIANTS)
def test_band_limited_input_gives_the_same_output_at_every_resolution(float64, variant):
    conv = AMSpectralConv(3, 2, n_dim=2, **variant)
    coarse = conv(_smooth_field(32, 3)).detach()
    fine = conv(_smooth_field(64, 3)).detach()
    scale = coarse.abs().max()
    assert (coarse - fine[..., ::2, ::2]).abs().max() < 1e-12 * scale


def test_layer_is_a_spectral_convolution_with_the_network_kernel(float64):
    """Copying R(k) on the kept frequencies into a SpectralConv reproduces the layer exactly."""
    am = AMSpectralConv(2, 3, n_dim=2, n_modes=(12, 8), factorization="full")
    fno = SpectralConv(2, 3, n_modes=(12, 8))
    kernel = am.kernel_values(symmetric_frequencies((6, 4))).detach()  # [13, 5, 2, 3]
    with torch.no_grad():
        fno.weight.copy_(torch.view_as_real(kernel))
        fno.bias.copy_(am.bias)
    x = torch.randn(2, 2, 24, 20)
    torch.testing.assert_close(am(x), fno(x), rtol=0, atol=1e-12)


def test_separable_kernel_is_the_product_of_per_axis_kernels(float64):
    am = AMSpectralConv(2, 2, n_dim=3, factorization="separable")
    freqs = [torch.tensor([0.0, 3.0, -7.0]), torch.tensor([1.0, -2.0]), torch.tensor([5.0])]
    full = am.kernel_values(freqs)  # [3, 2, 1, 2, 2]
    per_axis = [am._net_values(net, am._features(k)) for net, k in zip(am.nets, freqs, strict=True)]
    expected = torch.einsum("aio,bio,cio->abcio", *per_axis)
    torch.testing.assert_close(full, expected)


def test_frequency_cap_removes_high_frequencies(float64):
    conv = AMSpectralConv(1, 1, n_dim=1, n_modes=8, bias=False)  # keeps |k| <= 4
    x = torch.arange(64) / 64
    high = torch.cos(2 * math.pi * 9 * x)[None, None]
    low = torch.cos(2 * math.pi * 3 * x)[None, None]
    assert conv(high).abs().max() < 1e-12
    assert conv(low).abs().max() > 1e-3


def test_chebyshev_embedding_is_orthogonal_and_normalization_is_grid_free(float64):
    # Gauss-Chebyshev quadrature: sum_j T_m(xi_j) T_n(xi_j) = N/2 delta_mn for 1 <= m, n < N
    n_nodes = 40
    xi = torch.cos(math.pi * (torch.arange(n_nodes) + 0.5) / n_nodes)
    emb = frequency_embedding(xi, 16, "chebyshev")
    torch.testing.assert_close(emb.T @ emb, torch.eye(16) * n_nodes / 2, atol=1e-12, rtol=0)
    # Fourier embedding: orthogonal on [-1, 1) with the uniform rule
    xi = -1 + 2 * torch.arange(64) / 64
    emb = frequency_embedding(xi, 10, "fourier")
    torch.testing.assert_close(emb.T @ emb, torch.eye(10) * 32, atol=1e-12, rtol=0)
    k = torch.tensor([-1e6, -3.0, 0.0, 3.0, 1e6])
    xi = normalize_frequency(k, 4.0)
    torch.testing.assert_close(xi, torch.tensor([-1.0, -0.6, 0.0, 0.6, 1.0]), atol=1e-11, rtol=0)


def test_initial_kernel_scale_matches_init_std():
    for variant in VARIANTS:
        conv = AMSpectralConv(8, 8, n_dim=2, init_std=0.3, **variant)
        k = torch.arange(-64, 65, 2.0)
        rms = conv.kernel_values([k, k]).abs().pow(2).mean().sqrt().item()
        assert 0.2 < rms < 0.45, (variant, rms)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="kernel_network"):
        AMSpectralConv(1, 1, n_dim=2, kernel_network="rbf")
    with pytest.raises(ValueError, match="factorization"):
        AMSpectralConv(1, 1, n_dim=2, factorization="cp")
    with pytest.raises(ValueError, match="embedding"):
        AMSpectralConv(1, 1, n_dim=2, embedding="legendre")
    with pytest.raises(ValueError, match="n_modes"):
        AMSpectralConv(1, 1, n_dim=2, n_modes=(8,))
    with pytest.raises(ValueError, match="n_dim"):
        AMSpectralConv(1, 1, n_dim=4)
