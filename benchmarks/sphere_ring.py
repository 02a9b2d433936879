"""LocalSFNO's local layers on the sphere: sparse CSR kernels vs ring (longitude FFT) form.

Run: ``.venv/bin/python benchmarks/sphere_ring.py [--quick] [--threads 1] [--label NAME]``.
Writes ``benchmarks/results/sphere_ring[_LABEL].{json,md}``.

Case: one LocalSFNO block's local terms, a sphere DISCO layer and a sphere
differential layer (piecewise-linear basis (3, 4) each, radius pi / 16, LocalSFNO's
defaults), batch 4, 32 -> 32 channels, equiangular grids 32 x 64, 64 x 128 and
128 x 256. One step = forward of both layers, a scalar loss, backward. Kernel
construction is excluded from the step time and printed separately (the ring form,
shared by both layers as in a LocalSFNO block, is built from the stencils of one
meridian; earlier revisions cut it out of the sparse kernels).
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

    from geo_neuralop.layers import SphereDifferentialConv, SphereDiscoConv

    torch.manual_seed(0)
    disco = SphereDiscoConv(CHANNELS, CHANNELS, SHAPE, radius=RADIUS)
    diff = SphereDifferentialConv(CHANNELS, CHANNELS, SHAPE, radius=RADIUS)
    x = torch.randn(BATCH, CHANNELS, nlat, nlon, requires_grad=True)
    return disco, diff, x


def sparse(nlat: int, nlon: int):
    disco, diff, x = _layers(nlat, nlon)
    disco.ring = diff.ring = False
    start = time.perf_counter()
    disco(x), diff(x)  # builds the sparse kernels and their CSR matrices
    print(f"  sparse kernels {nlat}x{nlon}: {time.perf_counter() - start:.2f} s", flush=True)

    def step():
        disco.zero_grad()
        diff.zero_grad()
        (disco(x) + diff(x)).square().mean().backward()

    return step


def ring(nlat: int, nlon: int):
    disco, diff, x = _layers(nlat, nlon)
    start = time.perf_counter()
    disco.apply_fused([disco, diff], x)  # builds the shared ring kernel
    print(f"  ring kernel {nlat}x{nlon}: {time.perf_counter() - start:.2f} s", flush=True)

    def step():
        disco.zero_grad()
        diff.zero_grad()
        disco.apply_fused([disco, diff], x).square().mean().backward()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 x 64 and 64 x 128 only")
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--label", default="", help="suffix of the result files")
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
    write_results("sphere_ring" + (f"_{args.label}" if args.label else "")
                  + ("_quick" if args.quick else ""),
                  {"machine": machine(), "results": results}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
