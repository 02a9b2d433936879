"""Factorized (TFNO) weights: each factorization rebuilds the tensor its definition gives (explicit
sums over indices), full rank equals the dense layer, neuraloperator's TFNO factors copied into
our layers give neuraloperator's outputs, and ranks are resolved and refused precisely."""

import itertools
import math
import warnings

import pytest
import torch

from geo_neuralop.layers import SpectralConv, SphericalSpectralConv
from geo_neuralop.layers.factorized_tensors import (
    CPTensor,
    TTTensor,
    TuckerTensor,
    factorized_tensor,
    resolve_rank,
)


def _entry(tensor, index) -> complex:
    """One entry of a factorized tensor by its definition (loops over the rank indices)."""
    def val(p):
        p = p.detach()
        return torch.view_as_complex(p) if tensor.complex_valued else p
    if isinstance(tensor, CPTensor):
        w = val(tensor.weights)
        factors = [val(f) for f in tensor.factors]
        return sum(complex(w[r]) * math.prod(complex(f[i, r]) for f, i in
                                             zip(factors, index, strict=True))
                   for r in range(tensor.rank))
    if isinstance(tensor, TuckerTensor):
        core = val(tensor.core)
        factors = [val(f) for f in tensor.factors]
        total = 0j
        for r in itertools.product(*[range(k) for k in tensor.rank]):
            total += complex(core[r]) * math.prod(complex(f[i, k]) for f, i, k in
                                                  zip(factors, index, r, strict=True))
        return total
    cores = [val(f) for f in tensor.factors]
    row = cores[0][:, index[0], :]
    for core, i in zip(cores[1:], index[1:], strict=True):
        row = row @ core[:, i, :]
    return complex(row.reshape(()))


@pytest.mark.parametrize(("factorization", "rank"), [("cp", 5), ("tucker", (2, 3, 2)),
                                                     ("tt", (1, 2, 3, 1))])
@pytest.mark.parametrize("complex_valued", [True, False])
def test_rebuilt_tensor_equals_the_definition(float64, factorization, rank, complex_valued):
    t = factorized_tensor((3, 4, 5), factorization, rank, complex_valued=complex_valued)
    dense = t.to_tensor().detach()
    assert dense.shape == (3, 4, 5) and dense.is_complex() == complex_valued
    for index in itertools.product(range(3), range(4), range(5)):
        assert abs(complex(dense[index]) - _entry(t, index)) < 1e-12


def test_tensorly_rebuilds_the_same_tensors(float64):
    tl = pytest.importorskip("tensorly", reason="tensorly comes with the bench extra")
    tl.set_backend("pytorch")
    cp = factorized_tensor((3, 4, 5), "cp", 4, complex_valued=False)
    ref = tl.cp_to_tensor((cp.weights.detach(), [f.detach() for f in cp.factors]))
    assert (cp.to_tensor().detach() - ref).abs().max() < 1e-12
    tucker = factorized_tensor((3, 4, 5), "tucker", (2, 3, 4), complex_valued=False)
    ref = tl.tucker_to_tensor((tucker.core.detach(), [f.detach() for f in tucker.factors]))
    assert (tucker.to_tensor().detach() - ref).abs().max() < 1e-12
    tt = factorized_tensor((3, 4, 5), "tt", (1, 2, 3, 1), complex_valued=False)
    ref = tl.tt_to_tensor([f.detach() for f in tt.factors])
    assert (tt.to_tensor().detach() - ref).abs().max() < 1e-12


def _set(param: torch.nn.Parameter, value: torch.Tensor) -> None:
    with torch.no_grad():
        param.copy_(torch.view_as_real(value) if value.is_complex() else value)


def _full_rank_from_dense(t, dense: torch.Tensor) -> None:
    """Exact full-rank factors of ``dense``: one-hot CP terms, identity Tucker factors, TT-SVD."""
    shape = dense.shape
    if isinstance(t, CPTensor):
        idx = list(itertools.product(*[range(n) for n in shape]))
        _set(t.weights, dense.reshape(-1))
        for axis, f in enumerate(t.factors):
            onehot = torch.zeros(shape[axis], len(idx), dtype=dense.dtype)
            for r, index in enumerate(idx):
                onehot[index[axis], r] = 1
            _set(f, onehot)
    elif isinstance(t, TuckerTensor):
        _set(t.core, dense)
        for f, n in zip(t.factors, shape, strict=True):
            _set(f, torch.eye(n, dtype=dense.dtype))
    else:  # TT-SVD: exact at the maximal ranks
        rest, r_prev = dense, 1
        for k, n in enumerate(shape[:-1]):
            mat = rest.reshape(r_prev * n, -1)
            u, s, vh = torch.linalg.svd(mat, full_matrices=False)
            r = t.rank[k + 1]
            _set(t.factors[k], u[:, :r].reshape(r_prev, n, r))
            rest = (s[:r, None].to(vh.dtype) * vh[:r])
            r_prev = r
        _set(t.factors[-1], rest.reshape(r_prev, shape[-1], 1))


@pytest.mark.parametrize("factorization", ["cp", "tucker", "tt"])
def test_full_rank_factorized_spectral_conv_equals_the_dense_layer(float64, factorization):
    dense = SpectralConv(2, 3, n_modes=(4, 6))
    shape = (2, 3, 5, 4)  # [C_in, C_out, 2K_1 + 1, K_2 + 1]
    rank = {"cp": math.prod(shape), "tucker": shape, "tt": 10**6}[factorization]
    fact = SpectralConv(2, 3, n_modes=(4, 6), factorization=factorization, rank=rank)
    _full_rank_from_dense(fact.weight, torch.view_as_complex(dense.weight).permute(2, 3, 0, 1))
    with torch.no_grad():
        fact.bias.copy_(dense.bias)
    x = torch.randn(2, 2, 12, 10)
    assert (fact(x) - dense(x)).abs().max() < 1e-12
    assert (fact(x, output_shape=(7, 9)) - dense(x, output_shape=(7, 9))).abs().max() < 1e-12


@pytest.mark.parametrize("factorization", ["cp", "tucker", "tt"])
@pytest.mark.parametrize("operator_type", ["driscoll-healy", "driscoll-healy-complex", "diagonal"])
def test_full_rank_factorized_spherical_conv_equals_the_dense_layer(float64, factorization,
                                                                    operator_type):
    dense = SphericalSpectralConv(2, 3, lmax=5, mmax=4, operator_type=operator_type)
    w = dense.weight.detach()
    w = w if operator_type == "driscoll-healy" else torch.view_as_complex(w)
    rank = {"cp": w.numel(), "tucker": tuple(w.shape), "tt": 10**6}[factorization]
    fact = SphericalSpectralConv(2, 3, lmax=5, mmax=4, operator_type=operator_type,
                                 factorization=factorization, rank=rank)
    _full_rank_from_dense(fact.weight, w)
    x = torch.randn(2, 2, 9, 16)
    assert (fact(x) - dense(x)).abs().max() < 1e-12


def _peer_frequency_order(m: int) -> torch.Tensor:
    """Rows of a peer factor (frequencies -K..K) in our FFT order (0..K, -K..-1), K = m // 2."""
    k = m // 2
    freqs = torch.cat([torch.arange(0, k + 1), torch.arange(-k, 0)])
    return freqs + k


@pytest.mark.parametrize("factorization", ["cp", "tucker", "tt"])
def test_neuraloperator_tfno_factors_give_the_same_output(factorization):
    """neuraloperator 2.0's TFNO (n_modes (17, 16): frequencies -8..8 x 0..8, like our
    (16, 16)); its factors copied, rows reordered to FFT order, into our factorized layer."""
    pytest.importorskip("neuralop", reason="neuraloperator is in the bench extra")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from neuralop.models import TFNO
    torch.manual_seed(0)
    peer = TFNO(n_modes=(17, 16), in_channels=1, out_channels=1, hidden_channels=6,
                n_layers=1, factorization=factorization, rank=0.4)
    peer_conv = peer.fno_blocks.convs[0]
    pw = peer_conv.weight
    rank = pw.rank if factorization != "cp" else int(pw.rank)
    ours = SpectralConv(6, 6, n_modes=(16, 16), factorization=factorization, rank=rank)
    order = _peer_frequency_order(17)
    with torch.no_grad():
        if factorization == "cp":
            _set(ours.weight.weights, pw.weights.detach())
        if factorization == "tucker":
            _set(ours.weight.core, pw.core.detach())
        for axis, (f_ours, f_peer) in enumerate(zip(ours.weight.factors, pw.factors,
                                                    strict=True)):
            value = f_peer.detach()
            if axis == 2:  # the full frequency axis: reorder its rows
                value = value[:, order] if factorization == "tt" else value[order]
            _set(f_ours, value)
        ours.bias.copy_(peer_conv.bias.detach().reshape(ours.bias.shape))
    x = torch.randn(2, 6, 40, 36)
    expected = peer_conv(x).detach()
    got = ours(x).detach()
    assert (got - expected).abs().max() < 1e-5 * expected.abs().max()


def test_rank_resolution_and_parameter_fractions():
    shape = (32, 32, 17, 9)
    assert resolve_rank(shape, "cp", 0.1) == round(0.1 * math.prod(shape) / sum(shape))
    for factorization in ("cp", "tucker", "tt"):
        for fraction in (0.02, 0.1, 0.5):
            t = factorized_tensor(shape, factorization, fraction)
            kept = sum(p.numel() for p in t.parameters()) / t.count_dense()
            assert kept <= fraction * 1.05 and kept > fraction / 4, (factorization, fraction)
    assert resolve_rank(shape, "tucker", 8) == (8, 8, 8, 8)
    assert resolve_rank(shape, "tucker", 40) == shape
    assert resolve_rank(shape, "tt", 4) == (1, 4, 4, 4, 1)
    assert resolve_rank(shape, "tt", (1, 2, 3, 4, 1)) == (1, 2, 3, 4, 1)
    assert resolve_rank((3, 4, 5), "tt", 100) == (1, 3, 5, 1)  # capped by the unfoldings


def test_initial_entries_have_the_requested_spread():
    for factorization, rank in (("cp", 40), ("tucker", 0.3), ("tt", 8), ("dense", None)):
        t = factorized_tensor((16, 16, 9, 5), factorization, rank, init_std=0.3)
        std = float(t.to_tensor().detach().abs().square().mean().sqrt())
        assert 0.15 < std < 0.6, (factorization, std)


def test_bad_factorizations_and_ranks_are_refused():
    with pytest.raises(ValueError, match="factorization"):
        SpectralConv(2, 2, (4, 4), factorization="svd")
    with pytest.raises(ValueError, match="rank"):
        SpectralConv(2, 2, (4, 4), factorization="cp", rank=0)
    with pytest.raises(ValueError, match="rank"):
        SpectralConv(2, 2, (4, 4), factorization="tucker", rank=(2, 2))
    with pytest.raises(ValueError, match="rank"):
        SpectralConv(2, 2, (4, 4), factorization="tt", rank=(2, 2, 2, 2, 2))
    with pytest.raises(ValueError, match="rank"):
        SpectralConv(2, 2, (4, 4), factorization="tucker", rank=1.5)
    with pytest.raises(ValueError, match="rank"):
        SphericalSpectralConv(2, 2, lmax=4, factorization="cp", rank=[2, 2])
    with pytest.raises(ValueError, match="rank"):
        TTTensor((3, 4), rank="full")
