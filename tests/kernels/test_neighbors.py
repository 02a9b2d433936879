import numpy as np
import pytest

from geo_neuralop.kernels.neighbors import geodesic_distance, radius_pairs


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
