"""DISCO convolution forward + backward on a GPU: geo_neuralop's CSR path (cuSPARSE).

Run on a CUDA machine: ``python benchmarks/disco_gpu.py``. Prints a markdown table
and writes ``benchmarks/results/disco_gpu.{json,md}`` (or under $OUT when set).
Case: B = 4, 16 -> 16 channels, K = 9, equiangular grids, float32, CUDA events.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from pathlib import Path

import torch

from geo_neuralop.geometry import sphere_grid
from geo_neuralop.layers import DiscoConv


def time_step(nlat: int, nlon: int, batch: int = 4, channels: int = 16, repeats: int = 20):
    grid = sphere_grid(nlat, nlon, "equiangular")
    conv = DiscoConv(channels, channels, (5, 4), radius=math.pi / (nlat - 1) * (1 + 1e-3)).cuda()
    kernel = conv.build_kernel(grid)
    x = torch.randn(batch, nlat * nlon, channels, device="cuda", requires_grad=True)
    for _ in range(3):
        conv(x, kernel).square().mean().backward()
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        conv.zero_grad()
        conv(x, kernel).square().mean().backward()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop) / 1000)
    return {"grid": [nlat, nlon], "edges": int(kernel.edge_index.shape[1]),
            "median_s": statistics.median(times), "times": times,
            "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20}


def main() -> None:
    rows = [time_step(*g) for g in ((64, 128), (128, 256), (256, 512))]
    md = ["# DISCO forward + backward on a GPU", "",
          f"Device: {torch.cuda.get_device_name()}, torch {torch.__version__}", "",
          "| grid | edges | median (ms) | peak GPU memory (MB) |", "|---|---|---|---|"]
    md += [f"| {r['grid'][0]}×{r['grid'][1]} | {r['edges']} | {1000 * r['median_s']:.3g} | "
           f"{r['peak_gpu_mb']:.4g} |" for r in rows]
    text = "\n".join(md) + "\n"
    print(text)
    out = Path(os.environ.get("OUT", Path(__file__).resolve().parent / "results"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "disco_gpu.json").write_text(json.dumps(rows, indent=2))
    (out / "disco_gpu.md").write_text(text)


if __name__ == "__main__":
    main()
