"""AMFNO: forward at any resolution with a fixed parameter count, training lowers the loss,
no dead weights (MLP and KAN kernels), config and checkpoint round trips."""

import math

import pytest
import torch

from geo_neuralop.models import AMFNO, get_model, load_model, save_model


def _smooth_batch(n: int, batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.arange(n) / n
    out = torch.zeros(batch, 1, n)
    for b in range(batch):
        for k in range(1, 6):
            out[b, 0] += torch.randn(1, generator=g) / k * torch.cos(
                2 * math.pi * k * (x + torch.rand(1, generator=g)))
    return out


@pytest.mark.parametrize("kernel_network", ["mlp", "kan"])
def test_parameter_count_does_not_grow_with_resolution(kernel_network):
    model = AMFNO(1, 2, n_dim=2, hidden_channels=6, n_layers=2, kernel_network=kernel_network)
    count = sum(p.numel() for p in model.parameters())
    for n in (32, 128):
        assert model(torch.randn(1, 1, n, n)).shape == (1, 2, n, n)
    assert sum(p.numel() for p in model.parameters()) == count


@pytest.mark.parametrize(("kernel_network", "factorization"),
                         [("mlp", "separable"), ("kan", "full")])
def test_training_lowers_the_loss_and_every_parameter_gets_a_gradient(kernel_network,
                                                                      factorization):
    torch.manual_seed(0)
    model = AMFNO(1, 1, n_dim=1, hidden_channels=8, n_layers=2, kernel_network=kernel_network,
                  factorization=factorization, kernel_hidden=8)
    x = _smooth_batch(64, 8)
    # target: a derivative-like nonlocal operator (Hilbert-transform of the input) plus x^2
    x_hat = torch.fft.rfft(x)
    y = torch.fft.irfft(-1j * x_hat, n=64) + 0.3 * x.square()
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


def test_linear_amfno_is_resolution_consistent(float64):
    model = AMFNO(1, 1, n_dim=1, hidden_channels=4, n_layers=2, activation="identity",
                  positional_embedding=None)
    coarse = model(_smooth_batch(32, 2)).detach()
    fine = model(_smooth_batch(128, 2)).detach()
    assert (coarse - fine[..., ::4]).abs().max() < 1e-12 * coarse.abs().max()


def test_config_rebuilds_the_model_and_checkpoints_round_trip(tmp_path):
    model = AMFNO(2, 1, n_dim=2, hidden_channels=4, n_layers=2, n_modes=(10, 10),
                  embedding="fourier", factorization="full").eval()
    rebuilt = get_model("amfno", **model.config).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(1, 2, 12, 10)
    torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)
    path = tmp_path / "amfno.pt"
    save_model(model, path)
    torch.testing.assert_close(load_model(path).eval()(x), model(x), rtol=0, atol=0)
