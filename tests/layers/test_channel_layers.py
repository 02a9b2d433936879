"""Pointwise layers: channel MLP, skip connections, normalizations, positional embeddings."""

import pytest
import torch

from geo_neuralop.geometry import sphere_grid
from geo_neuralop.layers import (
    ChannelMLP,
    GridEmbedding,
    PointwiseLinear,
    SoftGating,
    SphereEmbedding,
    skip_connection,
)
from geo_neuralop.layers.normalization import ChannelLayerNorm, get_norm


def test_pointwise_linear_acts_at_every_point_in_any_dimension():
    layer = PointwiseLinear(3, 5)
    with torch.no_grad():
        layer.bias.normal_()
    for shape in ((7,), (4, 6), (3, 2, 5), ()):
        x = torch.randn(2, 3, *shape)
        expected = torch.einsum("oi,bi...->bo...", layer.weight, x) + layer.bias.view(
            5, *([1] * len(shape)))
        torch.testing.assert_close(layer(x), expected)


def test_channel_mlp_equals_a_per_point_mlp():
    mlp = ChannelMLP(3, 2, hidden_channels=8, n_layers=3, activation="tanh")
    x = torch.randn(2, 3, 5, 4)
    per_point = x.movedim(1, -1)
    for layer in mlp.layers:
        if isinstance(layer, PointwiseLinear):
            per_point = per_point @ layer.weight.T + layer.bias
        else:
            per_point = layer(per_point)
    torch.testing.assert_close(mlp(x), per_point.movedim(-1, 1))


def test_skip_connections():
    x = torch.randn(2, 4, 6, 6)
    assert skip_connection(4, 4, "identity")(x) is x
    assert skip_connection(4, 4, None) is None
    gate = skip_connection(4, 4, "soft-gating")
    assert isinstance(gate, SoftGating)
    with torch.no_grad():
        gate.weight.copy_(torch.tensor([1.0, -2.0, 0.5, 3.0]))
    torch.testing.assert_close(gate(x), x * gate.weight.view(1, 4, 1, 1))
    assert skip_connection(4, 7, "linear")(x).shape == (2, 7, 6, 6)
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        skip_connection(4, 7, "soft-gating")
    with pytest.raises(ValueError, match="skip_type"):
        skip_connection(4, 4, "gated")


def test_normalizations():
    x = torch.randn(3, 4, 5, 6) * 3 + 2
    inst = get_norm("instance_norm", 4)(x)
    assert inst.mean(dim=(2, 3)).abs().max() < 1e-5
    torch.testing.assert_close(inst.var(dim=(2, 3), unbiased=False), torch.ones(3, 4),
                               atol=1e-3, rtol=0)
    layer = get_norm("layer_norm", 4)
    assert isinstance(layer, ChannelLayerNorm)
    out = layer(x)
    assert out.mean(dim=1).abs().max() < 1e-5  # per point over the channels
    assert get_norm(None, 4) is None
    with pytest.raises(ValueError, match="norm"):
        get_norm("batch_norm", 4)


def test_grid_embedding_uses_the_periodic_grid_convention():
    emb = GridEmbedding(3, domain=[(0.0, 2.0), (-1.0, 1.0), (0.0, 1.0)])
    out = emb(torch.zeros(2, 1, 4, 5, 2))
    assert out.shape == (2, 4, 4, 5, 2)
    torch.testing.assert_close(out[0, 1, :, 0, 0], torch.tensor([0.0, 0.5, 1.0, 1.5]))
    torch.testing.assert_close(out[1, 2, 0, :, 0], torch.tensor([-1.0, -0.6, -0.2, 0.2, 0.6]))
    with pytest.raises(ValueError, match="domain has 1 axes but 2 are needed"):
        GridEmbedding(2, domain=[(0.0, 1.0)])


def test_smooth_grid_embedding_has_no_jump_at_the_wrap():
    """With periodic axes: (cos, sin) of the angle on periodic axes, node coordinates (both
    ends included) on the others."""
    emb = GridEmbedding(2, domain=[(0.0, 2.0), (-1.0, 1.0)], periodic=[True, False])
    out = emb(torch.zeros(1, 1, 4, 5))
    assert out.shape == (1, 4, 4, 5) and emb.out_channels_added == 3
    torch.testing.assert_close(out[0, 1, :, 0], torch.tensor([1.0, 0.0, -1.0, 0.0]),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(out[0, 2, :, 0], torch.tensor([0.0, 1.0, 0.0, -1.0]),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(out[0, 3, 0], torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))


@pytest.mark.parametrize("grid", ["equiangular", "legendre-gauss"])
def test_sphere_embedding_matches_the_sphere_grid_points(grid):
    out = SphereEmbedding(grid)(torch.zeros(1, 2, 7, 12, dtype=torch.float64))
    pos = sphere_grid(7, 12, grid, dtype=torch.float64).pos  # [84, 3]
    torch.testing.assert_close(out[0, 2:].reshape(3, -1).T, pos)


def test_zonal_embedding_adds_the_zonal_harmonics_and_agrees_across_grids():
    """Y_0^0 = 1 / sqrt(4 pi), Y_1^0 = sqrt(3 / (4 pi)) cos(theta); the field on a grid
    and on its twice finer equiangular grid agree at the shared latitudes."""
    import math

    from geo_neuralop.geometry.quadrature import colatitude_nodes_and_weights
    from geo_neuralop.layers import ZonalEmbedding

    embed = ZonalEmbedding(2, degrees=6).double()
    x = torch.zeros(1, 2, 9, 16, dtype=torch.float64)
    assert not embed(x).any()  # zero at initialization
    with torch.no_grad():
        embed.weight[0, 0] = 1.0
        embed.weight[1, 1] = 2.0
    out = embed(x)
    theta, _ = colatitude_nodes_and_weights(9, "equiangular")
    expected = 2.0 * math.sqrt(3.0 / (4.0 * math.pi)) * torch.cos(torch.from_numpy(theta))
    torch.testing.assert_close(out[0, 0], torch.full((9, 16), 1.0 / math.sqrt(4.0 * math.pi),
                                                     dtype=torch.float64))
    torch.testing.assert_close(out[0, 1], expected[:, None].expand(9, 16))
    fine = embed(torch.zeros(1, 2, 17, 32, dtype=torch.float64))
    torch.testing.assert_close(fine[0, :, ::2, ::2], out[0])
    with pytest.raises(ValueError, match=r"x must have shape \[B, 2"):
        embed(torch.zeros(1, 3, 9, 16))
    with pytest.raises(ValueError, match="degrees must be a positive int"):
        ZonalEmbedding(2, degrees=0)


def test_sfno_sees_latitude_only_with_a_position_embedding():
    """Without position inputs every SFNO layer commutes with rotations, so a constant
    field maps to a constant field; a zonal embedding makes the output vary with
    latitude, and never with longitude."""
    from geo_neuralop.models import SFNO

    torch.manual_seed(0)
    x = torch.ones(1, 2, 17, 32, dtype=torch.float64)
    plain = SFNO(2, 1, lmax=8, hidden_channels=6, n_layers=2,
                 positional_embedding=None).double()
    out = plain(x)
    assert float(out.max() - out.min()) < 1e-10
    zonal = SFNO(2, 1, lmax=8, hidden_channels=6, n_layers=2,
                 positional_embedding="zonal").double()
    with torch.no_grad():
        zonal.zonal_embedding.weight.normal_()
    out = zonal(x)[0, 0]
    assert float(out.std(dim=0).mean()) > 1e-3  # varies with latitude
    assert float((out - out[:, :1]).abs().max()) < 1e-10  # not with longitude
