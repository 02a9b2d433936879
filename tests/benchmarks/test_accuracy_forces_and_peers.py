"""Drag/lift post-processing against analytic forces; the peer adapters' batching and files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmarks.accuracy.forces import (
    CYLINDER_MARKER,
    cylinder_boundary,
    force_coefficients,
    force_errors,
)


def annulus(n_theta: int, radius: float = 0.05, outer: float = 0.2, n_rings: int = 6):
    """A structured triangle mesh around a hole of ``radius`` (polygon of ``n_theta`` sides)."""
    radii = radius * (outer / radius) ** (np.arange(n_rings) / (n_rings - 1))
    theta = 2 * np.pi * np.arange(n_theta) / n_theta
    pts = np.array([[r * np.cos(t), r * np.sin(t)] for r in radii for t in theta])
    faces = []
    for i in range(n_rings - 1):
        for j in range(n_theta):
            a, b = i * n_theta + j, i * n_theta + (j + 1) % n_theta
            c, d = a + n_theta, b + n_theta
            faces += [[a, b, d], [a, d, c]]
    markers = np.zeros(len(pts), dtype=np.int64)
    markers[:n_theta] = CYLINDER_MARKER
    return pts, np.array(faces), markers


def polygon_area(n: int, radius: float) -> float:
    return 0.5 * n * radius**2 * math.sin(2 * math.pi / n)


def test_pressure_force_is_exact_for_linear_pressure():
    """p = a x + b y: F = -∮ p n ds = -area (a, b) over the body polygon."""
    pts, faces, markers = annulus(24)
    boundary = cylinder_boundary(pts, faces, markers, (0.0, 0.0))
    assert len(boundary.lengths) == 24
    assert np.allclose(np.einsum("ei,ei->e", boundary.normals,
                                 pts[boundary.edges].mean(1)), np.linalg.norm(
                                     pts[boundary.edges].mean(1), axis=1))  # out of the body
    zero = np.zeros(len(pts))
    u_mean, diameter = 1.0, 0.1
    p = 2.0 * pts[:, 0] - 3.0 * pts[:, 1]
    cd, cl = force_coefficients(boundary, zero, zero, p, nu=1e-3, u_mean=u_mean,
                                diameter=diameter)
    scale = 2 / (u_mean**2 * diameter)
    area = polygon_area(24, 0.05)
    assert cd[0] == pytest.approx(-2.0 * area * scale, rel=1e-12)
    assert cl[0] == pytest.approx(3.0 * area * scale, rel=1e-12)


def test_viscous_force_of_a_linear_velocity_vanishes_and_quadratic_converges():
    """ν (∇u + ∇uᵀ) n integrates to zero for constant strain and to ν ∫ div(S) dV otherwise:
    u = (x², 0) gives F_x = 4 ν area of the disc (first order in h for P1 gradients)."""
    nu = 0.01
    errors, hs = [], []
    for n in (32, 64, 128):
        pts, faces, markers = annulus(n, n_rings=max(6, n // 4))
        b = cylinder_boundary(pts, faces, markers, (0.0, 0.0))
        x, y = pts[:, 0], pts[:, 1]
        zero = np.zeros(len(pts))
        cd, cl = force_coefficients(b, 3 * x + y, 2 * x - y, zero, nu, 1.0, 2.0)
        assert abs(cd[0]) < 1e-13 and abs(cl[0]) < 1e-13
        cd, cl = force_coefficients(b, x**2, zero, zero, nu, 1.0, 2.0)  # scale 2/(1 * 2) = 1
        exact = 4 * nu * math.pi * 0.05**2
        errors.append(max(abs(cd[0] - exact), abs(cl[0])) / exact)  # exact lift: 0
        hs.append(b.lengths.mean())
    order = np.polyfit(np.log(hs), np.log(errors), 1)[0]
    assert errors[-1] < 0.05 and order > 0.8


def test_force_errors_are_relative_to_the_reference():
    t = np.linspace(0, 1, 50)
    cd0, cl0 = 3 + 0.1 * np.sin(6 * t), np.sin(6 * t)
    e = force_errors((1.1 * cd0, cl0), (cd0, cl0))
    assert e["drag_rel"] == pytest.approx(0.1) and e["drag_mean_rel"] == pytest.approx(0.1)
    assert e["lift_rel"] == 0 and e["lift_amplitude_rel"] == 0
    e = force_errors((cd0, 0.5 * cl0), (cd0, cl0))
    assert e["lift_rel"] == pytest.approx(0.5) and e["lift_amplitude_rel"] == pytest.approx(0.5)


def test_cylinder_boundary_rejects_bad_input():
    pts, faces, markers = annulus(8)
    with pytest.raises(ValueError, match="no boundary edge"):
        cylinder_boundary(pts, faces, np.zeros_like(markers), (0.0, 0.0))
    with pytest.raises(ValueError, match="markers"):
        cylinder_boundary(pts, faces, markers[:-1], (0.0, 0.0))
    b = cylinder_boundary(pts, faces, markers, (0.0, 0.0))
    with pytest.raises(ValueError, match="nu"):
        force_coefficients(b, pts[:, 0], pts[:, 0], pts[:, 0], -1.0, 1.0, 1.0)


def test_gino_adapter_batches_meshes_of_different_sizes():
    """One PyG batch of two meshes gives what each mesh gives alone."""
    pytest.importorskip("neuralop")
    from torch_geometric.data import Batch

    from benchmarks.accuracy import peers  # noqa: F401 - registers the adapters
    from geo_neuralop.geometry import jittered_rectangle_mesh
    from geo_neuralop.models import get_model

    model = get_model("nop_gino", in_channels=2, out_channels=3, latent_shape=[12, 6],
                      hidden_channels=4, n_layers=1, gno_radius=0.2,
                      in_gno_hidden=[8], out_gno_hidden=[8])
    a = jittered_rectangle_mesh((9, 5), domain=[(0.0, 2.2), (0.0, 0.41)])
    b = jittered_rectangle_mesh((7, 4), domain=[(0.0, 2.2), (0.0, 0.41)])
    xa, xb = torch.randn(a.num_nodes, 2), torch.randn(b.num_nodes, 2)
    batch = Batch.from_data_list([a, b])
    with torch.no_grad():
        both = model(batch, x=torch.cat([xa, xb]))
        alone = torch.cat([model(a, x=xa), model(b, x=xb)])
    torch.testing.assert_close(both, alone)
    pos, grid = model.normalized(a.pos.float())
    assert pos.min() > 0 and pos.max() < 1 and grid.shape == (1, 12, 6, 2)


def test_neuraloperator_models_save_and_load_through_our_checkpoints(tmp_path):
    pytest.importorskip("neuralop")
    from benchmarks.accuracy import peers  # noqa: F401
    from geo_neuralop.models import get_model, load_model, save_model

    model = get_model("nop_local_no", in_channels=1, out_channels=1, n_modes=[5, 4],
                      default_in_shape=[8, 8], hidden_channels=4, n_layers=1)
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_latent_round_trip_is_exact_for_linear_fields_and_converges():
    """Mesh -> grid -> mesh: exact for linear fields (no margin), second order for smooth."""
    from benchmarks.accuracy.latent_floor import round_trip

    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.uniform([0, 0], [2.2, 0.41], (400, 2)),
                          [[0, 0], [2.2, 0], [0, 0.41], [2.2, 0.41]]])
    linear = np.stack([3 * pts[:, 0] - pts[:, 1], np.ones(len(pts))], 1)
    np.testing.assert_allclose(round_trip(pts, linear, (24, 8), margin=0.0), linear,
                               atol=1e-10)
    pts = np.stack(np.meshgrid(np.linspace(0, 2.2, 111), np.linspace(0, 0.41, 22),
                               indexing="ij"), -1).reshape(-1, 2)
    smooth = np.sin(3 * pts[:, :1]) * np.cos(7 * pts[:, 1:])
    errors = [np.abs(round_trip(pts, smooth, (n, n // 4), margin=0.0) - smooth).max()
              for n in (24, 48)]
    assert errors[1] < errors[0] / 3  # about 4x: bilinear interpolation is second order
