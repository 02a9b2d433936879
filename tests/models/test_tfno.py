"""TFNO and MG-TFNO: parameter savings as asked, equal to the FNO at full rank, patch-by-patch
passes equal to one pass (values and gradients), configs round trip, bad arguments refused."""

import pytest
import torch

from geo_neuralop.models import FNO, MGTFNO, SFNO, TFNO, get_model, load_model, save_model


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _spectral(model) -> int:
    return sum(block.conv.count_parameters() for block in model.blocks)


@pytest.mark.parametrize("factorization", ["tucker", "cp", "tt"])
def test_tfno_keeps_the_asked_fraction_of_spectral_parameters(factorization):
    dense = FNO(1, 1, n_modes=(16, 16), hidden_channels=32, n_layers=2)
    model = TFNO(1, 1, n_modes=(16, 16), hidden_channels=32, n_layers=2,
                 factorization=factorization, rank=0.05)
    ratio = _spectral(model) / _spectral(dense)
    assert 0.01 < ratio <= 0.0525, ratio
    x = torch.randn(2, 1, 32, 32)
    model(x).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, name


def test_tfno_with_factors_of_a_dense_fno_reproduces_it(float64):
    """Tucker at full rank with identity factors and the FNO weight as core: the same model."""
    torch.manual_seed(0)
    dense = FNO(1, 1, n_modes=(6, 6), hidden_channels=4, n_layers=2)
    model = TFNO(1, 1, n_modes=(6, 6), hidden_channels=4, n_layers=2, rank=(4, 4, 7, 4))
    state = {k: v for k, v in dense.state_dict().items() if ".conv.weight" not in k}
    missing, _ = model.load_state_dict(state, strict=False)
    assert all(".conv.weight." in k for k in missing)
    with torch.no_grad():
        for a, b in zip(model.blocks, dense.blocks, strict=True):
            w = torch.view_as_complex(b.conv.weight).permute(2, 3, 0, 1)  # [I, O, 7, 4]
            a.conv.weight.core.copy_(torch.view_as_real(w))
            for f, n in zip(a.conv.weight.factors, w.shape, strict=True):
                f.copy_(torch.view_as_real(torch.eye(n, dtype=w.dtype)))
    x = torch.randn(3, 1, 20, 16)
    assert (model(x) - dense(x)).abs().max() < 1e-12


def test_mg_tfno_chunked_passes_equal_one_pass():
    torch.manual_seed(0)
    model = MGTFNO(2, 1, n_modes=(8, 8), levels=2, padding_fraction=0.0625, hidden_channels=8,
                   n_layers=2, rank=0.5)
    x = torch.randn(2, 2, 64, 32)
    full = model(x)
    grads = torch.autograd.grad(full.square().sum(), list(model.parameters()))
    model.patches_per_pass = 5  # 32 patches in 7 chunks, each recomputed in the backward pass
    chunked = model(x)
    grads_c = torch.autograd.grad(chunked.square().sum(), list(model.parameters()))
    assert (full - chunked).abs().max() < 1e-5
    for a, b in zip(grads, grads_c, strict=True):
        assert (a - b).abs().max() < 1e-4 * (b.abs().max() + 1e-12)
    with torch.no_grad():
        assert (model(x) - full).abs().max() < 1e-5


def test_mg_tfno_with_zero_levels_is_its_tfno():
    model = MGTFNO(1, 1, n_modes=(8, 8), levels=0, hidden_channels=8, n_layers=1)
    x = torch.randn(1, 1, 24, 20)
    assert torch.equal(model(x), model.tfno(x))


def test_factorized_sfno_and_configs_round_trip(tmp_path):
    sfno = SFNO(2, 2, lmax=8, hidden_channels=8, n_layers=2, factorization="cp", rank=6)
    x = torch.randn(1, 2, 9, 16)
    assert sfno(x).shape == x.shape
    for model in (sfno, TFNO(1, 2, n_modes=(8, 8), factorization="tt", rank=3),
                  MGTFNO(1, 1, n_modes=(8, 8), hidden_channels=8, n_layers=1)):
        rebuilt = get_model(model.registered_name, **model.config)
        assert _count(rebuilt) == _count(model)
        path = tmp_path / f"{type(model).__name__}.pt"
        save_model(model, path)
        loaded = load_model(path)
        inp = x if model is sfno else torch.randn(1, 1, 32, 32)
        assert torch.equal(loaded(inp), model(inp))


def test_bad_arguments():
    with pytest.raises(ValueError, match="factorization"):
        TFNO(1, 1, (8, 8), factorization="dense")
    with pytest.raises(ValueError, match="rank"):
        TFNO(1, 1, (8, 8), rank=-1)
    with pytest.raises(ValueError, match="n_modes"):
        MGTFNO(1, 1, n_modes=(8, 8, 8))
    with pytest.raises(ValueError, match="patches_per_pass"):
        MGTFNO(1, 1, patches_per_pass=0)
    with pytest.raises(ValueError, match="levels=1"):
        MGTFNO(1, 1, n_modes=(4, 4), levels=1)(torch.randn(1, 1, 31, 32))
    with pytest.raises(ValueError, match=r"x must have shape \[B, 1"):
        MGTFNO(1, 1)(torch.randn(1, 2, 32, 32))
