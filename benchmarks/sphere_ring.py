"""LocalSFNO's local layers on the sphere: sparse CSR kernels vs ring (longitude FFT) form.

Run: ``.venv/bin/python benchmarks/sphere_ring.py [--quick] [--threads 1]``.
Writes ``benchmarks/results/sphere_ring.{json,md}``.

Case: one LocalSFNO block's local terms, a sphere DISCO layer and a sphere
differential layer (piecewise-linear basis (3, 4) each, radius pi / 16, LocalSFNO's
defaults), batch 4, 32 -> 32 channels, equiangular grids 32 x 64, 64 x 128 and
128 x 256. One step = forward of both layers, a scalar loss, backward. Kernel
construction is excluded from the step time and reported separately (the sparse
kernels are built in both cases; the ring form is extracted from them).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt, machine, measure, write_results  # noqa: E402

BATCH, CHANNELS, SHAPE, RADIUS = 4, 32, (3, 4), math.pi / 16


def _layers(nlat: int, nlon: int):
    import torch

    from geo_neuralop.geometry import sphere_grid
    from geo_neuralop.layers import DiscoConv
    from geo_neuralop.layers.differential_conv import PointDifferentialConv

    torch.manual_seed(0)
    grid = sphere_grid(nlat, nlon, "equiangular")
    disco = DiscoConv(CHANNELS, CHANNELS, SHAPE, radius=RADIUS, bias=False)
    diff = PointDifferentialConv(CHANNELS, CHANNELS, SHAPE, radius=RADIUS)
    start = time.perf_counter()
    kernels = (disco.build_kernel(grid), diff.build_kernel(grid))
    build = time.perf_counter() - start
    x = torch.randn(BATCH, CHANNELS, nlat, nlon, requires_grad=True)
    return disco, diff, kernels, x, build


def sparse(nlat: int, nlon: int):
    disco, diff, kernels, x, build = _layers(nlat, nlon)
    print(f"  sparse kernels {nlat}x{nlon}: {build:.2f} s, "
          f"{kernels[0].edge_index.shape[1]:,} edges", flush=True)

    def step():
        disco.zero_grad()
        diff.zero_grad()
        flat = x.flatten(2).transpose(1, 2)
        (disco(flat, kernels[0]) + diff(flat, kernels[1])).square().mean().backward()

    step()  # builds and caches the CSR matrices
    return step


def ring(nlat: int, nlon: int):
    import torch

    from geo_neuralop.layers.sphere_ring_conv import SphereRingKernel

    disco, diff, kernels, x, build = _layers(nlat, nlon)
    start = time.perf_counter()
    operator = SphereRingKernel(kernels, nlat, nlon)
    print(f"  ring form {nlat}x{nlon}: {time.perf_counter() - start:.2f} s after "
          f"{build:.2f} s of sparse kernels; {operator.n_blocks} blocks of "
          f"{operator.block_rows} rows, window {operator.window}", flush=True)

    def step():
        disco.zero_grad()
        diff.zero_grad()
        weight = torch.cat([disco.weight, diff.weight], dim=2)
        operator.apply(x, weight).square().mean().backward()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 x 64 and 64 x 128 only")
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    args = parser.parse_args()
    shapes = [(32, 64), (64, 128)] + ([] if args.quick else [(128, 256)])
    results: dict = {}
    for threads in args.threads:
        for nlat, nlon in shapes:
            for name, target in (("sparse", sparse), ("ring", ring)):
                repeats = 3 if nlat >= 128 else 7
                r = measure(target, (nlat, nlon), repeats=repeats, threads=threads)
                results[f"{threads}|{name}|{nlat}x{nlon}"] = r
                print(f"{threads} thread(s) {name} {nlat}x{nlon}: "
                      f"{fmt(r.get('median_s'))} s {r.get('error', '')}", flush=True)
    md = ["# Sphere DISCO + differential layers: sparse kernels vs ring FFTs", "",
          "Machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()) + ".", "",
          f"B = {BATCH}, {CHANNELS} -> {CHANNELS} channels, basis {SHAPE} for each layer, "
          "radius pi/16, equiangular grids; forward of both layers + loss + backward, "
          "median seconds (each case in a fresh process).", "",
          "| threads | grid | sparse CSR (s) | ring FFT (s) | speed-up | peak RSS sparse / ring"
          " (MB) |", "|---|---|---|---|---|---|"]
    for threads in args.threads:
        for nlat, nlon in shapes:
            a = results[f"{threads}|sparse|{nlat}x{nlon}"]
            b = results[f"{threads}|ring|{nlat}x{nlon}"]
            ratio = (a["median_s"] / b["median_s"]) if "median_s" in a and "median_s" in b \
                else None
            md.append(f"| {threads} | {nlat}×{nlon} | {fmt(a.get('median_s'))} | "
                      f"{fmt(b.get('median_s'))} | {fmt(ratio)} | "
                      f"{fmt(a.get('peak_rss_mb'), 4)} / {fmt(b.get('peak_rss_mb'), 4)} |")
    md.append("")
    write_results("sphere_ring" + ("_quick" if args.quick else ""),
                  {"machine": machine(), "results": results}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
