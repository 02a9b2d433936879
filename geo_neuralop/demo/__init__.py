"""The end-to-end demo behind ``make demo`` / ``geo-neuralop demo``.

Part 1 (:mod:`~geo_neuralop.demo.checks`) checks quadrature, mesh export and
DISCO kernels against independent references; part 2
(:mod:`~geo_neuralop.demo.pipeline`) generates data, trains a MeshNO and a
LocalSFNO, evaluates them against persistence and draws their predictions. The
demo exits non-zero when a check fails or a model does not beat persistence.
"""

from __future__ import annotations

import time
from pathlib import Path

from geo_neuralop.demo.checks import run_checks
from geo_neuralop.demo.pipeline import print_summary, run_pipeline
from geo_neuralop.viz import rendering_available

__all__ = ["run_demo"]


def run_demo(output_dir: str | Path = "outputs/demo", checks_only: bool = False) -> int:
    """Run both parts, print their tables, and return a process exit code (0 = all passed)."""
    output_dir = Path(output_dir)
    can_render, why_not = rendering_available()
    print("geo_neuralop demo: quadrature on grids, meshes and spheres, mesh export, "
          "DISCO and differential kernels")
    print(f"outputs: {output_dir.resolve()}\n")
    results = run_checks(output_dir, can_render)
    failed = [r.name for r in results if not r.ok]
    print()
    if failed:
        print(f"demo FAILED: {len(failed)} step(s) off their reference: {failed}")
        return 1
    print(f"checks passed: {len(results)} steps; mesh file: {output_dir / 'channel_mesh.vtu'}")
    if can_render:
        print(f"picture: {output_dir / 'channel_disco.png'}")
    else:
        print(f"rendering skipped: off-screen OpenGL is not available here ({why_not})")
    if checks_only:
        return 0
    print("\ngeo_neuralop demo, part 2: generate data, train, evaluate against persistence, "
          "render")
    start = time.perf_counter()
    summary = run_pipeline(output_dir, can_render=can_render)
    return 0 if print_summary(summary, output_dir, time.perf_counter() - start) else 1
