import numpy as np
import pytest

from geo_neuralop.kernels.neighbors import (
    RadiusSearch,
    geodesic_distance,
    radius_pairs,
    spatial_order,
)


def _brute_force(src, dst, radius, metric):
    d = metric(dst[:, None, :], src[None, :, :])
    i, j = np.nonzero(d <= radius)
    return i, j


def test_euclidean_pairs_equal_brute_force():
    rng = np.random.default_rng(0)
    src, dst = rng.random((300, 2)), rng.random((200, 2))
    i, j = radius_pairs(src, dst, 0.1)
    bi, bj = _brute_force(src, dst, 0.1, lambda a, b: np.linalg.norm(a - b, axis=-1))
    np.testing.assert_array_equal(i, bi)
    np.testing.assert_array_equal(j, bj)


def test_periodic_pairs_use_the_minimum_image():
    rng = np.random.default_rng(1)
    src, dst = rng.random((300, 2)) * [2.0, 1.0], rng.random((200, 2)) * [2.0, 1.0]
    box = [(0.0, 2.0), None]  # periodic in x only

    def metric(a, b):
        d = a - b
        d[..., 0] -= 2.0 * np.round(d[..., 0] / 2.0)
        return np.linalg.norm(d, axis=-1)

    i, j = radius_pairs(src, dst, 0.15, box=box)
    bi, bj = _brute_force(src, dst, 0.15, metric)
    np.testing.assert_array_equal(i, bi)
    np.testing.assert_array_equal(j, bj)
    with pytest.raises(ValueError, match="below half the smallest period"):
        radius_pairs(src, dst, 1.2, box=[(0.0, 2.0), (0.0, 1.0)])


def test_sphere_pairs_use_the_geodesic_radius():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(400, 3))
    src /= np.linalg.norm(src, axis=1, keepdims=True)
    dst = src[:150]
    i, j = radius_pairs(src, dst, 0.4, manifold="sphere")

    def metric(a, b):
        return np.arccos(np.clip((a * b).sum(-1), -1.0, 1.0))

    bi, bj = _brute_force(src, dst, 0.4, metric)
    np.testing.assert_array_equal(i, bi)
    np.testing.assert_array_equal(j, bj)
    # a radius beyond pi covers the whole sphere
    i, _ = radius_pairs(src, dst[:3], 4.0, manifold="sphere")
    assert i.shape[0] == 3 * 400


def test_geodesic_distance_is_accurate_for_tiny_and_antipodal_angles():
    a = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    b = np.array([[np.cos(1e-9), np.sin(1e-9), 0.0], [-1.0, 0.0, 0.0]])
    np.testing.assert_allclose(geodesic_distance(a, b), [1e-9, np.pi], rtol=1e-12)


@pytest.mark.parametrize("manifold", ["euclidean", "sphere"])
def test_per_point_radii_equal_brute_force(manifold):
    """Radii per destination point (searched in groups of similar radii) keep exactly the
    pairs within each point's own radius."""
    rng = np.random.default_rng(3)
    src, dst = rng.random((500, 3)), rng.random((120, 3))
    if manifold == "sphere":
        src /= np.linalg.norm(src, axis=1, keepdims=True)
        dst /= np.linalg.norm(dst, axis=1, keepdims=True)
        distance = np.arccos(np.clip(dst @ src.T, -1.0, 1.0))
    else:
        distance = np.linalg.norm(dst[:, None] - src[None], axis=-1)
    radii = 0.05 + 0.3 * rng.random(120)  # ratios up to 7: several search groups
    i, j = radius_pairs(src, dst, radii, manifold=manifold)
    bi, bj = np.nonzero(distance <= radii[:, None])
    np.testing.assert_array_equal(i, bi)
    np.testing.assert_array_equal(j, bj)
    with pytest.raises(ValueError, match="one value per dst point"):
        RadiusSearch(src, manifold).pairs(dst, radii[:-1])
    with pytest.raises(ValueError, match="at dst point index 3"):
        RadiusSearch(src, manifold).pairs(dst, np.where(np.arange(120) == 3, -1.0, radii))


def test_chunks_of_queries_give_the_pairs_of_the_whole_query_set():
    """A search answers chunk after chunk (the way kernels are built) with the same pairs as
    one query of every point, also in a partly periodic box and for queries outside the
    sources' extent."""
    rng = np.random.default_rng(4)
    src = rng.random((400, 2)) * [2.0, 1.0]
    dst = rng.random((300, 2)) * [2.0, 1.6] - [0.0, 0.3]  # partly outside in y
    box = [(0.0, 2.0), None]
    whole_i, whole_j = radius_pairs(src, dst, 0.12, box=box)
    offset = dst[:, None] - src[None]
    offset[..., 0] -= 2.0 * np.round(offset[..., 0] / 2.0)
    bi, bj = np.nonzero(np.linalg.norm(offset, axis=-1) <= 0.12)
    np.testing.assert_array_equal(whole_i, bi)
    np.testing.assert_array_equal(whole_j, bj)
    search = RadiusSearch(src, box=box)
    parts = []
    for start in range(0, 300, 70):
        i, j = search.pairs(dst[start:start + 70], 0.12)
        parts.append((i + start, j))
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), whole_i)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), whole_j)
    order = spatial_order(dst)
    assert sorted(order.tolist()) == list(range(300))
