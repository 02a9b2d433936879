import math

import pytest
import torch

from geo_neuralop.geometry import (
    fibonacci_sphere,
    icosphere,
    jittered_rectangle_mesh,
    regular_grid,
    sphere_grid,
)
from geo_neuralop.kernels.frames import sphere_frame_angles
from geo_neuralop.kernels.moments import basis_first_moments
from geo_neuralop.layers import GridDifferentialConv, PointDifferentialConv
from tests.conftest import observed_order

# ----------------------------------------------------------------------------- grids


def _stencil_moments(conv):
    """mu[d, o, c] = sum_a a W'[d, o, c, a]: the limit is out_o = sum_{d,c} mu[d,o,c] d_d v_c."""
    half = conv.stencil_size // 2
    offsets = torch.arange(-half, half + 1, dtype=conv.weight.dtype)
    return torch.einsum("docs,s->doc", conv.zero_sum_weight(), offsets)


@pytest.mark.parametrize("n_dim", [1, 2, 3])
def test_grid_differential_conv_converges_to_the_derivative(float64, n_dim):
    torch.manual_seed(0)
    lengths = [2 * math.pi, 1.0, 3.0][:n_dim]
    conv = GridDifferentialConv(2, 3, n_dim=n_dim, domain=[(0.0, length) for length in lengths],
                                periodic=True)
    mu = _stencil_moments(conv).detach()
    sizes = [8, 16, 32, 64] if n_dim < 3 else [8, 16, 32]
    hs, errors = [], []
    for n in sizes:
        axes = [torch.arange(n) * (length / n) for length in lengths]
        grids = torch.meshgrid(*axes, indexing="ij")
        k = [2 * math.pi / length for length in lengths]
        phase = sum(kd * g for kd, g in zip(k, grids, strict=True))
        v = torch.stack([torch.sin(phase), torch.cos(2 * phase)])[None]  # [1, 2, ...]
        dv = torch.stack([torch.stack([kd * torch.cos(phase), -2 * kd * torch.sin(2 * phase)])
                          for kd in k])  # [n_dim, 2, ...]
        exact = torch.einsum("doc,dc...->o...", mu, dv)
        out = conv(v)[0].detach()
        errors.append(((out - exact) ** 2).mean().sqrt().item())
        hs.append(1.0 / n)
    assert observed_order(hs, errors) > 0.95, errors  # first order: O(h) from the stencil


def test_grid_differential_conv_uses_the_physical_grid_width():
    conv = GridDifferentialConv(1, 1, n_dim=2, domain=[(0.0, 2.0), (0.0, 0.5)], periodic=True)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0] = torch.tensor([-0.5, 0.0, 0.5])  # d/dx, central
    for shape in [(32, 16), (128, 64), (64, 256)]:
        x = torch.arange(shape[0]) * 2.0 / shape[0]
        v = torch.sin(math.pi * x)[:, None].expand(shape)
        out = conv(v[None, None])[0, 0]
        exact = math.pi * torch.cos(math.pi * x)[:, None].expand(shape)
        assert (out - exact).abs().max() < 2 * (math.pi * 2.0 / shape[0]) ** 2


def test_grid_boundaries_are_applied():
    v = torch.linspace(0.0, 1.0, 11)[None, None]  # v = x on [0, 1], h = 0.1
    outputs = {}
    for boundary in ("zero", "reflect", "replicate", "periodic"):
        if boundary == "periodic":
            conv = GridDifferentialConv(1, 1, n_dim=1, periodic=True)
        else:
            conv = GridDifferentialConv(1, 1, n_dim=1, periodic=False, padding=boundary)
        with torch.no_grad():
            conv.weight.copy_(torch.tensor([[[[-0.5, 0.0, 0.5]]]]))
        outputs[boundary] = conv(v)[0, 0]
        assert conv.grid((11,)).spacing == ((0.1,) if boundary != "periodic" else (1 / 11,))
    for boundary in ("zero", "reflect", "replicate"):  # interior: exact derivative 1
        torch.testing.assert_close(outputs[boundary][1:-1], torch.ones(9))
    # at x = 1: zero pad (0 - 0.9) / 0.2, reflect (0.9 - 0.9) / 0.2, replicate (1 - 0.9) / 0.2
    assert outputs["zero"][-1].item() == pytest.approx(-4.5)
    assert outputs["reflect"][-1].item() == pytest.approx(0.0, abs=1e-6)
    assert outputs["replicate"][-1].item() == pytest.approx(0.5)
    # periodic wraps: at x = 1 the right neighbour is v(0) = 0, h = 1/11
    assert outputs["periodic"][-1].item() == pytest.approx((0.0 - 0.9) / 2 * 11)


def test_grid_differential_conv_annihilates_constants_and_checks_input():
    conv = GridDifferentialConv(2, 4, n_dim=2, periodic=(True, False), padding="replicate")
    out = conv(torch.full((3, 2, 16, 9), 5.0))
    assert out.abs().max() < 1e-5
    with pytest.raises(ValueError, match="x has 3 channels"):
        conv(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"shape \[B, C, n, n\]"):
        conv(torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="padding must be one of"):
        GridDifferentialConv(1, 1, n_dim=1, periodic=False, padding="mirror")
    with pytest.raises(ValueError, match="odd"):
        GridDifferentialConv(1, 1, n_dim=1, stencil_size=4)


# ----------------------------------------------------------------------- point clouds


def _planar_field(pos):
    x, y = pos.T
    return torch.sin(2 * x + y), torch.stack([2 * torch.cos(2 * x + y), torch.cos(2 * x + y)], 1)


def test_point_differential_kernel_is_exact_for_linear_fields(float64):
    mesh = jittered_rectangle_mesh((25, 25), jitter=0.3, seed=3)
    conv = PointDifferentialConv(1, 1, (3, 4), radius=3 / 24)
    kernel = conv.build_kernel(mesh)
    moments = basis_first_moments(conv.basis, 2)
    x, y = mesh.pos.T
    responses = kernel.responses((2 * x - y + 3)[:, None])[:, :, 0]
    exact = (torch.tensor([2.0, -1.0]) @ moments.T).expand_as(responses)
    torch.testing.assert_close(responses, exact, atol=1e-10, rtol=0)  # boundary points too
    constant = kernel.responses(torch.ones(mesh.num_nodes, 1))
    assert constant.abs().max() < 1e-12


@pytest.mark.parametrize("kind", ["irregular", "grid"])
def test_point_differential_conv_converges_on_planar_clouds(float64, kind):
    conv = PointDifferentialConv(1, 1, (3, 4), radius=1.0)
    moments = basis_first_moments(conv.basis, 2)
    hs, errors = [], []
    for n in (33, 65, 129):
        cloud = (jittered_rectangle_mesh((n, n), jitter=0.3, seed=n) if kind == "irregular"
                 else regular_grid((n, n)))
        h = 1.0 / (n - 1)
        conv.radius = 3 * h
        v, grad = _planar_field(cloud.pos)
        responses = conv.build_kernel(cloud).responses(v[:, None])[:, :, 0]
        err = ((responses - grad @ moments.T) ** 2 * cloud.weights[:, None]).sum().sqrt()
        hs.append(h)
        errors.append(err.item())
    assert observed_order(hs, errors) > 0.9, errors


def _tangent_gradient(cloud):
    x, y, z = cloud.pos.T
    v = torch.exp(x) * torch.sin(2 * y) + z**2
    g = torch.stack([torch.exp(x) * torch.sin(2 * y), 2 * torch.exp(x) * torch.cos(2 * y),
                     2 * z], 1)
    colat, lon = (torch.from_numpy(a) for a in sphere_frame_angles(cloud))
    e_south = torch.stack([torch.cos(colat) * torch.cos(lon), torch.cos(colat) * torch.sin(lon),
                           -torch.sin(colat)], 1)
    e_east = torch.stack([-torch.sin(lon), torch.cos(lon), torch.zeros_like(lon)], 1)
    return v, torch.stack([(g * e_south).sum(1), (g * e_east).sum(1)], 1)


@pytest.mark.parametrize("rule", ["icosphere", "fibonacci", "legendre-gauss"])
def test_point_differential_conv_converges_on_the_sphere(float64, rule):
    conv = PointDifferentialConv(1, 1, (3, 4), radius=1.0)
    moments = basis_first_moments(conv.basis, 2)
    families = {
        "icosphere": lambda s: icosphere(s),
        "fibonacci": lambda s: fibonacci_sphere(10 * 4**s + 2),
        "legendre-gauss": lambda s: sphere_grid(2 ** (s + 1), 2 ** (s + 2), "legendre-gauss"),
    }
    hs, errors = [], []
    for s in (3, 4, 5):
        cloud = families[rule](s)
        h = math.sqrt(4 * math.pi / cloud.num_nodes)
        conv.radius = 3 * h
        v, grad = _tangent_gradient(cloud)
        responses = conv.build_kernel(cloud).responses(v[:, None])[:, :, 0]
        err = ((responses - grad @ moments.T) ** 2 * cloud.weights[:, None]).sum().sqrt()
        hs.append(h)
        errors.append(err.item())
    assert observed_order(hs, errors) > 0.95, errors


def test_point_differential_conv_layer_and_errors(float64):
    mesh = jittered_rectangle_mesh((12, 12), seed=1)
    conv = PointDifferentialConv(2, 3, (3, 4), radius=0.3)
    out = conv(torch.ones(2, mesh.num_nodes, 2), mesh)
    assert out.abs().max() < 1e-10  # constants are annihilated, no bias by default
    from geo_neuralop.kernels import disco_kernel

    with pytest.raises(ValueError, match="differential=True"):
        conv(torch.ones(mesh.num_nodes, 2), disco_kernel(mesh, kernel_shape=(3, 4), radius=0.3))
    with pytest.raises(ValueError, match="do not span"):
        line = regular_grid((20, 2), domain=[(0.0, 1.0), (0.0, 0.001)])
        PointDifferentialConv(1, 1, radius=0.0005).build_kernel(line)
