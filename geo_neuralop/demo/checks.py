"""Part 1 of the demo: quadrature, mesh export and DISCO kernels against independent references.

Every check compares a measured value with an exact integral, torch-harmonics'
own layer, or an exact derivative, within a stated tolerance.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from geo_neuralop.geometry import (
    fibonacci_sphere,
    from_mesh,
    icosphere,
    jittered_rectangle_mesh,
    perforated_rectangle_mesh,
    regular_grid,
    sphere_grid,
    to_mesh,
)
from geo_neuralop.kernels import basis_first_moments
from geo_neuralop.layers import DiscoConv, PointDifferentialConv
from geo_neuralop.utils import atomic_path
from geo_neuralop.viz import render_mesh_comparison

Check = tuple[str, Callable[[], float], float, float]


@dataclass
class StepResult:
    """Outcome of one demo step: a name, a measured value, its reference and tolerance."""

    name: str
    value: float
    reference: float
    tolerance: float
    seconds: float

    @property
    def ok(self) -> bool:
        return math.isfinite(self.value) and abs(self.value - self.reference) <= self.tolerance


def quadrature_checks() -> list[Check]:
    """Integrals of smooth functions on grids, meshes and spheres against their exact values."""

    def square(cloud_fn):
        def run():
            cloud = cloud_fn()
            x, y = cloud.pos.T
            return cloud.integrate(torch.sin(math.pi * x) * torch.sin(math.pi * y)).item()

        return run

    def sphere(cloud_fn):
        def run():
            cloud = cloud_fn()
            return cloud.integrate(torch.exp(cloud.pos[:, 2])).item()

        return run

    exact_square = 4.0 / math.pi**2
    exact_sphere = 4.0 * math.pi * math.sinh(1.0)
    return [
        ("grid 129x129, int sin(pi x) sin(pi y)",
         square(lambda: regular_grid((129, 129), dtype=torch.float64)), exact_square, 1e-4),
        ("unstructured mesh (16k vertices), same integral",
         square(lambda: jittered_rectangle_mesh((129, 129), dtype=torch.float64)),
         exact_square, 1e-4),
        ("equiangular 32x64 sphere, int exp(z)",
         sphere(lambda: sphere_grid(32, 64, "equiangular", dtype=torch.float64)),
         exact_sphere, 1e-12),
        ("legendre-gauss 32x64 sphere, int exp(z)",
         sphere(lambda: sphere_grid(32, 64, "legendre-gauss", dtype=torch.float64)),
         exact_sphere, 1e-12),
        ("icosphere (10242 vertices), int exp(z)",
         sphere(lambda: icosphere(5, dtype=torch.float64)), exact_sphere, 1e-4),
        ("fibonacci sphere (10000 points), int exp(z)",
         sphere(lambda: fibonacci_sphere(10000, dtype=torch.float64)), exact_sphere, 1e-4),
    ]


def mesh_export_check(output_dir: Path) -> Callable[[], float]:
    """Write a mesh with a field to VTU and read it back: the largest change of the field."""

    def run() -> float:
        import meshio

        cloud = jittered_rectangle_mesh((41, 21), domain=[(0.0, 2.2), (0.0, 0.41)],
                                        dtype=torch.float64)
        x, y = cloud.pos.T
        cloud.u = 4.0 * 1.5 * y * (0.41 - y) / 0.41**2  # DFG parabolic inflow profile
        path = output_dir / "channel_mesh.vtu"
        with atomic_path(path) as tmp:
            to_mesh(cloud).write(tmp)
        back = from_mesh(meshio.read(path), dtype=torch.float64)
        return float((back.u - cloud.u).abs().max())

    return run


def disco_checks() -> list[Check]:
    """DISCO against torch-harmonics, mesh independence, and differential exactness."""

    def versus_torch_harmonics() -> float:
        from torch_harmonics import DiscreteContinuousConvS2

        torch.manual_seed(0)
        warnings.filterwarnings("ignore", message="Sparse invariant checks", category=UserWarning)
        peer = DiscreteContinuousConvS2(3, 4, (64, 128), (32, 64), (3, 4),
                                        basis_type="piecewise linear", basis_norm_mode="mean",
                                        grid_in="legendre-gauss", grid_out="legendre-gauss")
        conv = DiscoConv(3, 4, (3, 4), radius=math.pi / 31 * (1 + 1e-3))
        with torch.no_grad():
            conv.weight.copy_(peer.weight)
            conv.bias.copy_(peer.bias)
        src = sphere_grid(64, 128, "legendre-gauss")
        dst = sphere_grid(32, 64, "legendre-gauss")
        x = torch.randn(2, 3, 64, 128)
        expected = peer(x)
        ours = conv(x.flatten(2).transpose(1, 2), src, dst)
        ours = ours.transpose(1, 2).reshape(expected.shape)
        return ((ours - expected).norm() / expected.norm()).item()

    def mesh_independence() -> float:
        torch.manual_seed(0)
        conv = DiscoConv(1, 2, (3, 4), radius=0.15).double()
        probes = regular_grid((21, 21), dtype=torch.float64)
        outs = []
        for seed in (1, 2):
            mesh = jittered_rectangle_mesh((129, 129), jitter=0.3, seed=seed,
                                           dtype=torch.float64)
            x, y = mesh.pos.T
            v = (torch.sin(2 * x) * torch.cos(3 * y))[None, :, None]
            outs.append(conv(v, mesh, probes))
        return ((outs[0] - outs[1]).norm() / outs[0].norm()).item()

    def differential_exactness() -> float:
        mesh = jittered_rectangle_mesh((41, 41), jitter=0.3, seed=3, dtype=torch.float64)
        conv = PointDifferentialConv(1, 1, (3, 4), radius=0.08)
        x, y = mesh.pos.T
        kernel = conv.build_kernel(mesh, dtype=torch.float64)
        responses = kernel.responses((3 * x - 2 * y)[:, None])  # [N, K, 1]
        exact = torch.tensor([3.0, -2.0], dtype=torch.float64) @ basis_first_moments(
            conv.basis, 2).T
        return (responses[:, :, 0] - exact).abs().max().item()

    return [
        ("DiscoConv 64x128 -> 32x64 vs torch-harmonics (rel)", versus_torch_harmonics, 0.0,
         1e-4),
        ("DiscoConv on two 16k-vertex meshes (rel diff)", mesh_independence, 0.0, 5e-3),
        ("differential kernel on a linear field (max err)", differential_exactness, 0.0, 1e-9),
    ]


def render_check(output_dir: Path) -> Callable[[], float]:
    """Render a field and its DISCO local average on the DFG channel mesh; 1.0 if the PNG is a
    real picture (varied colours, not blank), else 0.0."""

    def run() -> float:
        from PIL import Image

        mesh = perforated_rectangle_mesh(0.012, dtype=torch.float64)
        x, y = mesh.pos.T
        field = torch.sin(6 * x) * torch.cos(9 * y)
        conv = DiscoConv(1, 1, (3, 1), radius=0.05, bias=False, normalization="nodal").double()
        with torch.no_grad():  # only the radial hat centred at 0: a local weighted average
            conv.weight.zero_()
            conv.weight[0, 0, 0] = 1.0
            average = conv(field[None, :, None], mesh)[0, :, 0]
        path = render_mesh_comparison(mesh, field, average, output_dir / "channel_disco.png",
                                      field="f", width=900)
        img = np.asarray(Image.open(path).convert("RGB")).astype(float)
        colours = len(np.unique(img.reshape(-1, 3).astype(int) // 8, axis=0))
        return float(img.std() > 20 and colours > 100)

    return run


def run_checks(output_dir: Path, can_render: bool,
               print_fn: Callable[[str], None] = print) -> list[StepResult]:
    """Run every check, print one row each, and return the results."""
    output_dir.mkdir(parents=True, exist_ok=True)
    steps = quadrature_checks()
    steps.append(("mesh -> VTU -> mesh keeps fields (max |diff|)",
                  mesh_export_check(output_dir), 0.0, 1e-12))
    steps += disco_checks()
    if can_render:
        steps.append(("PyVista picture of a DISCO average (1 = drawn)", render_check(output_dir),
                      1.0, 0.0))
    print_fn(f"{'step':<52} {'value':>14} {'reference':>14} {'|error|':>10} {'time':>7}  ok")
    results = []
    for name, fn, reference, tolerance in steps:
        start = time.perf_counter()
        try:
            value = fn()
        except Exception as error:  # report and fail the demo, keep running the others
            print_fn(f"{name:<52} failed: {type(error).__name__}: {error}")
            value = float("nan")
        result = StepResult(name, value, reference, tolerance, time.perf_counter() - start)
        results.append(result)
        print_fn(f"{name:<52} {value:>14.8g} {reference:>14.8f} "
                 f"{abs(value - reference):>10.2e} {result.seconds:>6.2f}s  "
                 f"{'yes' if result.ok else 'NO'}")
    return results
