"""LocalSFNO: spherical spectral blocks with sphere DISCO and differential terms."""

import math

import pytest
import torch

from geo_neuralop.geometry import sphere_grid
from geo_neuralop.layers import SphereDiscoConv
from geo_neuralop.models import SFNO, LocalSFNO
from tests.conftest import memory_cap


def sphere_field(nlat: int, nlon: int, grid: str = "equiangular") -> tuple[torch.Tensor, object]:
    cloud = sphere_grid(nlat, nlon, grid, dtype=torch.float64)
    x, y, z = cloud.pos.T
    return (torch.exp(x) * torch.sin(2 * y) + z**2).reshape(1, 1, nlat, nlon), cloud


def test_equivariant_to_longitude_shifts():
    """Every layer commutes with rotations about the polar axis by a grid step."""
    torch.manual_seed(0)
    model = LocalSFNO(2, 2, lmax=10, hidden_channels=6, n_layers=2, grid="legendre-gauss",
                      positional_embedding=None).double().eval()
    x = torch.randn(1, 2, 20, 40, dtype=torch.float64)
    with torch.no_grad():
        rolled_then_model = model(torch.roll(x, 8, dims=-1))
        model_then_rolled = torch.roll(model(x), 8, dims=-1)
    torch.testing.assert_close(rolled_then_model, model_then_rolled, rtol=1e-9, atol=1e-10)


def test_local_terms_change_the_operator_and_train():
    torch.manual_seed(0)
    local = LocalSFNO(2, 1, lmax=8, hidden_channels=6, n_layers=2, disco_radius=math.pi / 6)
    torch.manual_seed(0)
    plain = SFNO(2, 1, lmax=8, hidden_channels=6, n_layers=2)
    plain.load_state_dict({k: v for k, v in local.state_dict().items()
                           if ".local." not in k})
    x = torch.randn(3, 2, 16, 32)
    assert (local(x) - plain(x)).abs().max() > 1e-3  # the local terms contribute
    target = 0.5 * x[:, :1] - x[:, 1:]
    loss = torch.nn.functional.mse_loss(local(x), target)
    loss.backward()
    dead = [n for n, p in local.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not dead, dead
    optimizer = torch.optim.Adam(local.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        step = torch.nn.functional.mse_loss(local(x), target)
        step.backward()
        optimizer.step()
        losses.append(step.item())
    assert losses[-1] < 0.5 * losses[0]


def test_internal_grid_and_bad_arguments():
    torch.manual_seed(0)
    model = LocalSFNO(1, 1, lmax=8, hidden_channels=4, n_layers=3, internal_scale=2,
                      internal_grid="legendre-gauss", disco_radius=math.pi / 8)
    assert model(torch.randn(1, 1, 33, 64)).shape == (1, 1, 33, 64)
    with pytest.raises(ValueError, match="disco_radius must be an angle"):
        LocalSFNO(1, 1, lmax=8, disco_radius=4.0)
    with pytest.raises(ValueError, match="diff_layers must be a bool or 4 bools"):
        LocalSFNO(1, 1, lmax=8, diff_layers=[True, False])
    with pytest.raises(ValueError, match="do not span its 2 directions"):
        LocalSFNO(1, 1, lmax=4, disco_radius=0.05, n_layers=1)(torch.randn(1, 1, 8, 16))


@pytest.mark.slow
def test_discretization_agnostic_under_refinement():
    """Fixed weights, the same smooth field on nested equiangular grids 33x64, 65x128 and
    129x256: quadrature-weighted relative differences to the finest output shrink (measured
    0.019 and 0.0041; SFNO alone: 5e-7 and 1e-12). About 3 minutes (kernel construction)."""
    torch.manual_seed(0)
    model = LocalSFNO(1, 1, lmax=12, hidden_channels=12, n_layers=3).double().eval()
    outs, clouds = {}, {}
    for nlat in (33, 65, 129):
        x, clouds[nlat] = sphere_field(nlat, 2 * (nlat - 1))
        with torch.no_grad():
            outs[nlat] = model(x)
    diffs = []
    for nlat in (33, 65):
        step = 128 // (nlat - 1)
        ref = outs[129][..., ::step, ::step]
        w = clouds[nlat].weights.reshape(nlat, -1)
        diffs.append(float((((outs[nlat] - ref) ** 2 * w).sum() / (ref**2 * w).sum()).sqrt()))
    assert diffs[1] < 0.5 * diffs[0] and diffs[1] < 1e-2


def test_ring_fft_path_equals_sparse_kernels():
    """The local terms through longitude FFTs (the default where a block keeps its grid)
    equal the sparse kernels: outputs and every parameter's gradient, float64."""
    torch.manual_seed(2)
    model = LocalSFNO(2, 1, lmax=8, hidden_channels=5, n_layers=2,
                      disco_radius=math.pi / 7).double()
    x = torch.randn(2, 2, 16, 32, dtype=torch.float64)
    results = []
    for ring in (True, False):
        model.ring_fft = ring
        out = model(x)
        results.append((out, torch.autograd.grad(out.square().sum(), list(model.parameters()))))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-11, atol=1e-12)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    # each block's DISCO and differential layers share one cached ring kernel (held by the
    # first), built from both kernels: one pair of FFTs and one product per block
    for block in model.blocks:
        disco, diff = block.local
        assert len(disco.rings) == 1 and len(diff.rings) == 0
        (ring,) = (disco.rings.get_or_build(key, None) for key in disco.rings)
        assert ring.kernel_size == disco.kernel_size + diff.kernel_size


def test_a_radius_covering_the_sphere_is_refused_naming_the_argument_and_memory():
    """K31: LocalSFNO(disco_radius=3.0) passed 5 GB within seconds on a 64 x 128 grid. The
    ring path builds only the output meridians' stencils (64 points against the cap), so the
    same model now runs in bounded memory; the per-point (sparse) path estimates its edge
    count before allocating anything and refuses above the limit, naming the model's
    argument and the memory; max_kernel_edges raises the limit on both paths."""
    import resource
    import time

    model = LocalSFNO(1, 1, lmax=8, hidden_channels=4, n_layers=1, disco_radius=3.0)
    x = torch.randn(1, 1, 64, 128)
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with memory_cap(2 * 1024**3):
        assert torch.isfinite(model(x)).all()
    assert time.perf_counter() - start < 60
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 1500  # MB
    model.ring_fft = False  # the per-point kernels: 6.6e7 edges
    expected = (r"^disco_radius=3 gives about 6\.\d+e\+07 kernel edges .* about [\d.]+ GB of "
                r"memory while building; this is above max_kernel_edges=5e\+07\. Use a smaller "
                r"disco_radius, or raise max_kernel_edges")
    start = time.perf_counter()
    with memory_cap(2 * 1024**3), pytest.raises(ValueError, match=expected):
        model(x)
    assert time.perf_counter() - start < 10
    small = LocalSFNO(1, 1, lmax=4, hidden_channels=4, n_layers=1, disco_radius=3.0,
                      diff_layers=False, max_kernel_edges=500)
    with pytest.raises(ValueError, match=r"about 1\.02e\+03 kernel edges \(pairs of the 8 output "
                                         r"meridian points .* above max_kernel_edges=500"):
        small(torch.randn(1, 1, 8, 16))
    small = LocalSFNO(1, 1, lmax=4, hidden_channels=4, n_layers=1, disco_radius=3.0,
                      diff_layers=False, max_kernel_edges=10**5)
    assert torch.isfinite(small(torch.randn(1, 1, 8, 16))).all()
    with pytest.raises(ValueError, match="radius=3 gives about .* above max_edges=100"):
        SphereDiscoConv(1, 1, radius=3.0, max_edges=100)(torch.randn(1, 1, 8, 16))


@pytest.mark.parametrize("kwargs, shape, name", [
    ({"disco_radius": 1e-4}, (8, 16), "disco_radius"),  # M24: a tiny radius
    ({"disco_radius": 0.4, "diff_radius": 1e-4}, (8, 16), "diff_radius"),
    ({}, (2, 2), "disco_radius"),  # M25: a 2 x 2 grid
], ids=["tiny-disco-radius", "tiny-diff-radius", "2x2-grid"])
def test_a_differential_stencil_that_cannot_be_built_names_the_argument(kwargs, shape, name):
    """M24/M25: 'the radius is too small for a differential kernel' did not say which
    argument to change, nor that the grid was the problem."""
    model = LocalSFNO(1, 1, lmax=2, hidden_channels=4, n_layers=1, **kwargs)
    grid = f"{shape[0]} x {shape[1]} grid"
    with pytest.raises(ValueError, match=rf"^{name}=[\d.e-]+ is too small for a differential "
                                         rf"kernel on this {grid}: .* nearest other point is "
                                         rf"[\d.]+ away\); use a larger {name} .* or a finer "
                                         rf"grid"):
        model(torch.randn(1, 1, *shape))


def test_ring_path_with_internal_grids_equals_sparse_kernels_and_builds_no_sparse_kernel():
    """With an internal grid the first block's DISCO layer downsamples and the last one's
    upsamples (legendre-gauss <-> equiangular): the ring path covers them too."""
    torch.manual_seed(4)
    model = LocalSFNO(2, 1, lmax=8, hidden_channels=4, n_layers=3, internal_scale=2,
                      internal_grid="legendre-gauss", disco_radius=0.45).double()
    x = torch.randn(1, 2, 17, 32, dtype=torch.float64)
    out = model(x)
    grads = torch.autograd.grad(out.square().sum(), list(model.parameters()))
    assert all(len(layer.kernels) == 0 for block in model.blocks for layer in block.local)
    model.ring_fft = False
    ref = model(x)
    ref_grads = torch.autograd.grad(ref.square().sum(), list(model.parameters()))
    torch.testing.assert_close(out, ref, rtol=1e-11, atol=1e-12)
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
