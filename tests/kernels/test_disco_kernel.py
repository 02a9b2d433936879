import math

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from geo_neuralop.geometry import (
    PointCloud,
    fibonacci_sphere,
    jittered_rectangle_mesh,
    regular_grid,
    sphere_grid,
)
from geo_neuralop.kernels import DiscoKernel, disco_kernel
from geo_neuralop.layers import DiscoConv

th = pytest.importorskip("torch_harmonics")


def _copy_from(th_conv, conv):
    with torch.no_grad():
        conv.weight.copy_(th_conv.weight)
        th_conv.bias.normal_()
        conv.bias.copy_(th_conv.bias)


CASES = [
    # (grid, in shape, out shape, basis, kernel shape)
    (g, nin, nout, basis, ks)
    for g in ("equiangular", "legendre-gauss")
    for nin, nout in (((32, 64), (32, 64)), ((64, 128), (64, 128)), ((64, 128), (32, 64)))
    for basis, ks in (("piecewise linear", (3, 4)), ("piecewise linear", 3),
                      ("morlet", (3, 3)))
] + [
    # Even radial counts: equal wherever no output point coincides with an input point.
    ("legendre-gauss", (64, 128), (32, 64), "piecewise linear", (4, 3)),
    ("legendre-gauss", (64, 128), (32, 64), "zernike", 3),
]


@pytest.mark.parametrize("grid, nin, nout, basis, ks", CASES)
def test_disco_conv_equals_torch_harmonics(grid, nin, nout, basis, ks):
    torch.manual_seed(0)
    th_conv = th.DiscreteContinuousConvS2(
        4, 6, nin, nout, ks, basis_type=basis, basis_norm_mode="mean",
        grid_in=grid, grid_out=grid, bias=True,
    )
    # torch-harmonics' default cutoff, enlarged by its own (1 + 1e-3) fudge factor
    radius = math.pi / (nout[0] - 1) * (1 + 1e-3)
    conv = DiscoConv(4, 6, ks, basis=basis.replace(" ", "_"), radius=radius)
    _copy_from(th_conv, conv)
    src, dst = sphere_grid(*nin, grid), sphere_grid(*nout, grid)
    x = torch.randn(2, 4, *nin)
    expected = th_conv(x)
    ours = conv(x.flatten(2).transpose(1, 2), src, dst)
    ours = ours.transpose(1, 2).reshape(expected.shape)
    rel = ((ours - expected).norm() / expected.norm()).item()
    assert rel < 3e-5, rel  # the issue asks for 1e-4; both sides compute in float32


def test_mean_normalization_is_invariant_to_weight_scaling(float64):
    mesh = jittered_rectangle_mesh((20, 20), seed=4)
    scaled = PointCloud(mesh.pos, mesh.weights * 7.0, faces=mesh.faces)
    a = disco_kernel(mesh, kernel_shape=(3, 4), radius=0.2, normalization="mean")
    b = disco_kernel(scaled, kernel_shape=(3, 4), radius=0.2, normalization="mean")
    torch.testing.assert_close(a.edge_values, b.edge_values)
    c = disco_kernel(scaled, kernel_shape=(3, 4), radius=0.2, normalization="none")
    d = disco_kernel(mesh, kernel_shape=(3, 4), radius=0.2, normalization="none")
    torch.testing.assert_close(c.edge_values, 7.0 * d.edge_values)


def test_nodal_normalization_gives_unit_absolute_sums(float64):
    cloud = fibonacci_sphere(500)
    k = disco_kernel(cloud, kernel_shape=(3, 4), radius=0.4, normalization="nodal")
    sums = torch.zeros(cloud.num_nodes, k.kernel_size).index_add_(0, k.edge_index[1],
                                                                 k.edge_values.abs())
    torch.testing.assert_close(sums, torch.ones_like(sums))


def test_none_normalization_is_a_quadrature_of_the_basis_integral(float64):
    # sum_j psi_0(x_i, x_j) w_j -> int_disk psi_0 = 2 pi int_0^r (1 - s/dr) s ds with dr = r / 2
    grid = regular_grid((201, 201), domain=(-1.0, 1.0))
    centre = PointCloud(torch.zeros(1, 2), torch.ones(1))
    r = 0.3
    k = disco_kernel(grid, centre, kernel_shape=3, radius=r, normalization="none")
    dr = r / 2
    exact = 2 * math.pi * (dr**2 / 2 - dr**2 / 3)
    assert k.edge_values[:, 0].sum().item() == pytest.approx(exact, rel=1e-3)


def test_periodic_grid_kernel_is_translation_invariant(float64):
    grid = regular_grid((16, 16), periodic=True)
    k = disco_kernel(grid, kernel_shape=(3, 4), radius=0.2)
    per_point = torch.bincount(k.edge_index[1], minlength=grid.num_nodes)
    assert (per_point == per_point[0]).all()  # no boundary: every point has the same stencil
    first = k.edge_values[k.edge_index[1] == 0].sum(0)
    last = k.edge_values[k.edge_index[1] == 255].sum(0)
    torch.testing.assert_close(first, last)


def test_batched_kernels_are_block_diagonal(float64):
    clouds = [jittered_rectangle_mesh((8, 9), seed=1), jittered_rectangle_mesh((12, 7), seed=2)]
    targets = [regular_grid((5, 6)), regular_grid((4, 4))]
    kernels = [disco_kernel(c, t, kernel_shape=(3, 4), radius=0.3)
               for c, t in zip(clouds, targets, strict=True)]
    batch = Batch.from_data_list(kernels)
    assert isinstance(batch, DiscoKernel)
    assert batch.total_src == 72 + 84 and batch.total_dst == 30 + 16
    conv = DiscoConv(3, 2, (3, 4), radius=0.3)
    xs = [torch.randn(c.num_nodes, 3) for c in clouds]
    together = conv(torch.cat(xs), batch)
    separate = torch.cat([conv(x, k) for x, k in zip(xs, kernels, strict=True)])
    torch.testing.assert_close(together, separate)


def test_kernels_are_cached_per_geometry_by_the_layer():
    """No global cache: ``disco_kernel`` builds, the layer keeps one kernel per geometry."""
    grid = sphere_grid(8, 16, "legendre-gauss")
    a = disco_kernel(grid, kernel_shape=(3, 4), radius=0.5)
    again = disco_kernel(grid, kernel_shape=(3, 4), radius=0.5)
    assert a is not again and torch.equal(a.edge_values, again.edge_values)
    conv = DiscoConv(1, 1, (3, 4), radius=0.5, cache_size=2)
    k1 = conv.kernel(grid)
    assert conv.kernel(sphere_grid(8, 16, "legendre-gauss")) is k1  # same geometry, new object
    assert conv.kernel(grid, radius=0.6) is not k1
    assert conv.kernels.builds == 2
    conv.kernel(sphere_grid(9, 16, "legendre-gauss"))  # a third geometry evicts the first
    assert len(conv.kernels) == 2 and conv.kernel(grid) is not k1
    other = DiscoConv(1, 1, (3, 4), radius=0.5)
    assert other.kernel(grid) is not conv.kernel(grid)  # layers do not share kernels


def test_bad_kernel_arguments():
    grid = regular_grid((10, 10))
    sphere = fibonacci_sphere(50)
    with pytest.raises(ValueError, match="dst point index 0 .* has no src point"):
        disco_kernel(grid, PointCloud(torch.tensor([[5.0, 5.0]]), torch.ones(1)), radius=0.1)
    with pytest.raises(ValueError, match="different manifolds"):
        disco_kernel(sphere, regular_grid((3, 3, 3)), radius=0.1)
    with pytest.raises(ValueError, match="src has 2 coordinates per point but dst has 3"):
        disco_kernel(grid, regular_grid((3, 3, 3)), radius=0.1)
    with pytest.raises(ValueError, match="normalization must be one of"):
        disco_kernel(grid, radius=0.2, normalization="sum")
    with pytest.raises(ValueError, match="radius must be positive"):
        disco_kernel(grid, radius=-1.0)
    with pytest.raises(ValueError, match="zero basis functions"):
        disco_kernel(grid, kernel_shape=(0, 3), radius=0.2)
    with pytest.raises(ValueError, match="differential kernel needs dst"):
        disco_kernel(grid, regular_grid((5, 5)), radius=0.3, differential=True)
    with pytest.raises(TypeError, match="src must be a PointCloud"):
        disco_kernel(torch.zeros(3, 2), radius=0.2)


@pytest.mark.parametrize("normalization", ["none", "mean", "nodal"])
def test_allow_empty_rows_for_grid_points_in_holes(normalization):
    """A latent grid over a mesh with a hole: points far from the mesh get empty rows, and
    every other row is the kernel built for the covered points alone."""
    from geo_neuralop.geometry import perforated_rectangle_mesh

    mesh = perforated_rectangle_mesh(0.02, domain=((0.0, 1.0), (0.0, 1.0)),
                                     holes=((0.5, 0.5, 0.25),), dtype=torch.float64)
    grid = regular_grid((21, 21), dtype=torch.float64)
    with pytest.raises(ValueError, match="has no src point within the radius"):
        disco_kernel(mesh, grid, (3, 4), radius=0.08, normalization=normalization)
    kernel = disco_kernel(mesh, grid, (3, 4), radius=0.08, normalization=normalization,
                          allow_empty=True, dtype=torch.float64)
    dense = torch.zeros(grid.num_nodes, mesh.num_nodes, kernel.kernel_size, dtype=torch.float64)
    dense[kernel.edge_index[1], kernel.edge_index[0]] = kernel.edge_values
    covered = torch.unique(kernel.edge_index[1])
    empty = torch.ones(grid.num_nodes, dtype=torch.bool)
    empty[covered] = False
    r = (grid.pos - 0.5).norm(dim=1)
    assert bool((r[empty] < 0.25 - 0.08 + 0.03).all()) and int(empty.sum()) >= 9
    assert dense[empty].abs().sum() == 0
    inner = PointCloud(grid.pos[covered], grid.weights[covered])
    reference = disco_kernel(mesh, inner, (3, 4), radius=0.08, normalization=normalization,
                             dtype=torch.float64)
    ref_dense = torch.zeros(inner.num_nodes, mesh.num_nodes, kernel.kernel_size,
                            dtype=torch.float64)
    ref_dense[reference.edge_index[1], reference.edge_index[0]] = reference.edge_values
    torch.testing.assert_close(dense[covered], ref_dense, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="allow_empty cannot be combined"):
        disco_kernel(mesh, radius=0.08, differential=True, allow_empty=True)


def test_a_radius_covering_most_of_a_large_cloud_is_refused_before_allocating():
    """20k points and a radius over the whole cloud would give ~4e8 edges (tens of GB):
    refused at once, naming the radius and the memory; max_edges= raises the limit."""
    import time

    cloud = regular_grid((200, 100), dtype=torch.float64)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"radius=3 gives about .* kernel edges .* GB"):
        disco_kernel(cloud, radius=3.0)
    assert time.perf_counter() - start < 5.0  # nothing was built
    small = regular_grid((12, 12), dtype=torch.float64)
    with pytest.raises(ValueError, match="max_edges=100"):
        disco_kernel(small, radius=3.0, max_edges=100)
    assert disco_kernel(small, radius=3.0, max_edges=10**6).edge_index.shape[1] == 144**2


def test_numpy_scalar_radius():
    """K06: radius=np.float32(0.1) was refused ('radius must be a number'); NumPy scalars are
    accepted and give the kernel of the equal Python float."""
    grid = regular_grid((10, 10), dtype=torch.float64)
    a = disco_kernel(grid, radius=np.float64(0.25))
    b = disco_kernel(grid, radius=0.25)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.edge_values, b.edge_values)
    assert disco_kernel(grid, radius=np.float32(0.25)).edge_values.shape[1] == 2


@pytest.mark.parametrize("differential,normalization", [(False, "mean"), (False, "nodal"),
                                                        (True, "nodal"), (True, "mean")])
def test_chunked_construction_equals_one_chunk(monkeypatch, differential, normalization):
    """Kernels built from many small chunks of destination points on several threads (the
    way 10^6-point kernels are built) equal the kernel built in one piece."""
    import geo_neuralop.kernels.disco as disco

    cloud = jittered_rectangle_mesh((30, 24), seed=5, dtype=torch.float64)
    args = dict(kernel_shape=(3, 4), radius=0.12, differential=differential,
                normalization=normalization, dtype=torch.float64)
    whole = disco_kernel(cloud, **args)
    monkeypatch.setattr(disco, "EDGE_CHUNK", 97)
    torch.set_num_threads(2)
    try:
        pieces = disco_kernel(cloud, **args)
    finally:
        torch.set_num_threads(1)
    assert torch.equal(whole.edge_index, pieces.edge_index)
    # (the "mean" divisor sums the chunks' norms in another order: round-off)
    torch.testing.assert_close(whole.edge_values, pieces.edge_values, rtol=1e-12, atol=1e-13)


def test_storage_is_32_bit_csr_order_and_basis_major():
    """One index array (int32, sorted by destination then source: CSR order) and the values
    in the kernel's dtype, basis-major: E * (8 + 4 K) bytes."""
    cloud = jittered_rectangle_mesh((20, 20), seed=2)
    kernel = disco_kernel(cloud, kernel_shape=(5, 4), radius=0.15)
    src, dst = kernel.edge_index.long()
    assert kernel.edge_index.dtype == torch.int32 and kernel.edge_values.dtype == torch.float32
    assert bool((dst[1:] > dst[:-1]).logical_or((dst[1:] == dst[:-1]) & (src[1:] > src[:-1]))
                .all())
    assert kernel.edge_values.T.is_contiguous()
    n_edges, k = kernel.edge_values.shape
    assert kernel.nbytes() == n_edges * (8 + 4 * k)


def test_a_radius_per_point_equals_the_fixed_radius_and_needs_nodal_normalization():
    cloud = jittered_rectangle_mesh((16, 12), seed=3, dtype=torch.float64)
    args = dict(kernel_shape=(3, 4), normalization="nodal", dtype=torch.float64)
    fixed = disco_kernel(cloud, radius=0.2, differential=True, **args)
    array = disco_kernel(cloud, radius=torch.full((cloud.num_nodes,), 0.2, dtype=torch.float64),
                         differential=True, **args)
    field = disco_kernel(cloud, radius=lambda pos: 0.2 + 0 * pos[:, 0], differential=True,
                         **args)
    for kernel in (array, field):
        assert torch.equal(kernel.edge_index, fixed.edge_index)
        torch.testing.assert_close(kernel.edge_values, fixed.edge_values, rtol=1e-14, atol=0)
    with pytest.raises(ValueError, match="needs normalization='nodal'"):
        disco_kernel(cloud, radius=torch.full((cloud.num_nodes,), 0.2))
    with pytest.raises(ValueError, match="one value per dst point"):
        disco_kernel(cloud, radius=torch.full((3,), 0.2), normalization="nodal")
    with pytest.raises(TypeError, match="radius must be a number"):
        disco_kernel(cloud, radius="wide", normalization="nodal")


def test_a_growing_radius_is_a_derivative_exact_on_linear_functions():
    """Differential kernels with a radius that grows across the mesh (a graded stencil)
    are still exact on linear functions: every stencil reproduces its first moments."""
    from geo_neuralop.kernels import basis_first_moments, get_basis

    cloud = jittered_rectangle_mesh((24, 24), seed=4, dtype=torch.float64)
    radius = 0.06 + 0.15 * cloud.pos[:, 0]  # x in [0, 1]: radii 0.06 .. 0.21
    kernel = disco_kernel(cloud, kernel_shape=(3, 4), radius=radius, normalization="nodal",
                          differential=True, dtype=torch.float64)
    x, y = cloud.pos.T
    responses = kernel.responses((2 * x - 3 * y + 1)[:, None])[:, :, 0]  # [N, K]
    moments = basis_first_moments(get_basis("piecewise_linear", (3, 4)), 2)  # [K, 2]
    expected = moments @ torch.tensor([2.0, -3.0], dtype=torch.float64)
    torch.testing.assert_close(responses, expected.expand_as(responses), rtol=1e-9, atol=1e-9)
