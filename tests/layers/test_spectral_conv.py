"""SpectralConv: equals a circular convolution computed in space, handles negative and Nyquist
frequencies, agrees with neuraloperator 2.0 where conventions match, resamples exactly."""

import math
import warnings

import pytest
import torch

from geo_neuralop.layers import SpectralBlock, SpectralConv
from geo_neuralop.layers.spectral_conv import (
    contract_channels,
    resample_periodic,
    spectral_crop,
    spectral_pad,
    symmetric_frequencies,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _kernel_on_grid(weight: torch.Tensor, shape) -> torch.Tensor:
    """kappa(s) = Re sum_k c_k w_k exp(2 pi i k.s / n) on the grid offsets, by explicit sums.

    ``weight [2K_1+1, ..., K_d+1, I, O]`` (FFT order); ``c = 1`` on the last-axis frequency 0
    and 2 elsewhere (the conjugate half of the real FFT). Returns ``[I, O, *shape]``.
    """
    d = len(shape)
    weight = weight.permute(d, d + 1, *range(d))
    kept = [(s - 1) // 2 for s in weight.shape[2:-1]] + [weight.shape[-1] - 1]
    freqs = symmetric_frequencies(kept, dtype=torch.float64)
    kgrid = torch.stack(torch.meshgrid(*freqs, indexing="ij"), -1).reshape(-1, d)  # [F, d]
    offs = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=torch.float64) / n for n in shape],
                                      indexing="ij"), -1).reshape(-1, d)  # [S, d]
    phase = torch.exp(2j * math.pi * (kgrid @ offs.T))  # [F, S]
    c = torch.where(kgrid[:, -1] == 0, 1.0, 2.0).to(torch.complex128)
    w = weight.to(torch.complex128).reshape(*weight.shape[:2], -1) * c
    return torch.einsum("iof,fs->ios", w, phase).real.reshape(*weight.shape[:2], *shape)


def _direct_convolution(x: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """y_i = (1/N) sum_j kappa(x_i - x_j) v_j, with circular index arithmetic (no FFT)."""
    shape = x.shape[2:]
    d = len(shape)
    idx = torch.stack(torch.meshgrid(*[torch.arange(n) for n in shape], indexing="ij"),
                      -1).reshape(-1, d)
    diff = (idx[:, None, :] - idx[None, :, :]) % torch.tensor(shape)  # [N, N, d]
    flat = torch.zeros(diff.shape[:2], dtype=torch.long)
    for axis in range(d):
        flat = flat * shape[axis] + diff[..., axis]
    kmat = kappa.reshape(*kappa.shape[:2], -1)[:, :, flat]  # [I, O, N_out, N_in]
    n = idx.shape[0]
    y = torch.einsum("ioaj,bij->boa", kmat, x.reshape(x.shape[0], x.shape[1], n))
    return y.reshape(x.shape[0], -1, *shape) / n


def _trig_poly(shape, channels: int, kmax, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A real random trigonometric polynomial with |k_d| <= kmax[d] sampled on the grid."""
    g = _gen(seed)
    d = len(shape)
    coords = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) / n for n in shape],
                            indexing="ij")
    freqs = torch.meshgrid(*[torch.arange(-k, k + 1, dtype=torch.float64) for k in kmax],
                           indexing="ij")
    kk = torch.stack([f.reshape(-1) for f in freqs], -1)  # [F, d]
    phase = 2 * math.pi * sum(kk[:, a, None] * coords[a].reshape(1, -1) for a in range(d))
    a = torch.randn(batch, channels, kk.shape[0], generator=g, dtype=torch.float64)
    b = torch.randn(batch, channels, kk.shape[0], generator=g, dtype=torch.float64)
    v = torch.einsum("bcf,fs->bcs", a, torch.cos(phase)) + torch.einsum(
        "bcf,fs->bcs", b, torch.sin(phase))
    return v.reshape(batch, channels, *shape)


@pytest.mark.parametrize(
    ("n_modes", "shape"),
    [((7,), (20,)), ((6, 8), (12, 10)), ((5, 4, 6), (8, 6, 9)), ((2, 9), (7, 11))],
)
def test_equals_direct_circular_convolution(float64, n_modes, shape):
    """Kept frequencies below the grids' Nyquist: exact for *any* input (not only band-limited)."""
    conv = SpectralConv(2, 3, n_modes=n_modes, bias=False)
    x = torch.randn(2, 2, *shape, generator=_gen(1))
    kappa = _kernel_on_grid(torch.view_as_complex(conv.weight.detach()), shape)
    reference = _direct_convolution(x, kappa)
    out = conv(x).detach()
    assert (out - reference).abs().max() < 1e-12 * reference.abs().max()


def test_equals_direct_convolution_with_nyquist_modes_for_band_limited_input(float64):
    """The kept set reaches the grid's Nyquist bins (K = n/2): exact for band-limited input."""
    shape = (8, 10)
    conv = SpectralConv(2, 2, n_modes=(8, 10), bias=False)  # K = (4, 5) = n / 2
    x = _trig_poly(shape, 2, kmax=(3, 4), batch=2)
    kappa = _kernel_on_grid(torch.view_as_complex(conv.weight.detach()), shape)
    out = conv(x).detach()
    reference = _direct_convolution(x, kappa)
    assert (out - reference).abs().max() < 1e-12 * reference.abs().max()


def test_negative_frequencies_get_their_own_weight(float64):
    conv = SpectralConv(1, 1, n_modes=(8, 8), bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[9 - 3, 2, 0, 0, 0] = 1.0  # frequency (k1, k2) = (-3, 2): FFT-order index 6
    n = 16
    x1, x2 = torch.meshgrid(torch.arange(n) / n, torch.arange(n) / n, indexing="ij")
    minus = torch.cos(2 * math.pi * (-3 * x1 + 2 * x2))[None, None]
    plus = torch.cos(2 * math.pi * (3 * x1 + 2 * x2))[None, None]
    assert torch.allclose(conv(minus).detach(), minus, atol=1e-12)
    assert conv(plus).detach().abs().max() < 1e-12


@pytest.mark.parametrize("k", [(8, 3), (3, 8)])
def test_nyquist_bin_acts_as_the_continuous_operator(float64, k):
    """On a 16^2 grid, frequency 8 is the Nyquist bin (of the full axis for k = (8, 3), of the
    real-FFT axis for k = (3, 8)). The samples of f = cos(2 pi k1 x) cos(2 pi k2 y) must be
    mapped to the samples of the continuous operator applied to f, at every resolution."""
    torch.manual_seed(3)
    conv = SpectralConv(1, 1, n_modes=(16, 16), bias=False)  # keeps |k| <= 8
    w = torch.view_as_complex(conv.weight.detach())[..., 0, 0]  # [17, 9], FFT order
    w_pp, w_mp = w[k[0], k[1]], w[17 - k[0], k[1]]  # weights of (k1, k2) and (-k1, k2)
    outputs = []
    for n in (16, 32, 48):
        x1, x2 = torch.meshgrid(torch.arange(n) / n, torch.arange(n) / n, indexing="ij")
        f = torch.cos(2 * math.pi * k[0] * x1) * torch.cos(2 * math.pi * k[1] * x2)
        # f = sum over (+-k1, +-k2) of e^{i k.x} / 4; the real kernel pairs (-k1,-k2) with
        # conj w(k1, k2) and (k1, -k2) with conj w(-k1, k2)
        expected = 0.5 * (w_pp * torch.exp(2j * math.pi * (k[0] * x1 + k[1] * x2))).real \
            + 0.5 * (w_mp * torch.exp(2j * math.pi * (-k[0] * x1 + k[1] * x2))).real
        out = conv(f[None, None]).detach()[0, 0]
        assert (out - expected).abs().max() < 1e-12, n
        outputs.append(out)
    assert (outputs[0] - outputs[1][::2, ::2]).abs().max() < 1e-12


def test_matches_neuraloperator_where_conventions_agree():
    """neuraloperator 2.0 keeps -m/2..m/2-1 on full axes: copy its weights, zero our +m/2.
    Needs the bench extra (``make install-bench``); skipped without it."""
    pytest.importorskip("neuralop", reason="neuraloperator is in the bench extra")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from neuralop.layers.spectral_convolution import SpectralConv as PeerSpectralConv
    torch.manual_seed(0)
    for n_modes, shape in [((8, 8), (32, 24)), ((6, 4, 8), (16, 12, 20)), ((10,), (40,))]:
        peer = PeerSpectralConv(3, 5, n_modes=n_modes, bias=True)
        ours = SpectralConv(3, 5, n_modes=n_modes, bias=True)
        w_peer = peer.weight.to_tensor().detach()  # [I, O, m_1, ..., m_d // 2 + 1]
        d = len(n_modes)
        w_peer = w_peer.permute(*range(2, d + 2), 0, 1)  # frequency-major, like ours
        w = torch.zeros(torch.view_as_complex(ours.weight).shape, dtype=torch.complex64)
        # peer index j on a full axis is frequency j - m/2; ours is FFT order (0..K, -K..-1)
        index = [torch.arange(-(m // 2), m // 2) % (2 * (m // 2) + 1) for m in n_modes[:-1]]
        if index:
            grids = torch.meshgrid(*index, indexing="ij")
            w[grids] = w_peer
        else:
            w[...] = w_peer
        with torch.no_grad():
            ours.weight.copy_(torch.view_as_real(w))
            ours.bias.copy_(peer.bias.detach().reshape(ours.bias.shape))
        x = torch.randn(2, 3, *shape, generator=_gen(2))
        expected = peer(x).detach()
        got = ours(x).detach()
        assert (got - expected).abs().max() < 1e-5 * expected.abs().max(), n_modes


def test_super_resolved_output_equals_evaluation_on_the_fine_grid(float64):
    conv = SpectralConv(2, 2, n_modes=(8, 6))
    coarse = _trig_poly((16, 12), 2, kmax=(5, 4))
    fine = _trig_poly((48, 36), 2, kmax=(5, 4))  # the same function, finer samples
    assert (resample_periodic(coarse, (48, 36)) - fine).abs().max() < 1e-12
    a = conv(coarse, output_shape=(48, 36)).detach()
    b = conv(fine).detach()
    assert (a - b).abs().max() < 1e-12
    assert (conv(fine, output_shape=(16, 12)).detach() - conv(coarse).detach()).abs().max() < 1e-12


@pytest.mark.parametrize(("kept", "sizes"), [((3, 4), (8, 9)), ((4, 5), (8, 10)), ((2,), (5,))])
def test_crop_then_pad_is_identity_on_band_limited_spectra(float64, kept, sizes):
    x = _trig_poly(sizes, 1, kmax=[min(k, (n - 1) // 2) for k, n in zip(kept, sizes, strict=True)])
    dims = tuple(range(-len(sizes), 0))
    x_hat = torch.fft.rfftn(x, dim=dims, norm="forward")
    back = spectral_pad(spectral_crop(x_hat, kept, sizes), kept, sizes)
    assert (back - x_hat).abs().max() < 1e-13


def test_shift_equivariance_and_gradients():
    conv = SpectralConv(3, 4, n_modes=(6, 6))
    x = torch.randn(2, 3, 20, 14, generator=_gen())
    torch.testing.assert_close(conv(torch.roll(x, (3, -5), (2, 3))),
                               torch.roll(conv(x), (3, -5), (2, 3)), rtol=1e-5, atol=1e-5)
    conv(x).square().mean().backward()
    for name, p in conv.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, name


def test_modes_beyond_the_grid_are_skipped():
    conv = SpectralConv(1, 1, n_modes=(64, 64))
    assert conv(torch.randn(1, 1, 8, 6, generator=_gen())).shape == (1, 1, 8, 6)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="n_modes"):
        SpectralConv(1, 1, n_modes=(4, 0))
    with pytest.raises(TypeError, match="n_modes"):
        SpectralConv(1, 1, n_modes=4.0)
    with pytest.raises(ValueError, match="in_channels"):
        SpectralConv(0, 1, n_modes=4)
    conv = SpectralConv(2, 2, n_modes=(4, 4))
    with pytest.raises(ValueError, match=r"x must have shape \[B, 2"):
        conv(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="output_shape"):
        conv(torch.randn(1, 2, 8, 8), output_shape=(8,))


class _Constant(torch.nn.Module):
    """A stand-in local layer: returns a fixed tensor whatever its input."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value


def test_block_adds_local_terms_before_the_nonlinearity():
    torch.manual_seed(0)
    extra = torch.randn(2, 4, 8, 8, generator=_gen(1))
    block = SpectralBlock(SpectralConv(4, 4, n_modes=(4, 4)), 4, 4, use_channel_mlp=False,
                          activation="relu", local=[_Constant(extra), _Constant(extra)])
    x = torch.randn(2, 4, 8, 8, generator=_gen())
    linear_part = block.conv(x) + block.skip(x)
    torch.testing.assert_close(block(x), torch.relu(linear_part + 2 * extra))
    bad = SpectralBlock(SpectralConv(4, 4, n_modes=(4, 4)), 4, 4,
                        local=[_Constant(torch.zeros(2, 4, 8, 9))])
    with pytest.raises(ValueError, match=r"local layer _Constant returned shape \(2, 4, 8, 9\)"):
        bad(x)


def test_channel_contraction_gradients_match_finite_differences(float64):
    x = torch.randn(2, 3, 4, 3, dtype=torch.complex128, generator=_gen(), requires_grad=True)
    w = torch.randn(4, 3, 3, 2, dtype=torch.complex128, generator=_gen(1), requires_grad=True)
    assert torch.autograd.gradcheck(contract_channels, (x, w))
    expected = torch.einsum("bikl,klio->bokl", x, w)
    torch.testing.assert_close(contract_channels(x, w), expected)
