"""Lat/lon grid recognition: every rule from its coordinates in any order and convention, its
weights exact for spherical harmonics to the rule's degree (scipy's harmonics as reference),
and clear refusals of grids that are not global lat/lon grids."""

import numpy as np
import pytest

from geo_neuralop.data.importers.latlon_grid import (
    LATITUDE_RULES,
    detect_latlon_grid,
    latitude_rule,
    points_latlon,
)
from geo_neuralop.geometry import sphere_grid
from geo_neuralop.geometry.quadrature import fejer_first, fejer_second
from tests.geometry.sph_harm import gram_error

# degree of harmonics whose products each rule integrates exactly with nlat rows
EXACT_PRODUCT_DEGREE = {"legendre-gauss": lambda n: n - 1, "equiangular": lambda n: (n - 1) // 2,
                        "fejer-second": lambda n: (n - 1) // 2,
                        "fejer-first": lambda n: (n - 1) // 2}


@pytest.mark.parametrize("rule", LATITUDE_RULES)
@pytest.mark.parametrize("ascending", [False, True])
@pytest.mark.parametrize("signed", [False, True])
def test_every_rule_is_recognized_in_any_order_and_convention(rule, ascending, signed):
    nlat, nlon = 12, 24
    lat, _ = latitude_rule(rule, nlat)
    lat = lat[::-1] if ascending else lat
    lon = np.arange(nlon) * 15.0 + 7.5
    if signed:
        lon = np.where(lon >= 180, lon - 360, lon)
        lon = np.sort(lon)
    grid = detect_latlon_grid(lat.astype(np.float32), lon.astype(np.float32))
    assert grid.rule == rule and grid.shape == (nlat, nlon)
    assert grid.lat_ascending == ascending and grid.lon_signed == signed
    assert np.all(np.diff(grid.lat) < 0) and np.allclose(grid.lon, 7.5 + 15 * np.arange(nlon))
    # the recorded permutation maps source values onto the canonical rows and columns
    source = np.add.outer(lat, lon * 1000.0)
    canonical = grid.to_canonical(source)
    expected = np.add.outer(grid.lat, (np.where(grid.lon >= 180, grid.lon - 360, grid.lon)
                                       if signed else grid.lon) * 1000.0)
    np.testing.assert_allclose(canonical, expected, atol=1e-3)
    np.testing.assert_allclose(grid.to_source(canonical), source)
    src_lat, src_lon = grid.source_coordinates()
    np.testing.assert_allclose(src_lat, lat, atol=1e-4)
    np.testing.assert_allclose(src_lon, lon, atol=1e-4)


@pytest.mark.parametrize("rule", LATITUDE_RULES)
@pytest.mark.parametrize("nlat", [8, 13])
def test_detected_weights_integrate_harmonic_products_exactly(rule, nlat):
    lat, _ = latitude_rule(rule, nlat)
    grid = detect_latlon_grid(lat, np.arange(2 * nlat) * 180.0 / nlat)
    pos, w = grid.unit_vectors().reshape(-1, 3), grid.weights().reshape(-1)
    assert abs(w.sum() - 4 * np.pi) < 1e-12
    degree = EXACT_PRODUCT_DEGREE[rule](nlat)
    assert gram_error(pos, w, degree) < 1e-12
    assert gram_error(pos, w, degree + 2) > 1e-6  # beyond the rule's degree it is not exact


def test_canonical_grid_is_the_package_sphere_grid():
    for rule in ("equiangular", "legendre-gauss"):
        cloud = sphere_grid(10, 20, rule)
        lat, lon = points_latlon(cloud.pos.double().numpy(), (10, 20))
        grid = detect_latlon_grid(lat, lon)
        assert grid.sphere_grid == rule
        np.testing.assert_allclose(grid.unit_vectors().reshape(-1, 3), cloud.pos.double(),
                                   atol=1e-6)
        np.testing.assert_allclose(grid.weights().reshape(-1), cloud.weights.double(),
                                   rtol=1e-6)


def test_fejer_rules_are_exact_to_degree_n_minus_1():
    for rule in (fejer_first, fejer_second):
        for n in (1, 2, 5, 16):
            x, w = rule(n)
            for m in range(n):
                exact = 2.0 / (m + 1) if m % 2 == 0 else 0.0
                assert abs((w * x**m).sum() - exact) < 1e-13
            assert np.all(np.diff(x) < 0) and np.all(np.abs(x) < 1)


@pytest.mark.parametrize("lat, lon, message", [
    (np.array([90.0, 45, 50, 0, -45, -90]), np.arange(0, 360, 60.0), "is not monotonic"),
    (np.linspace(-30, 60, 10), np.arange(0, 360, 10.0), "regional grid"),
    (np.linspace(-90, 90, 10), np.arange(0, 90, 10.0), "regional grid"),
    (np.linspace(-90, 90, 10), np.arange(0, 361, 10.0), "repeats the first"),
    (np.linspace(-90, 90, 10), np.array([0.0, 10, 30, 90, 200]), "not equal steps"),
    (np.linspace(-90, 90, 10) ** 3 / 8100, np.arange(0, 360, 10.0), "follow none"),
    (np.array([[0.0, 1.0]]), np.arange(0, 360, 10.0), "must be 1-D"),
    (np.array([np.nan, 0.0, -90.0]), np.arange(0, 360, 10.0), "missing or non-finite"),
    (np.linspace(-1.5, 1.5, 10) * 100, np.arange(0, 360, 10.0), r"beyond \+-90"),
])
def test_bad_coordinates_are_refused_with_the_reason(lat, lon, message):
    with pytest.raises(ValueError, match=message) as info:
        detect_latlon_grid(lat, lon, "latitude", "longitude", where="file.nc: ")
    assert str(info.value).startswith("file.nc: ")
