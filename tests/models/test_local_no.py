"""LocalNO: local + global blocks that follow the input's resolution."""

import math

import pytest
import torch

from geo_neuralop.models import LocalNO


def smooth_input(n: int, m: int | None = None, periodic: bool = True) -> torch.Tensor:
    m = n if m is None else m
    x = torch.arange(n, dtype=torch.float64) / (n if periodic else n - 1)
    y = torch.arange(m, dtype=torch.float64) / (m if periodic else m - 1)
    X, Y = torch.meshgrid(x, y, indexing="ij")
    return (torch.sin(2 * math.pi * X) * torch.cos(2 * math.pi * Y)
            + 0.5 * torch.sin(4 * math.pi * Y))[None, None]


def test_discretization_agnostic_under_refinement():
    """Fixed random weights, the same smooth input on 32^2 ... 256^2: the outputs at the
    shared points approach the finest one (relative L2, uniform quadrature)."""
    torch.manual_seed(0)
    model = LocalNO(1, 1, n_modes=(12, 12), hidden_channels=12, n_layers=3).double().eval()
    with torch.no_grad():
        outs = {n: model(smooth_input(n)) for n in (32, 64, 128, 256)}
    ref = outs[256]
    diffs = [float((outs[n] - ref[..., :: 256 // n, :: 256 // n]).norm()
                   / ref[..., :: 256 // n, :: 256 // n].norm()) for n in (32, 64, 128)]
    assert diffs[0] > diffs[1] > diffs[2]
    assert diffs[2] < 2e-3 and diffs[0] < 2e-2 and diffs[2] < 0.25 * diffs[0]


def test_local_terms_are_physical_operators():
    """The DISCO term of a constant field is the same constant response at every resolution,
    and the differential term of a linear-in-x field is the same constant too."""
    torch.manual_seed(0)
    model = LocalNO(1, 1, n_modes=(4, 4), hidden_channels=3, n_layers=1,
                    domain=[(0.0, 2.0), (0.0, 1.0)], periodic=False).double()
    values = []
    for n in (17, 33, 65, 129):
        x = torch.linspace(0, 2, n, dtype=torch.float64)[:, None].expand(n, n)
        h = torch.stack([torch.ones(n, n), x, torch.zeros(n, n)]).double()[None]
        disco, diff = model.blocks[0].local_terms(h)
        values.append((disco[0, :, n // 2, n // 2], diff[0, :, n // 2, n // 2]))
    for _, diff in values[1:]:  # a zero-sum stencil / h is exact on linear fields
        torch.testing.assert_close(diff, values[0][1], rtol=1e-10, atol=1e-12)
    finest = values[-1][0]
    errors = [float((disco - finest).norm() / finest.norm()) for disco, _ in values[:-1]]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-2  # quadrature converges


def test_training_step_and_gradients():
    torch.manual_seed(0)
    model = LocalNO(2, 1, n_modes=(8, 8), hidden_channels=8, n_layers=2)
    x = torch.randn(4, 2, 24, 24)
    target = torch.roll(x[:, :1], 2, dims=-1) - x[:, 1:]
    loss = torch.nn.functional.mse_loss(model(x), target)
    loss.backward()
    dead = [name for name, p in model.named_parameters()
            if p.grad is None or not torch.any(p.grad != 0)]
    assert not dead, dead
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        step = torch.nn.functional.mse_loss(model(x), target)
        step.backward()
        optimizer.step()
        losses.append(step.item())
    assert losses[-1] < 0.5 * losses[0]


def test_output_shape_padding_and_errors():
    torch.manual_seed(0)
    model = LocalNO(1, 2, n_modes=(6, 6), hidden_channels=4, n_layers=2)
    assert model(torch.randn(1, 1, 16, 16), output_shape=(32, 24)).shape == (1, 2, 32, 24)
    padded = LocalNO(1, 1, n_modes=(6, 6), hidden_channels=4, n_layers=2, periodic=False,
                     domain_padding=0.25, domain=[(0.0, 3.0), (0.0, 1.0)])
    dom = padded.hidden_grid((20, 12)).domain  # 20 and 12 points padded by 5 and 3, same spacing
    assert dom[0] == pytest.approx((0.0, 3.0 * 24 / 19)) and dom[1] == pytest.approx(
        (0.0, 14 / 11))
    assert padded(torch.randn(2, 1, 20, 12)).shape == (2, 1, 20, 12)
    with pytest.raises(ValueError, match="disco_layers must be a bool or 2 bools"):
        LocalNO(1, 1, (4, 4), n_layers=2, disco_layers=[True])
    with pytest.raises(ValueError, match=r"domain\[1\] = \(1.0, 1.0\) must have hi > lo"):
        LocalNO(1, 1, (4, 4), domain=[(0, 1), (1, 1)])
    with pytest.raises(ValueError, match="disco_radius must be a finite positive number"):
        LocalNO(1, 1, (4, 4), disco_radius=-0.1)
    with pytest.raises(ValueError, match=r"periodic needs 2 entries \(one per axis\)"):
        LocalNO(1, 1, (4, 4), periodic=[True])
    with pytest.raises(ValueError, match="spans more than the periodic axis"):
        LocalNO(1, 1, (4, 4), disco_radius=0.55)(torch.randn(1, 1, 4, 4))


def test_fused_disco_equals_separate_path(monkeypatch):
    """On a periodic grid the DISCO term shares the spectral convolution's FFTs; the model's
    output and gradients equal those of the separate FFT DISCO path (float64)."""
    from geo_neuralop.layers import GridDiscoConv

    torch.manual_seed(3)
    model = LocalNO(2, 1, n_modes=(6, 6), hidden_channels=6, n_layers=3, disco_groups=2,
                    domain=[(0.0, 2.0), (0.0, 1.0)]).double()
    x = torch.randn(2, 2, 20, 16, dtype=torch.float64)
    disco = model.blocks[0].local[0]
    assert isinstance(disco, GridDiscoConv) and disco.fourier_term(x[:, :1].expand(-1, 6, -1,
                                                                                      -1))
    calls = []
    real_term = GridDiscoConv.fourier_term
    monkeypatch.setattr(GridDiscoConv, "fourier_term",
                        lambda self, *a, **k: calls.append(1) or real_term(self, *a, **k))
    fused = model(x)
    assert len(calls) == 3  # every block folded its DISCO term into the spectral FFTs
    g_fused = torch.autograd.grad(fused.square().sum(), list(model.parameters()))
    monkeypatch.setattr(GridDiscoConv, "fourier_term", lambda self, *args, **kwargs: None)
    separate = model(x)
    g_separate = torch.autograd.grad(separate.square().sum(), list(model.parameters()))
    torch.testing.assert_close(fused, separate, rtol=1e-12, atol=1e-12)
    for a, b in zip(g_fused, g_separate, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # a super-resolved last block and bounded axes take the separate path
    monkeypatch.undo()
    calls.clear()
    monkeypatch.setattr(GridDiscoConv, "fourier_term",
                        lambda self, *a, **k: calls.append(1) or real_term(self, *a, **k))
    model(x, output_shape=(40, 32))
    assert len(calls) == 2  # the last block changes the grid: not fused
    bounded = LocalNO(1, 1, n_modes=(4, 4), hidden_channels=3, n_layers=1, periodic=False)
    assert bounded.blocks[0].local[0].fourier_term(torch.zeros(1, 3, 9, 9)) is None
