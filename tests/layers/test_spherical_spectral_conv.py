"""SphericalSpectralConv: equals an independent reference built from scipy's spherical harmonics,
commutes with longitude shifts (all operator types) and with general rotations (per-degree
real weights), runs at several resolutions and between different grids."""

import numpy as np
import pytest
import torch

from geo_neuralop.geometry import sphere_grid
from geo_neuralop.layers import SphericalSpectralConv
from tests.geometry.sph_harm import real_sph_harm_matrix

DEGREE = 8  # band limit of the test fields


def _grid_points(nlat: int, nlon: int, grid: str) -> np.ndarray:
    return sphere_grid(nlat, nlon, grid, dtype=torch.float64).pos.numpy()


def _coefficients(channels: int, seed: int = 0) -> np.ndarray:
    """Random real-SH coefficients [C, (DEGREE + 1)^2] (scipy ordering l, m = -l..l)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((channels, (DEGREE + 1) ** 2))


def _field(coeffs: np.ndarray, pos: np.ndarray, shape) -> torch.Tensor:
    values = real_sph_harm_matrix(pos, DEGREE) @ coeffs.T  # [N, C]
    return torch.as_tensor(values.T.reshape(1, coeffs.shape[0], *shape))


def _degrees_orders():
    lm = [(l, m) for l in range(DEGREE + 1) for m in range(-l, l + 1)]
    return np.array([l for l, _ in lm]), np.array([m for _, m in lm])


def _reference_coefficients(conv: SphericalSpectralConv, coeffs: np.ndarray) -> np.ndarray:
    """Output coefficients [C_out, (DEGREE+1)^2] by the definition of each operator type.

    A complex weight w = alpha + i beta multiplies the e^{i m phi} component, so on the real pair
    (P cos m phi, P sin m phi): cos -> alpha cos - beta sin, sin -> beta cos + alpha sin.
    """
    ls, ms = _degrees_orders()
    w = conv.weight.detach().double().numpy()
    out = np.zeros((conv.out_channels, coeffs.shape[1]))
    index = {(l, m): j for j, (l, m) in enumerate(zip(ls, ms, strict=True))}
    for j, (l, m) in enumerate(zip(ls, ms, strict=True)):
        if conv.operator_type == "driscoll-healy":
            out[:, j] = coeffs[:, j] @ w[:, :, l]
            continue
        wc = w[:, :, l] if conv.operator_type == "driscoll-healy-complex" else w[:, :, l, abs(m)]
        alpha, beta = wc[..., 0], wc[..., 1]
        if m == 0:
            out[:, j] = coeffs[:, j] @ alpha
        elif m > 0:  # cos-type: alpha a_cos + beta a_sin
            out[:, j] = coeffs[:, j] @ alpha + coeffs[:, index[(l, -m)]] @ beta
        else:  # sin-type: -beta a_cos + alpha a_sin
            out[:, j] = -coeffs[:, index[(l, -m)]] @ beta + coeffs[:, j] @ alpha
    return out


@pytest.mark.parametrize("operator_type", ["driscoll-healy", "driscoll-healy-complex", "diagonal"])
@pytest.mark.parametrize(
    ("grid_in", "shape_in", "grid_out", "shape_out"),
    [
        ("legendre-gauss", (16, 32), "legendre-gauss", (16, 32)),
        ("legendre-gauss", (32, 64), "legendre-gauss", (32, 64)),
        ("equiangular", (33, 64), "legendre-gauss", (18, 40)),
        ("legendre-gauss", (12, 24), "equiangular", (41, 80)),
    ],
)
def test_equals_scipy_spherical_harmonic_reference(float64, operator_type, grid_in, shape_in,
                                                   grid_out, shape_out):
    torch.manual_seed(0)
    conv = SphericalSpectralConv(3, 2, lmax=12, grid=grid_in, out_grid=grid_out,
                                 operator_type=operator_type)
    coeffs = _coefficients(3)
    x = _field(coeffs, _grid_points(*shape_in, grid_in), shape_in)
    out = conv(x, output_shape=shape_out).detach()
    expected = _field(_reference_coefficients(conv, coeffs), _grid_points(*shape_out, grid_out),
                      shape_out)
    assert (out - expected).abs().max() < 1e-11 * expected.abs().max()


@pytest.mark.parametrize("operator_type", ["driscoll-healy", "driscoll-healy-complex", "diagonal"])
def test_commutes_with_longitude_shifts_to_float_precision(operator_type):
    conv = SphericalSpectralConv(4, 3, lmax=10, operator_type=operator_type, bias=True)
    x = torch.randn(2, 4, 17, 32, generator=torch.Generator().manual_seed(1))  # not band-limited
    y = conv(x)
    for shift in (1, 5, 16):
        shifted = conv(torch.roll(x, shift, dims=-1))
        err = (shifted - torch.roll(y, shift, dims=-1)).abs().max()
        assert err < 1e-5 * y.abs().max(), (shift, err)
    # between grids: a shift by 2 input cells is a shift by 1 cell of a half-as-wide output
    down = SphericalSpectralConv(4, 3, lmax=8, grid="equiangular", out_grid="legendre-gauss",
                                 operator_type=operator_type)
    y = down(x, output_shape=(8, 16))
    err = (down(torch.roll(x, 6, dims=-1), output_shape=(8, 16)) - torch.roll(y, 3, dims=-1))
    assert err.abs().max() < 1e-5 * y.abs().max()


@pytest.mark.parametrize("operator_type", ["driscoll-healy", "driscoll-healy-complex", "diagonal"])
@pytest.mark.parametrize(
    ("grid_in", "shape_in", "grid_out", "shape_out"),
    [("equiangular", (17, 32), "equiangular", (17, 32)),
     ("equiangular", (25, 48), "legendre-gauss", (12, 24)),
     ("legendre-gauss", (16, 33), "equiangular", (31, 64))],
)
def test_fast_path_equals_torch_harmonics_reference_path(float64, operator_type, grid_in,
                                                         shape_in, grid_out, shape_out):
    """forward (batched Legendre products) == forward_reference (RealSHT, einsum, InverseRealSHT),
    values and gradients, on grids that change resolution, parity and latitude rule."""
    conv = SphericalSpectralConv(3, 4, lmax=12, mmax=10 if operator_type == "diagonal" else None,
                                 grid=grid_in, out_grid=grid_out, operator_type=operator_type,
                                 bias=True)
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 3, *shape_in, generator=torch.Generator().manual_seed(3),
                    requires_grad=True)
    fast = conv(x, output_shape=shape_out)
    ref = conv.forward_reference(x, output_shape=shape_out)
    assert (fast - ref).abs().max() < 1e-12 * ref.abs().max()
    g_fast = torch.autograd.grad(fast.square().sum(), [x, conv.weight, conv.bias])
    g_ref = torch.autograd.grad(ref.square().sum(), [x, conv.weight, conv.bias])
    for a, b in zip(g_fast, g_ref, strict=True):
        assert (a - b).abs().max() < 1e-11 * b.abs().max()


def _rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_per_degree_real_weights_commute_with_every_rotation(float64):
    """T(f o R^T) = (T f) o R^T for band-limited f, with T f read off the layer's own output."""
    torch.manual_seed(0)
    shape = (16, 32)
    pos = _grid_points(*shape, "legendre-gauss")
    conv = SphericalSpectralConv(2, 2, lmax=16, grid="legendre-gauss")
    coeffs = _coefficients(2, seed=3)
    basis = real_sph_harm_matrix(pos, DEGREE)
    out = conv(_field(coeffs, pos, shape)).detach()[0].reshape(2, -1).numpy()
    out_coeffs = np.linalg.lstsq(basis, out.T, rcond=None)[0].T  # T f is band-limited too
    assert np.abs(basis @ out_coeffs.T - out.T).max() < 1e-11
    for seed in (0, 1):
        rot = _rotation(seed)
        rotated_pos = pos @ rot  # rows R^T x
        f_rot = _field(coeffs, rotated_pos, shape)
        got = conv(f_rot).detach()
        expected = _field(out_coeffs, rotated_pos, shape)
        assert (got - expected).abs().max() < 1e-11 * expected.abs().max()
    # the complex per-degree weights are not rotation-equivariant (only about the polar axis)
    conv_c = SphericalSpectralConv(2, 2, lmax=16, grid="legendre-gauss",
                                   operator_type="driscoll-healy-complex")
    out = conv_c(_field(coeffs, pos, shape)).detach()[0].reshape(2, -1).numpy()
    out_coeffs = np.linalg.lstsq(basis, out.T, rcond=None)[0].T
    rotated_pos = pos @ _rotation(0)
    err = conv_c(_field(coeffs, rotated_pos, shape)).detach() - _field(out_coeffs, rotated_pos,
                                                                       shape)
    assert err.abs().max() > 1e-3


def test_transform_resamples_band_limited_fields_exactly(float64):
    conv = SphericalSpectralConv(1, 1, lmax=16, grid="equiangular", out_grid="legendre-gauss")
    coeffs = _coefficients(2)
    x = _field(coeffs, _grid_points(33, 64, "equiangular"), (33, 64))
    expected = _field(coeffs, _grid_points(16, 32, "legendre-gauss"), (16, 32))
    assert (conv.transform(x, output_shape=(16, 32)) - expected).abs().max() < 1e-12
    same = SphericalSpectralConv(1, 1, lmax=16)
    assert same.transform(x) is x


def test_gradients_reach_every_parameter_and_cache_is_outside_the_state_dict():
    conv = SphericalSpectralConv(3, 3, lmax=8, operator_type="diagonal", bias=True)
    for shape in ((9, 16), (17, 32)):
        conv.zero_grad()
        conv(torch.randn(2, 3, *shape)).square().mean().backward()
        for name, p in conv.named_parameters():
            assert p.grad is not None and p.grad.abs().max() > 0, name
    assert set(conv.state_dict()) == {"weight", "bias"}


def test_invalid_arguments():
    with pytest.raises(ValueError, match="operator_type"):
        SphericalSpectralConv(1, 1, lmax=4, operator_type="block-diagonal")
    with pytest.raises(ValueError, match="grid"):
        SphericalSpectralConv(1, 1, lmax=4, grid="healpix")
    with pytest.raises(ValueError, match="mmax"):
        SphericalSpectralConv(1, 1, lmax=4, mmax=5)
    conv = SphericalSpectralConv(2, 1, lmax=4)
    with pytest.raises(ValueError, match=r"x must have shape \[B, 2"):
        conv(torch.randn(1, 3, 9, 16))
    with pytest.raises(ValueError, match="output_shape"):
        conv(torch.randn(1, 2, 9, 16), output_shape=(9,))


def test_layers_of_a_model_share_one_legendre_table_per_grid_and_no_torch_harmonics_tables():
    """SFNO's blocks hold one Legendre table per grid: the first block's synthesis onto
    the internal grid, the internal blocks' analysis and synthesis and the last block's
    analysis are one tensor (at 0.25 degrees a table takes 0.19-0.38 GB); torch-harmonics'
    memo of float64 tables stays empty."""
    import gc

    from torch_harmonics import legendre

    from geo_neuralop.models import SFNO

    model = SFNO(2, 2, lmax=8, hidden_channels=4, n_layers=4, internal_grid="legendre-gauss",
                 internal_scale=2)
    model(torch.randn(1, 2, 17, 32))
    convs = [block.conv for block in model.blocks]
    assert len({id(c.operator_cache) for c in convs}) == 1
    cpu = torch.device("cpu")
    shapes = [((17, 32), (9, 16)), ((9, 16), (9, 16)), ((9, 16), (9, 16)), ((9, 16), (17, 32))]
    ops = [c.legendre_operators(i, o, torch.float32, cpu) for c, (i, o) in
           zip(convs, shapes, strict=True)]
    internal = ops[1][0]
    assert ops[0][2] is internal and ops[1][2] is internal and ops[2][0] is internal
    assert ops[3][0] is internal and ops[3][2] is ops[0][0] is not internal
    assert len(convs[0].operator_cache) == 2  # the input grid's table and the internal grid's
    gc.collect()
    tables = [o for o in gc.get_objects() if isinstance(o, torch.Tensor)
              and o.dtype == torch.float64 and o.dim() == 3 and o.shape[-1] in (9, 17)]
    assert not tables
    cached = [c.cell_contents for c in legendre._precompute_legpoly.__closure__
              if hasattr(c.cell_contents, "cache_info")]
    assert cached and cached[0].cache_info().currsize == 0
