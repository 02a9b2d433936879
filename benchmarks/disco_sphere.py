"""Sphere DISCO convolution, forward + backward: geo_neuralop vs torch-harmonics.

Run: ``.venv/bin/python benchmarks/disco_sphere.py [--quick] [--threads 1 2]``.
Writes ``benchmarks/results/disco_sphere.{json,md}``.

Case (from the kernels issue): batch 4, 16 -> 16 channels, piecewise-linear basis
(5, 4) (K = 9), "mean" normalization, equiangular grids 64 x 128 and 128 x 256,
torch-harmonics' default cutoff. One step = forward, a scalar loss, backward.
Kernel construction is excluded for both (each precomputes it once).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt, machine, measure, write_results  # noqa: E402

BATCH, CHANNELS, SHAPE = 4, 16, (5, 4)


def ours(nlat: int, nlon: int):
    import torch

    from geo_neuralop.geometry import sphere_grid
    from geo_neuralop.layers import DiscoConv

    torch.manual_seed(0)
    grid = sphere_grid(nlat, nlon, "equiangular")
    conv = DiscoConv(CHANNELS, CHANNELS, SHAPE, radius=math.pi / (nlat - 1) * (1 + 1e-3))
    kernel = conv.build_kernel(grid)
    x = torch.randn(BATCH, nlat * nlon, CHANNELS, requires_grad=True)
    conv(x, kernel).square().mean().backward()  # warm-up: builds and caches the CSR matrices

    def step():
        conv.zero_grad()
        conv(x, kernel).square().mean().backward()

    return step


def torch_harmonics(nlat: int, nlon: int):
    import torch
    from torch_harmonics import DiscreteContinuousConvS2

    torch.manual_seed(0)
    conv = DiscreteContinuousConvS2(CHANNELS, CHANNELS, (nlat, nlon), (nlat, nlon), SHAPE,
                                    basis_type="piecewise linear", basis_norm_mode="mean",
                                    grid_in="equiangular", grid_out="equiangular")
    x = torch.randn(BATCH, CHANNELS, nlat, nlon, requires_grad=True)

    def step():
        conv.zero_grad()
        conv(x).square().mean().backward()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 x 64 only")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    import torch_harmonics as th

    grids = [(32, 64)] if args.quick else [(64, 128), (128, 256)]
    rows = []
    for threads in args.threads:
        for nlat, nlon in grids:
            a = measure(ours, (nlat, nlon), repeats=7, threads=threads)
            b = measure(torch_harmonics, (nlat, nlon), repeats=3 if nlat <= 64 else 1,
                        threads=threads, timeout=1800)
            ratio = b["median_s"] / a["median_s"] if "median_s" in a and "median_s" in b else None
            rows.append({"threads": threads, "grid": [nlat, nlon], "ours": a,
                         "torch_harmonics": b, "speedup": ratio})
            print(rows[-1], flush=True)
    md = ["# Sphere DISCO convolution: forward + backward", "",
          "Machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()), "",
          f"B = {BATCH}, {CHANNELS} -> {CHANNELS} channels, K = 9 (piecewise linear {SHAPE}), "
          f"equiangular grid, torch-harmonics {th.__version__} `DiscreteContinuousConvS2` "
          "(its pure-torch CPU path).", "",
          "| threads | grid | geo_neuralop median (s) | torch-harmonics median (s) | speed-up | "
          "peak RSS ours (MB) | peak RSS torch-harmonics (MB) |",
          "|---|---|---|---|---|---|---|"]
    for r in rows:
        a, b = r["ours"], r["torch_harmonics"]
        md.append(f"| {r['threads']} | {r['grid'][0]}×{r['grid'][1]} | {fmt(a.get('median_s'))} | "
                  f"{fmt(b.get('median_s')) if 'median_s' in b else b.get('error')} | "
                  f"{fmt(r['speedup'], 4)}× | {fmt(a.get('peak_rss_mb'), 4)} | "
                  f"{fmt(b.get('peak_rss_mb'), 4)} |")
    md.append("")
    write_results("disco_sphere" + ("_quick" if args.quick else ""),
                  {"machine": machine(), "rows": rows}, "\n".join(md))


if __name__ == "__main__":
    main()
