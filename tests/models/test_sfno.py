"""SFNO: forward on several grids and resolutions, internal-grid resampling, longitude-shift
equivariance of the whole model, training lowers the loss, no dead weights, round trips."""

import pytest
import torch

from geo_neuralop.models import SFNO, get_model, load_model, save_model
from geo_neuralop.models.sfno import internal_grid_shape


@pytest.mark.parametrize(("grid", "shape"), [("equiangular", (17, 32)),
                                             ("legendre-gauss", (16, 32)),
                                             ("equiangular", (33, 64))])
def test_forward_on_several_grids(grid, shape):
    model = SFNO(2, 3, lmax=12, hidden_channels=6, n_layers=2, grid=grid)
    y = model(torch.randn(2, 2, *shape))
    assert y.shape == (2, 3, *shape)
    assert torch.isfinite(y).all()


def test_internal_grid_changes_the_block_shapes():
    model = SFNO(1, 1, lmax=10, hidden_channels=4, n_layers=3, internal_grid="legendre-gauss",
                 internal_scale=2)
    assert model.block_shapes(33, 64) == [(17, 32), (17, 32), (33, 64)]
    assert internal_grid_shape(33, 64, 2) == (17, 32)
    convs = [b.conv for b in model.blocks]
    assert [(c.grid, c.out_grid) for c in convs] == [
        ("equiangular", "legendre-gauss"), ("legendre-gauss", "legendre-gauss"),
        ("legendre-gauss", "equiangular")]
    assert model(torch.randn(1, 1, 33, 64)).shape == (1, 1, 33, 64)


@pytest.mark.parametrize("operator_type", ["driscoll-healy", "diagonal"])
def test_model_commutes_with_longitude_shifts(operator_type):
    model = SFNO(2, 2, lmax=10, hidden_channels=6, n_layers=3, positional_embedding=None,
                 operator_type=operator_type, internal_grid="legendre-gauss", internal_scale=2)
    x = torch.randn(1, 2, 33, 64, generator=torch.Generator().manual_seed(0))
    y = model(x).detach()
    shifted = model(torch.roll(x, 8, dims=-1)).detach()  # 8 cells = 4 internal cells
    assert (shifted - torch.roll(y, 8, dims=-1)).abs().max() < 1e-5 * y.abs().max()


def test_training_lowers_the_loss_and_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = SFNO(1, 1, lmax=8, hidden_channels=8, n_layers=2, norm="layer_norm",
                 operator_type="diagonal", conv_bias=True)
    x = torch.randn(4, 1, 9, 16, generator=torch.Generator().manual_seed(1))
    lat = torch.linspace(0, 1, 9)[:, None]
    y = x * lat + 0.1 * x.square()  # latitude-dependent: needs the positional embedding
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


def test_config_rebuilds_the_model_and_checkpoints_round_trip(tmp_path):
    model = SFNO(2, 1, lmax=8, hidden_channels=4, n_layers=2, internal_grid="legendre-gauss",
                 operator_type="driscoll-healy-complex").eval()
    rebuilt = get_model("sfno", **model.config).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(1, 2, 17, 32)
    torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)
    path = tmp_path / "sfno.pt"
    save_model(model, path)
    torch.testing.assert_close(load_model(path).eval()(x), model(x), rtol=0, atol=0)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="internal_grid"):
        SFNO(1, 1, lmax=4, internal_grid="healpix")
    with pytest.raises(ValueError, match="positional_embedding"):
        SFNO(1, 1, lmax=4, positional_embedding="grid")
    with pytest.raises(ValueError, match=r"x must have shape \[B, 1"):
        SFNO(1, 1, lmax=4, hidden_channels=4, n_layers=1)(torch.randn(1, 2, 9, 16))


@pytest.mark.parametrize("name", ["sfno", "local_sfno"])
def test_checkpointed_blocks_give_the_same_gradients(name):
    """checkpoint_blocks recomputes the blocks in the backward pass: outputs and every
    parameter gradient equal those of the plain model (float64), and nothing changes in
    evaluation."""
    from geo_neuralop.models import get_model

    kwargs = dict(in_channels=2, out_channels=2, lmax=8, hidden_channels=6, n_layers=3,
                  internal_grid="legendre-gauss", internal_scale=2)
    if name == "local_sfno":
        kwargs["disco_radius"] = 0.45  # a few cells of the internal 9 x 16 grid
    torch.manual_seed(3)
    plain = get_model(name, **kwargs).double()
    torch.manual_seed(3)
    checked = get_model(name, **kwargs, checkpoint_blocks=True).double()
    assert checked.config["checkpoint_blocks"] is True
    x = torch.randn(2, 2, 17, 32, dtype=torch.float64)
    grads = []
    for model in (plain, checked):
        out = model(x)
        grads.append((out, torch.autograd.grad(out.square().sum(), list(model.parameters()))))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=0, atol=0)
    for a, b in zip(grads[0][1], grads[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    with pytest.raises(TypeError, match="checkpoint_blocks must be a bool"):
        get_model(name, **kwargs, checkpoint_blocks="yes")


@pytest.mark.parametrize("ratio", [0.0, 2.0])
def test_zero_channel_ratio_gives_affine_lifting_and_projection(ratio):
    """Ratio 0 is torch-harmonics' encoder/decoder: one affine map each (superposition
    holds); a positive ratio gives a GELU MLP (superposition fails)."""
    torch.manual_seed(0)
    model = SFNO(1, 2, lmax=6, hidden_channels=5, n_layers=1, positional_embedding=None,
                 lifting_channel_ratio=ratio, projection_channel_ratio=ratio)
    n_linear = 1 if ratio == 0 else 2
    assert sum(1 for m in model.lifting.modules() if type(m).__name__ == "PointwiseLinear") \
        == n_linear
    for mlp, c in ((model.lifting, 1), (model.projection, 5)):
        a, b = torch.randn(2, c, 4, 8), torch.randn(2, c, 4, 8)
        zero = mlp(torch.zeros_like(a))
        lhs = mlp(2.0 * a + b) - zero
        rhs = 2.0 * (mlp(a) - zero) + (mlp(b) - zero)
        assert torch.allclose(lhs, rhs, atol=1e-5) == (ratio == 0)
