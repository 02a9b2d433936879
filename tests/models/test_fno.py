"""FNO: shapes in 1-3D and at any resolution, training lowers the loss, no dead weights,
linear FNO is resolution-consistent, config and checkpoint round trips."""

import math

import pytest
import torch

from geo_neuralop.models import FNO, get_model, load_model, save_model


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _smooth_batch(n: int, batch: int, seed: int = 0) -> torch.Tensor:
    """Random band-limited periodic fields (|k| <= 4) on an n x n grid."""
    g = _gen(seed)
    x1, x2 = torch.meshgrid(torch.arange(n) / n, torch.arange(n) / n, indexing="ij")
    out = torch.zeros(batch, 1, n, n)
    for b in range(batch):
        for _ in range(4):
            k = torch.randint(-4, 5, (2,), generator=g)
            phase = torch.rand(1, generator=g)
            out[b, 0] += torch.randn(1, generator=g) * torch.cos(
                2 * math.pi * (k[0] * x1 + k[1] * x2 + phase))
    return out


@pytest.mark.parametrize(("n_modes", "shape"), [((6,), (40,)), ((6, 6), (20, 24)),
                                                ((4, 4, 4), (8, 10, 6))])
def test_forward_shapes_in_one_to_three_dimensions(n_modes, shape):
    model = FNO(2, 3, n_modes=n_modes, hidden_channels=6, n_layers=2)
    y = model(torch.randn(2, 2, *shape, generator=_gen()))
    assert y.shape == (2, 3, *shape)
    assert torch.isfinite(y).all()


def test_training_lowers_the_loss_and_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = FNO(1, 1, n_modes=(8, 8), hidden_channels=8, n_layers=2, norm="instance_norm")
    x = _smooth_batch(16, 4)
    # target operator: a smoothing convolution plus a pointwise square
    y = 0.5 * (torch.roll(x, 1, -1) + torch.roll(x, -1, -1)) + 0.2 * x.square()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(25):
        opt.zero_grad()
        loss = (model(x) - y).square().mean()
        loss.backward()
        if step == 0:
            for name, p in model.named_parameters():
                assert p.grad is not None and p.grad.abs().max() > 0, name
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses


def test_linear_fno_gives_the_same_function_at_every_resolution(float64):
    """Without pointwise nonlinearities or coordinate channels every layer is an operator on
    band-limited functions, so the model's outputs agree at shared grid points."""
    model = FNO(1, 2, n_modes=(12, 12), hidden_channels=4, n_layers=2, activation="identity",
                positional_embedding=None)
    coarse = model(_smooth_batch(24, 2)).detach()
    fine = model(_smooth_batch(48, 2)).detach()
    assert (coarse - fine[..., ::2, ::2]).abs().max() < 1e-12 * coarse.abs().max()
    up = model(_smooth_batch(24, 2), output_shape=(48, 48)).detach()
    assert (up - fine).abs().max() < 1e-12 * fine.abs().max()


def test_domain_padding_and_domain():
    model = FNO(1, 1, n_modes=(6, 6), hidden_channels=4, n_layers=1, domain_padding=0.25,
                domain=[(0.0, 2.0), (-1.0, 1.0)])
    assert model(torch.randn(2, 1, 16, 12)).shape == (2, 1, 16, 12)
    assert model.pad(torch.zeros(1, 1, 16, 12)).shape == (1, 1, 20, 15)
    with pytest.raises(ValueError, match="domain_padding"):
        model(torch.randn(1, 1, 16, 12), output_shape=(32, 24))


def test_config_rebuilds_the_model_and_checkpoints_round_trip(tmp_path):
    model = FNO(2, 1, n_modes=(6, 4), hidden_channels=5, n_layers=2, skip="soft-gating",
                channel_mlp_skip="linear", norm="layer_norm").eval()
    rebuilt = get_model("fno", **model.config).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(1, 2, 12, 10, generator=_gen())
    torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)
    path = tmp_path / "fno.pt"
    save_model(model, path)
    loaded = load_model(path).eval()
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="positional_embedding"):
        FNO(1, 1, n_modes=(4, 4), positional_embedding="sphere")
    with pytest.raises(ValueError, match="n_modes"):
        FNO(1, 1, n_modes=(4, 4, 4, 4))
    with pytest.raises(ValueError, match="skip_type"):
        FNO(1, 1, n_modes=(4, 4), skip="residual")
    model = FNO(1, 1, n_modes=(4, 4), hidden_channels=4, n_layers=1)
    with pytest.raises(ValueError, match=r"x must have shape \[B, 1"):
        model(torch.randn(1, 2, 8, 8))


def test_zero_projection_ratio_gives_one_affine_map():
    """projection_channel_ratio=0 is a single linear layer (it was a width-1 bottleneck)."""
    torch.manual_seed(0)
    model = FNO(1, 3, n_modes=(4, 4), hidden_channels=6, n_layers=1,
                projection_channel_ratio=0.0)
    weights = [p for n, p in model.projection.named_parameters() if "weight" in n]
    assert [tuple(w.shape)[:2] for w in weights] == [(3, 6)]
    a, b = torch.randn(1, 6, 5, 5), torch.randn(1, 6, 5, 5)
    zero = model.projection(torch.zeros_like(a))
    assert torch.allclose(model.projection(a + 3.0 * b) - zero,
                          (model.projection(a) - zero) + 3.0 * (model.projection(b) - zero),
                          atol=1e-5)
