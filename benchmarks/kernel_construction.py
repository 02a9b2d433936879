"""DISCO kernel construction: geo_neuralop vs neuraloperator 2.0.0, scaling to 10^6 points, and
MeshNO on 10^6-point meshes.

Run: ``.venv/bin/python benchmarks/kernel_construction.py [--quick] [--parts 1 2 3]
[--label NAME]`` (neuraloperator comes with ``make install-bench``). Writes
``benchmarks/results/kernel_construction[_LABEL].{json,md}``. The package measured is
the one on ``sys.path`` (``PYTHONPATH=OLD_CHECKOUT`` measures an earlier revision;
part 3 needs this one).

Part 1 builds the kernel of a piecewise-linear basis on an n x n grid of the unit
square (grid in = grid out, radius = 2 / (n - 1), neuraloperator's default) with
both libraries. Part 2 builds kernels (K = 9, about 30 neighbours per point) on
uniformly random clouds (points in no particular order) of 10^4 to 10^6 points, on
2 threads; peak RSS of the process (imports, the cloud and the kernel included) and
bytes per edge of the growth during the build. Part 3: MeshNO (32 channels, FNO
processor, 4 blocks, batch 1, 1 input and output channel) forward + loss + backward
on a 10^6-vertex planar mesh (a jittered 1000 x 1000 triangulation of the unit
square, latent grid 64 x 64) and on 10^6 Fibonacci points of the unit sphere as a
3D cloud (equal weights 4 pi / N, latent grid 24^3, 8 modes per axis), each in its
own process, run one after the other; the first pass builds the kernels (timed
apart), the second is timed; peak RSS of the process.
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
        build.info = {"edges": int(kernel.edge_index.shape[1])}

    return build


def meshno_case(kind: str, n: int):
    import time

    import numpy as np
    import torch

    from geo_neuralop.geometry import PointCloud, jittered_rectangle_mesh
    from geo_neuralop.models import MeshNO

    torch.manual_seed(0)
    if kind == "planar mesh":
        side = int(round(math.sqrt(n)))
        cloud = jittered_rectangle_mesh((side, side))
        model = MeshNO(1, 1, latent_shape=(64, 64), hidden_channels=32, n_layers=4)
    else:
        i = np.arange(n, dtype=np.float64)
        z = 1.0 - (2.0 * i + 1.0) / n
        r = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
        lon = i * math.pi * (3.0 - math.sqrt(5.0))
        pos = np.stack([r * np.cos(lon), r * np.sin(lon), z], axis=1)
        cloud = PointCloud(torch.from_numpy(pos).float(), torch.full((n,), 4 * math.pi / n))
        model = MeshNO(1, 1, latent_shape=(24, 24, 24), hidden_channels=32, n_layers=4,
                       n_modes=(8, 8, 8))
    x = torch.sin(3 * cloud.pos[:, :1])
    start = time.perf_counter()
    model(cloud, x).square().mean().backward()
    first = time.perf_counter() - start
    edges = sum(int(k.edge_index.shape[1]) for layer in (model.encoder, model.decoder)
                for k in (layer.kernels.get_or_build(key, None) for key in layer.kernels))

    def step():
        model.zero_grad(set_to_none=True)
        model(cloud, x).square().mean().backward()

    step.info = {"first_pass_s": first, "edges": edges, "points": cloud.num_nodes}
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (smoke test)")
    parser.add_argument("--parts", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    grid_sizes = [16, 32] if args.quick else [32, 48, 64]
    cloud_sizes = [10**3, 10**4] if args.quick else [10**4, 10**5, 10**6]
    grid_sizes = grid_sizes if 1 in args.parts else []
    cloud_sizes = cloud_sizes if 2 in args.parts else []
    mesh_points = (10**4 if args.quick else 10**6) if 3 in args.parts else None

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
        result = measure(ours_random, (n,), repeats=1 if n >= 10**6 else 3, threads=2)
        scaling.append({"points": n, **result})
        print(scaling[-1], flush=True)

    meshes = []
    for kind in ("planar mesh", "sphere cloud") if mesh_points else ():
        result = measure(meshno_case, (kind, mesh_points), repeats=1, threads=2,
                         timeout=3600.0)
        meshes.append({"kind": kind, **result})
        print(meshes[-1], flush=True)

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
           "about 30 neighbours per point, 2 threads", "",
           "| points | edges | median (s) | peak RSS (MB) | RSS growth during build (MB) | "
           "growth per edge (B) |", "|---|---|---|---|---|---|"]
    for s in scaling:
        edges = (s.get("info") or {}).get("edges")
        per_edge = s["extra_rss_mb"] * 2**20 / edges if edges and "extra_rss_mb" in s else None
        md.append(f"| {s['points']:.0e} | {edges if edges else '-'} | {fmt(s.get('median_s'))} | "
                  f"{fmt(s.get('peak_rss_mb'), 4)} | {fmt(s.get('extra_rss_mb'), 4)} | "
                  f"{fmt(per_edge)} |" if "median_s" in s else
                  f"| {s['points']:.0e} | - | {s['error']} | | | |")
    if meshes:
        md += ["", "## MeshNO forward + backward on 10^6 points (batch 1, 32 channels, 2 "
               "threads)", "",
               "| input | points | kernel edges (encoder + decoder) | first pass with kernel "
               "build (s) | forward + backward (s) | peak RSS (MB) |",
               "|---|---|---|---|---|---|"]
        for m in meshes:
            info = m.get("info") or {}
            md.append(f"| {m['kind']} | {info.get('points', '-')} | {info.get('edges', '-')} | "
                      f"{fmt(info.get('first_pass_s'))} | "
                      f"{fmt(m.get('median_s')) if 'median_s' in m else m.get('error')} | "
                      f"{fmt(m.get('peak_rss_mb'), 4)} |")
    md.append("")
    write_results("kernel_construction" + (f"_{args.label}" if args.label else "")
                  + ("_quick" if args.quick else ""),
                  {"machine": machine(), "grid": rows, "scaling": scaling, "meshes": meshes},
                  "\n".join(md))


if __name__ == "__main__":
    main()
