"""DISCO kernel construction: geo_neuralop vs neuraloperator 2.0.0, and scaling to 10^6 points.

Run: ``.venv/bin/python benchmarks/kernel_construction.py [--quick]``
(neuraloperator comes with ``make install-bench``). Writes
``benchmarks/results/kernel_construction.{json,md}``.

Part 1 builds the kernel of a piecewise-linear basis on an n x n grid of the unit
square (grid in = grid out, radius = 2 / (n - 1), neuraloperator's default) with
both libraries. Part 2 builds kernels (K = 9, about 30 neighbours per point) on
uniformly random clouds of 10^4 to 10^6 points.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt, machine, measure, write_results  # noqa: E402


def ours_grid(n: int):
    import torch

    from geo_neuralop.geometry import regular_grid
    from geo_neuralop.kernels import disco_kernel

    grid = regular_grid((n, n), dtype=torch.float32)
    radius = 2.0 / (n - 1)
    return lambda: disco_kernel(grid, kernel_shape=(3, 4), radius=radius)


def neuralop_grid(n: int):
    from neuralop.layers.discrete_continuous_convolution import DiscreteContinuousConv2d

    from geo_neuralop.geometry import regular_grid

    # The same grid and trapezoid weights as ours, passed as tensors: neuraloperator 2.0.0's
    # grid_in="equidistant" path fails with torch-harmonics 0.8 (torch.from_numpy on a tensor).
    grid = regular_grid((n, n))
    points, weights = grid.pos.T.contiguous(), grid.weights
    return lambda: DiscreteContinuousConv2d(
        1, 1, grid_in=points, grid_out=points, quadrature_weights=weights,
        kernel_shape=(3, 4), radius_cutoff=2.0 / (n - 1),
    )


def ours_random(n: int, neighbours: float = 30.0):
    import numpy as np
    import torch

    from geo_neuralop.geometry import PointCloud
    from geo_neuralop.kernels import disco_kernel

    rng = np.random.default_rng(0)
    cloud = PointCloud(torch.from_numpy(rng.random((n, 2))).float(), torch.full((n,), 1.0 / n))
    radius = math.sqrt(neighbours / (math.pi * n))

    def build():
        kernel = disco_kernel(cloud, kernel_shape=(5, 4), radius=radius)
        build.edges = kernel.edge_index.shape[1]

    return build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (smoke test)")
    args = parser.parse_args()
    grid_sizes = [16, 32] if args.quick else [32, 48, 64]
    cloud_sizes = [10**3, 10**4] if args.quick else [10**4, 10**5, 10**6]

    rows = []
    for n in grid_sizes:
        ours = measure(ours_grid, (n,), repeats=5)
        try:
            import neuralop  # noqa: F401

            peer = measure(neuralop_grid, (n,), repeats=1 if n >= 48 else 3)
        except ImportError:
            peer = {"error": "neuraloperator not installed (make install-bench)"}
        speedup = (peer["median_s"] / ours["median_s"]
                   if "median_s" in peer and "median_s" in ours else None)
        rows.append({"n": n, "points": n * n, "ours": ours, "neuraloperator": peer,
                     "speedup": speedup})
        print(rows[-1], flush=True)

    scaling = []
    for n in cloud_sizes:
        result = measure(ours_random, (n,), repeats=1 if n >= 10**6 else 3)
        scaling.append({"points": n, **result})
        print(scaling[-1], flush=True)

    md = ["# DISCO kernel construction", "",
          "Machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()), "",
          "## geo_neuralop vs neuraloperator 2.0.0 `DiscreteContinuousConv2d` (n x n grid, "
          "piecewise linear (3, 4), radius 2/(n-1), 2 threads)", "",
          "| grid | points | geo_neuralop median (s) | neuraloperator median (s) | speed-up | "
          "peak RSS ours (MB) | peak RSS neuraloperator (MB) |",
          "|---|---|---|---|---|---|---|"]
    for r in rows:
        o, p = r["ours"], r["neuraloperator"]
        md.append(f"| {r['n']}² | {r['points']} | {fmt(o.get('median_s'))} | "
                  f"{fmt(p.get('median_s')) if 'median_s' in p else p.get('error')} | "
                  f"{fmt(r['speedup'], 4)}× | {fmt(o.get('peak_rss_mb'), 4)} | "
                  f"{fmt(p.get('peak_rss_mb'), 4)} |")
    md += ["", "## Scaling: random points in the unit square, K = 9 (piecewise linear (5, 4)), "
           "about 30 neighbours per point", "",
           "| points | median (s) | peak RSS (MB) | RSS growth during build (MB) |",
           "|---|---|---|---|"]
    for s in scaling:
        md.append(f"| {s['points']:.0e} | {fmt(s.get('median_s'))} | "
                  f"{fmt(s.get('peak_rss_mb'), 4)} | {fmt(s.get('extra_rss_mb'), 4)} |"
                  if "median_s" in s else f"| {s['points']:.0e} | {s['error']} | | |")
    md.append("")
    write_results("kernel_construction" + ("_quick" if args.quick else ""),
                  {"machine": machine(), "grid": rows, "scaling": scaling}, "\n".join(md))


if __name__ == "__main__":
    main()
