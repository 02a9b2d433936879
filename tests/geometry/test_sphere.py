import math

import numpy as np
import pytest
import torch

from geo_neuralop.geometry import fibonacci_sphere, from_sphere_points, icosphere, sphere_grid
from geo_neuralop.geometry.quadrature import clenshaw_curtis
from tests.conftest import observed_order
from tests.geometry.sph_harm import gram_error


def _np(cloud):
    return cloud.pos.double().numpy(), cloud.weights.double().numpy()


@pytest.mark.parametrize("grid", ["equiangular", "legendre-gauss"])
@pytest.mark.parametrize("nlat", [16, 32, 33])
def test_sphere_grid_total_area_and_exact_harmonic_orthonormality(float64, grid, nlat):
    cloud = sphere_grid(nlat, 2 * nlat, grid)
    assert cloud.weights.sum().item() == pytest.approx(4 * math.pi, rel=1e-14)
    # Legendre-Gauss with n rings is exact for polynomials of degree 2n - 1 in cos(theta),
    # Clenshaw-Curtis for degree n - 1; products Y_lm Y_l'm' have degree l + l'.
    lmax = nlat - 1 if grid == "legendre-gauss" else (nlat - 1) // 2
    assert gram_error(*_np(cloud), lmax) < 1e-10
    # ... and not beyond: the rule's limit is where the theory puts it.
    assert gram_error(*_np(cloud), lmax + 3) > 1e-4


def test_sphere_grid_matches_torch_harmonics_ordering_and_weights(float64):
    quadrature = pytest.importorskip("torch_harmonics.quadrature")
    for grid in ("equiangular", "legendre-gauss"):
        for nlat, nlon in ((32, 64), (17, 36)):
            lats, wlat = quadrature._precompute_latitudes(nlat, grid=grid)
            lons = quadrature._precompute_longitudes(nlon)
            t, p = torch.meshgrid(lats.double(), lons.double(), indexing="ij")
            expected = torch.stack(
                [torch.sin(t) * torch.cos(p), torch.sin(t) * torch.sin(p), torch.cos(t)], -1
            ).reshape(-1, 3)
            cloud = sphere_grid(nlat, nlon, grid)
            torch.testing.assert_close(cloud.pos, expected, atol=1e-14, rtol=0)
            torch.testing.assert_close(
                cloud.weights.reshape(nlat, nlon),
                (wlat.double() * 2 * math.pi / nlon)[:, None].expand(nlat, nlon),
                atol=1e-15, rtol=1e-13,
            )
            assert cloud.grid_shape == (nlat, nlon)


def test_clenshaw_curtis_is_exact_to_degree_n_minus_1():
    for n in (2, 3, 8, 9):
        x, w = clenshaw_curtis(n)
        for k in range(n):
            exact = 0.0 if k % 2 else 2.0 / (k + 1)
            assert np.dot(w, x**k) == pytest.approx(exact, abs=1e-14)


def test_icosphere_converges_at_second_order(float64):
    errors = []
    for s in (3, 4, 5):
        cloud = icosphere(s)
        assert cloud.num_nodes == 10 * 4**s + 2
        assert cloud.weights.sum().item() == pytest.approx(4 * math.pi, rel=1e-13)
        errors.append(gram_error(*_np(cloud), lmax=4))
    hs = [2.0**-s for s in (3, 4, 5)]
    assert observed_order(hs, errors) == pytest.approx(2.0, abs=0.15)
    assert errors[-1] < 2e-5


def test_fibonacci_sphere_voronoi_weights_converge(float64):
    ns = (1600, 6400, 25600)
    errors = []
    for n in ns:
        cloud = fibonacci_sphere(n)
        assert cloud.weights.sum().item() == pytest.approx(4 * math.pi, rel=1e-12)
        errors.append(gram_error(*_np(cloud), lmax=4))
    hs = [math.sqrt(4 * math.pi / n) for n in ns]
    assert observed_order(hs, errors) > 1.5
    assert errors[-1] < 3e-5
    faces = fibonacci_sphere(200).faces
    assert faces.shape == (2 * 200 - 4, 3)  # a closed triangulation of the sphere


def test_from_sphere_points_validates_before_computing_weights():
    pts = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64), dim=1)
    cloud = from_sphere_points(pts, temperature=torch.ones(50))
    assert cloud.weights.sum().item() == pytest.approx(4 * math.pi)
    assert cloud.field_names == ["temperature"]
    pts[11] = pts[3]
    with pytest.raises(ValueError, match="point index 11 repeats point index 3"):
        from_sphere_points(pts)
    with pytest.raises(ValueError, match=r"shape \[N >= 4, 3\]"):
        from_sphere_points(pts[:3])


def test_sphere_bad_arguments():
    with pytest.raises(ValueError, match="grid must be one of"):
        sphere_grid(8, 16, "healpix")
    with pytest.raises(ValueError, match="nlon must be a positive int"):
        sphere_grid(8, 0)
    with pytest.raises(ValueError, match="subdivisions"):
        icosphere(-1)
    with pytest.raises(ValueError, match="at least 4"):
        fibonacci_sphere(3)


def test_numpy_integers_are_accepted():
    """G59: fibonacci_sphere(np.int64(100)) was refused ('must be an int')."""
    assert fibonacci_sphere(np.int64(100)).num_nodes == 100
    assert icosphere(np.int32(1)).num_nodes == 42
    assert sphere_grid(np.int64(4), np.int64(8)).num_nodes == 32


def test_points_on_one_great_circle_are_refused_by_name():
    """G60: ten points on the equator reached scipy ('Rank of input points must be at least
    3'); the docstring forbids them, now the library says so itself."""
    lon = np.linspace(0, 2 * np.pi, 10, endpoint=False)
    for tilt in (0.0, 0.7):  # the equator, and a tilted great circle
        pts = np.stack([np.cos(lon), np.sin(lon) * np.cos(tilt), np.sin(lon) * np.sin(tilt)], 1)
        with pytest.raises(ValueError, match="points all lie on one great circle"):
            from_sphere_points(pts)


def test_one_latitude_ring_names_nlat():
    """G49/M21: sphere_grid(1, 4) named an internal rule ('Clenshaw-Curtis needs at least 2
    nodes'); the message names nlat now (fixed by the redesign, kept by this test)."""
    with pytest.raises(ValueError, match="nlat must be at least 2, got nlat=1"):
        sphere_grid(1, 4)
