import math

import pytest
import torch

from geo_neuralop.kernels import MorletBasis, PiecewiseLinearBasis, ZernikeBasis, get_basis

filter_basis = pytest.importorskip("torch_harmonics.filter_basis")


def _torch_harmonics_dense(th_basis, rho, phi, k):
    """torch-harmonics' sparse (index, value) output as a dense [E, K] tensor (r_cutoff = 1)."""
    idx, vals = th_basis.compute_support_vals(rho[None, :], phi[None, :], r_cutoff=1.0)
    dense = torch.zeros(rho.shape[0], k, dtype=torch.float64)
    dense.index_put_((idx[:, 2], idx[:, 0]), vals.double(), accumulate=True)
    return dense


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (PiecewiseLinearBasis((3, 4)), ("PiecewiseLinearFilterBasis", (3, 4))),
        (PiecewiseLinearBasis((5, 3)), ("PiecewiseLinearFilterBasis", (5, 3))),
        (PiecewiseLinearBasis((4, 3)), ("PiecewiseLinearFilterBasis", (4, 3))),
        (PiecewiseLinearBasis(3), ("PiecewiseLinearFilterBasis", 3)),
        (PiecewiseLinearBasis(4), ("PiecewiseLinearFilterBasis", 4)),
        (MorletBasis((3, 3)), ("MorletFilterBasis", (3, 3))),
        (MorletBasis((2, 4)), ("MorletFilterBasis", (2, 4))),
        (ZernikeBasis(4), ("ZernikeFilterBasis", 4)),
    ],
)
def test_basis_values_equal_torch_harmonics(ours, theirs):
    name, shape = theirs
    th_basis = getattr(filter_basis, name)(shape)
    assert ours.kernel_size == th_basis.kernel_size
    gen = torch.Generator().manual_seed(1)
    rho = torch.rand(4000, generator=gen, dtype=torch.float64) * 0.999 + 1e-3
    phi = torch.rand(4000, generator=gen, dtype=torch.float64) * 2 * math.pi
    expected = _torch_harmonics_dense(th_basis, rho, phi, ours.kernel_size)
    # torch-harmonics places its rings in float32 (torch.arange * float): 1e-7 differences
    torch.testing.assert_close(ours(rho, phi), expected, atol=2e-7, rtol=0)


def test_kernel_sizes_follow_the_torch_harmonics_convention():
    assert PiecewiseLinearBasis((3, 4)).kernel_size == 5  # (nr // 2) * nphi + nr % 2
    assert PiecewiseLinearBasis((5, 4)).kernel_size == 9
    assert PiecewiseLinearBasis((4, 3)).kernel_size == 6
    assert PiecewiseLinearBasis(3).kernel_size == 2
    assert MorletBasis(3).kernel_size == 9
    assert ZernikeBasis(3).kernel_size == 6


def test_even_ring_basis_is_its_angular_mean_at_the_centre():
    basis = PiecewiseLinearBasis((4, 3))
    at_centre = basis(torch.zeros(5, dtype=torch.float64), torch.linspace(0, 6, 5))
    expected = torch.tensor([1 / 3] * 3 + [0.0] * 3, dtype=torch.float64).expand(5, 6)
    torch.testing.assert_close(at_centre, expected)
    # ... which is the limit of the average over directions at a small radius
    phi = torch.linspace(0, 2 * math.pi, 3601, dtype=torch.float64)[:-1]
    near = basis(torch.full_like(phi, 1e-6), phi).mean(0)
    torch.testing.assert_close(near, expected[0], atol=1e-5, rtol=0)


def test_isotropic_piecewise_linear_is_a_partition_of_unity_inside():
    basis = PiecewiseLinearBasis(5)  # hats at 0, 1/3, 2/3 with width 1/3
    rho = torch.linspace(0, 2 / 3, 50, dtype=torch.float64)
    torch.testing.assert_close(basis(rho, torch.zeros_like(rho)).sum(1), torch.ones_like(rho))


def test_bad_basis_arguments():
    with pytest.raises(ValueError, match="zero basis functions"):
        PiecewiseLinearBasis((0, 4))
    with pytest.raises(ValueError, match="zero basis functions"):
        MorletBasis((3, 0))
    with pytest.raises(ValueError, match="kernel_shape of length"):
        PiecewiseLinearBasis((3, 4, 5))
    with pytest.raises(ValueError, match="unknown basis 'hermite'"):
        get_basis("hermite", 3)
    with pytest.raises(TypeError, match="kernel_shape entries must be ints"):
        ZernikeBasis(2.5)
