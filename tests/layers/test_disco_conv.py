import math

import numpy as np
import pytest
import torch

from geo_neuralop.geometry import (
    PointCloud,
    fibonacci_sphere,
    icosphere,
    jittered_rectangle_mesh,
    regular_grid,
    sphere_grid,
)
from geo_neuralop.kernels import disco_kernel
from geo_neuralop.layers import DiscoConv
from tests.conftest import observed_order


def _random_planar(n, seed):
    gen = torch.Generator().manual_seed(seed)
    return PointCloud(torch.rand(n, 2, generator=gen, dtype=torch.float64),
                      torch.full((n,), 1.0 / n, dtype=torch.float64))


def _random_sphere(n, seed):
    gen = torch.Generator().manual_seed(seed)
    pos = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen, dtype=torch.float64),
                                        dim=1)
    return PointCloud(pos, torch.full((n,), 4 * math.pi / n, dtype=torch.float64), "sphere")


CLOUDS = {
    "planar": (lambda: (_random_planar(300, 1), _random_planar(120, 2)), 0.15),
    "periodic": (lambda: (regular_grid((20, 16), periodic=True, dtype=torch.float64),) * 2, 0.2),
    "sphere": (lambda: (_random_sphere(400, 3), _random_sphere(150, 4)), 0.4),
    "sphere-grid": (lambda: (sphere_grid(16, 32, "equiangular", dtype=torch.float64),
                             sphere_grid(8, 16, "equiangular", dtype=torch.float64)), 0.45),
}


@pytest.mark.parametrize("name", sorted(CLOUDS))
@pytest.mark.parametrize("basis, shape", [("piecewise_linear", (3, 4)), ("morlet", (2, 3))])
@pytest.mark.parametrize("groups", [1, 2])
def test_fast_path_equals_dense_reference_forward_and_gradients(name, basis, shape, groups):
    make, radius = CLOUDS[name]
    src, dst = make()
    torch.manual_seed(0)
    conv = DiscoConv(4, 6, shape, basis=basis, radius=radius, groups=groups).double()
    kernel = conv.build_kernel(src, dst)
    x = torch.randn(3, src.num_nodes, 4, dtype=torch.float64, requires_grad=True)
    fast = conv(x, kernel)
    ref = conv.forward_reference(x, kernel)
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-12)
    seed = torch.randn_like(fast)
    g_fast = torch.autograd.grad((fast * seed).sum(), [x, conv.weight, conv.bias])
    g_ref = torch.autograd.grad((ref * seed).sum(), [x, conv.weight, conv.bias])
    for a, b in zip(g_fast, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        assert a.abs().sum() > 0


def test_gradcheck_through_the_sparse_product():
    src, dst = _random_planar(40, 5), _random_planar(15, 6)
    conv = DiscoConv(2, 2, (3, 4), radius=0.3).double()
    kernel = conv.build_kernel(src, dst)
    x = torch.randn(2, 40, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: conv(v, kernel), (x,))


def test_unbatched_input_and_float32(float64):
    grid = sphere_grid(8, 16, "legendre-gauss")
    conv = DiscoConv(3, 5, (3, 4), radius=0.6)
    kernel = conv.build_kernel(grid)
    x = torch.randn(grid.num_nodes, 3)
    torch.testing.assert_close(conv(x, kernel), conv(x[None], kernel)[0])
    out64 = conv(x, kernel)
    out32 = conv.float()(x.float(), kernel)  # the kernel's CSR is rebuilt in float32
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), out64, rtol=1e-5, atol=1e-5)


def _planar_input(cloud):
    x, y = cloud.pos.T
    return torch.stack([torch.sin(2 * x) * torch.cos(3 * y),
                        torch.exp(-4 * ((x - 0.4) ** 2 + (y - 0.6) ** 2))], 1)[None]


def test_outputs_on_different_meshes_agree_better_under_refinement(float64):
    """Two unrelated irregular meshes and a grid of the unit square: outputs at fixed points
    converge to each other (observed order about 2.3-2.5)."""
    torch.manual_seed(0)
    conv = DiscoConv(2, 3, (3, 4), radius=0.15)
    probes = regular_grid((21, 21))
    hs, mesh_vs_mesh, mesh_vs_grid = [], [], []
    for n in (17, 33, 65, 129):
        a = jittered_rectangle_mesh((n, n), jitter=0.3, seed=1)
        b = jittered_rectangle_mesh((n, n), jitter=0.3, seed=2)
        g = regular_grid((n, n))
        out = [conv(_planar_input(c), conv.build_kernel(c, probes))[0] for c in (a, b, g)]

        def dist(u, v):
            return ((u - v) ** 2 * probes.weights[:, None]).sum().sqrt().item()

        hs.append(1.0 / (n - 1))
        mesh_vs_mesh.append(dist(out[0], out[1]))
        mesh_vs_grid.append(dist(out[0], out[2]))
    assert observed_order(hs[1:], mesh_vs_mesh[1:]) > 2.0, mesh_vs_mesh
    assert observed_order(hs[1:], mesh_vs_grid[1:]) > 2.0, mesh_vs_grid
    assert mesh_vs_mesh[-1] < 2e-3 and mesh_vs_grid[-1] < 2e-3


@pytest.mark.parametrize("rule", ["equiangular", "legendre-gauss", "icosphere", "fibonacci"])
def test_sphere_outputs_converge_across_quadrature_rules(float64, rule):
    torch.manual_seed(0)
    conv = DiscoConv(2, 3, (3, 4), radius=0.3)
    probes = fibonacci_sphere(300)

    def inputs(c):
        x, y, z = c.pos.T
        return torch.stack([torch.exp(x) * torch.sin(2 * y) + z, torch.cos(3 * z)], 1)[None]

    fine = sphere_grid(192, 384, "legendre-gauss")
    reference = conv(inputs(fine), conv.build_kernel(fine, probes))[0]
    families = {
        "equiangular": lambda s: sphere_grid(16 * 2**s, 32 * 2**s, "equiangular"),
        "legendre-gauss": lambda s: sphere_grid(16 * 2**s, 32 * 2**s, "legendre-gauss"),
        "icosphere": lambda s: icosphere(s + 3),
        "fibonacci": lambda s: fibonacci_sphere(10 * 4 ** (s + 3) + 2),
    }
    hs, errors = [], []
    for s in range(3):
        cloud = families[rule](s)
        out = conv(inputs(cloud), conv.build_kernel(cloud, probes))[0]
        errors.append(((out - reference) ** 2 * probes.weights[:, None]).sum().sqrt().item())
        hs.append(math.sqrt(4 * math.pi / cloud.num_nodes))
    assert observed_order(hs, errors) > 1.8, errors
    assert errors[-1] < 0.03 * reference.norm().item() / math.sqrt(300 / (4 * math.pi))


def test_layer_bad_input():
    grid = regular_grid((8, 8))
    conv = DiscoConv(3, 4, (3, 4), radius=0.3)
    kernel = conv.build_kernel(grid)
    with pytest.raises(ValueError, match="x has 2 channels but the layer expects 3"):
        conv(torch.randn(1, 64, 2), kernel)
    with pytest.raises(ValueError, match="x has 60 points but the kernel's source cloud has 64"):
        conv(torch.randn(1, 60, 3), kernel)
    with pytest.raises(ValueError, match="kernel has 6 basis functions but the layer has 5"):
        conv(torch.randn(1, 64, 3), disco_kernel(grid, kernel_shape=(4, 3), radius=0.3))
    with pytest.raises(ValueError, match=r"shape \[B, N_src, C\]"):
        conv(torch.randn(64), kernel)
    with pytest.raises(ValueError, match="divisible by groups"):
        DiscoConv(3, 4, groups=2)
    with pytest.raises(ValueError, match="radius must be a finite positive number"):
        DiscoConv(3, 4, radius=0.0)
    with pytest.raises(TypeError, match="src must be a PointCloud, a PyG Batch of them or a "
                                        "DiscoKernel"):
        conv(torch.randn(1, 64, 3), "grid")
    with pytest.raises(TypeError, match="x must be a floating point tensor"):
        conv(torch.ones(1, 64, 3, dtype=torch.int64), grid)
    with pytest.raises(ValueError, match="built with radius=None, so every call must give"):
        DiscoConv(3, 4, radius=None)(torch.randn(1, 64, 3), grid)
    with pytest.raises(ValueError, match="needs a kernel built with differential=False"):
        conv(torch.randn(1, 64, 3), disco_kernel(grid, kernel_shape=(3, 4), radius=0.3,
                                                 differential=True))
    half = conv(torch.randn(1, 64, 3).half(), grid)  # computed in float32, cast back
    assert half.dtype == torch.float16 and torch.isfinite(half).all()
    assert np.isfinite(conv(torch.randn(1, 64, 3), kernel).detach().numpy()).all()


def test_a_kernel_of_another_cloud_with_the_same_point_count_is_refused():
    """K28: a prebuilt kernel of another mesh with the same number of points was applied
    silently. Kernels carry fingerprints of their clouds, checked where the clouds are given."""
    a = jittered_rectangle_mesh((10, 10), seed=1)
    b = jittered_rectangle_mesh((10, 10), seed=2)  # same point count, other positions
    assert a.num_nodes == b.num_nodes
    conv = DiscoConv(2, 3, (3, 4), radius=0.25)
    kernel_a = conv.build_kernel(a)
    x = torch.randn(a.num_nodes, 2)
    torch.testing.assert_close(conv(x, a, kernel=kernel_a), conv(x, a))
    with pytest.raises(ValueError, match="kernel 0 was built for another src geometry than "
                                         "src cloud 0"):
        conv(x, b, kernel=kernel_a)
    # the same positions with other weights, or periodic instead of not, differ too
    c = PointCloud(a.pos, a.weights * 2.0, faces=a.faces)
    with pytest.raises(ValueError, match="another src geometry"):
        conv(x, c, kernel=kernel_a)
    grid, periodic = regular_grid((8, 8)), regular_grid((8, 8), periodic=True)
    with pytest.raises(ValueError, match="another src geometry"):
        conv(torch.randn(64, 2), regular_grid((8, 8), domain=(0.0, 2.0)),
             kernel=conv.build_kernel(grid))
    assert conv.build_kernel(periodic).src_fingerprint != conv.build_kernel(grid).src_fingerprint
    # a kernel onto another destination cloud is checked on both sides
    onto = conv.build_kernel(a, grid)
    conv(x, a, grid, kernel=onto)
    with pytest.raises(ValueError, match="another dst geometry than dst cloud 0"):
        conv(x, a, periodic, kernel=onto)
    with pytest.raises(ValueError, match="radius 0.25, not 0.3"):
        conv(x, a, kernel=kernel_a, radius=0.3)
    unmarked = disco_kernel(a, kernel_shape=(3, 4), radius=0.25)
    del unmarked.src_fingerprint
    with pytest.raises(ValueError, match="carries no geometry fingerprint"):
        conv(x, a, kernel=unmarked)


def test_float64_and_bfloat16_inputs_to_a_float32_layer():
    """K21: a float64 input to a float32 layer failed in the matmul; it now runs in float64 and
    equals the float64 layer. K20/K22 (float16, int64) are checked in test_layer_bad_input."""
    mesh = jittered_rectangle_mesh((8, 8), seed=3, dtype=torch.float64)
    conv = DiscoConv(2, 3, (3, 4), radius=0.3)
    x = torch.randn(mesh.num_nodes, 2, dtype=torch.float64)
    out = conv(x, mesh)
    assert out.dtype == torch.float64
    double = DiscoConv(2, 3, (3, 4), radius=0.3).double()
    double.load_state_dict(conv.state_dict())
    torch.testing.assert_close(out, double(x, mesh), rtol=1e-12, atol=1e-12)
    low = conv(x.to(torch.bfloat16), mesh)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.double(), out, rtol=0.05, atol=0.05)
