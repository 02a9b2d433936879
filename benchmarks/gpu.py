"""Training throughput and peak memory on a GPU: LocalSFNO, SFNO, torch-harmonics' SFNO, MeshNO.

Run on a CUDA machine: ``python benchmarks/gpu.py [--budget 450]``. On a machine without
CUDA it prints why and exits with status 0. Writes ``gpu.{json,md}`` under ``$OUT`` when
set, else ``benchmarks/results``.

Cases (batch 1, float32 weights, Adam; one training step = forward, mean-square
loss, backward, optimizer step), each with bf16 autocast off and on:

- LocalSFNO (32 channels, 4 blocks, DISCO and differential layers, radius 2 cells of
  the internal grid) and our SFNO, in the layout of ``benchmarks/sphere_scale.py``
  (internal Legendre-Gauss grid at half resolution, ``lmax`` its ``nlat``), at
  256 x 512 and 721 x 1440;
- torch-harmonics 0.8's SFNO example model with the same width, depth, internal
  grid and scale factor, beside ours;
- MeshNO (32 channels, 4 FNO blocks, latent grid 64 x 64, mesh DISCO and differential
  layers) on a 10^5-vertex jittered triangulation of the unit square.

Timing: 3 warm-up steps (the first builds kernels and transforms, on the CPU), then
steps timed with CUDA events until 10 steps or 20 s; steps/s is the median's
inverse. Peak GPU memory is ``torch.cuda.max_memory_allocated`` over the timed steps.
Cases stop being started when ``--budget`` seconds have passed (the script is meant to
finish in under 8 minutes); skipped cases are listed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

SCALE, HIDDEN, LAYERS = 2, 32, 4


def _sphere_model(kind: str, nlat: int, nlon: int):
    inner = (nlat - 1) // SCALE + 1
    if kind == "SFNO (torch-harmonics)":
        from torch_harmonics.examples.models.sfno import SphericalFourierNeuralOperator

        return SphericalFourierNeuralOperator(
            img_size=(nlat, nlon), grid="equiangular", grid_internal="legendre-gauss",
            scale_factor=SCALE, in_chans=3, out_chans=3, embed_dim=HIDDEN, num_layers=LAYERS,
            mlp_ratio=0.5)
    from geo_neuralop.models import SFNO, LocalSFNO

    config = {"lmax": inner, "hidden_channels": HIDDEN, "n_layers": LAYERS,
              "grid": "equiangular", "internal_grid": "legendre-gauss",
              "internal_scale": SCALE}
    if kind == "LocalSFNO (ours)":
        radius = 2.0 * math.pi / (inner - 1)
        return LocalSFNO(3, 3, disco_radius=radius, diff_radius=radius, **config)
    return SFNO(3, 3, **config)


def sphere_case(kind: str, nlat: int, nlon: int, device: torch.device):
    model = _sphere_model(kind, nlat, nlon).to(device)
    x = torch.randn(1, 3, nlat, nlon, device=device)
    target = torch.randn(1, 3, nlat, nlon, device=device)
    return model, lambda: (model(x) - target).square().mean()


def mesh_case(points: int, device: torch.device):
    from geo_neuralop.geometry import jittered_rectangle_mesh
    from geo_neuralop.models import MeshNO

    side = int(round(math.sqrt(points)))
    mesh = jittered_rectangle_mesh((side, side)).to(device)
    model = MeshNO(1, 1, latent_shape=(64, 64), hidden_channels=HIDDEN, n_layers=LAYERS,
                   mesh_layers=True, mesh_radius=2.5 / side).to(device)
    x = torch.sin(3 * mesh.pos[:, :1])
    return model, lambda: (model(mesh, x) - x).square().mean()


def run(make, bf16: bool, max_steps: int = 10, max_seconds: float = 20.0) -> dict:
    model, loss_fn = make()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn()
        loss.backward()
        optimizer.step()

    start = time.perf_counter()
    step()  # builds kernels and transforms
    torch.cuda.synchronize()
    first = time.perf_counter() - start
    for _ in range(2):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times, began = [], time.perf_counter()
    while len(times) < max_steps and (time.perf_counter() - began < max_seconds or
                                      len(times) < 2):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        step()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / 1000)
    median = statistics.median(times)
    return {"first_step_s": first, "step_s": median, "steps_per_s": 1.0 / median,
            "times": times, "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=450.0,
                        help="seconds after which no new case starts")
    parser.add_argument("--mesh-points", type=int, default=100_000)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("benchmarks/gpu.py needs a CUDA device; torch.cuda.is_available() is False "
              f"(torch {torch.__version__}); nothing measured.")
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    cases = []
    for nlat, nlon in ((256, 512), (721, 1440)):
        for kind in ("LocalSFNO (ours)", "SFNO (ours)", "SFNO (torch-harmonics)"):
            cases.append((f"{kind} {nlat}x{nlon}",
                          lambda k=kind, a=nlat, b=nlon: sphere_case(k, a, b, device)))
    cases.append((f"MeshNO {args.mesh_points} vertices",
                  lambda: mesh_case(args.mesh_points, device)))
    started = time.perf_counter()
    results, skipped = {}, []
    for name, make in cases:
        for bf16 in (False, True):
            label = f"{name} | bf16 {'on' if bf16 else 'off'}"
            if time.perf_counter() - started > args.budget:
                skipped.append(label)
                continue
            try:
                results[label] = run(make, bf16)
            except Exception as error:  # record the failure and go on  # noqa: BLE001
                results[label] = {"error": f"{type(error).__name__}: {error}",
                                  "trace": traceback.format_exc(limit=3)}
            torch.cuda.empty_cache()
            print(label, {k: v for k, v in results[label].items() if k not in ("times",
                                                                           "trace")},
                  flush=True)
    md = ["# Training on a GPU", "",
          f"Device: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"{time.perf_counter() - started:.0f} s in all.", "",
          "| case | bf16 autocast | steps/s | step (ms) | first step with build (s) | "
          "peak GPU memory (MB) |", "|---|---|---|---|---|---|"]
    for label, r in results.items():
        name, bf16 = label.split(" | ")
        if "error" in r:
            md.append(f"| {name} | {bf16[5:]} | {r['error'][:80]} | | | |")
        else:
            md.append(f"| {name} | {bf16[5:]} | {r['steps_per_s']:.3g} | "
                      f"{1000 * r['step_s']:.3g} | {r['first_step_s']:.3g} | "
                      f"{r['peak_gpu_mb']:.5g} |")
    if skipped:
        md += ["", "Skipped (time budget): " + "; ".join(skipped)]
    text = "\n".join(md) + "\n"
    print(text)
    out = Path(os.environ.get("OUT") or Path(__file__).resolve().parent / "results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps({"results": results, "skipped": skipped},
                                             indent=2) + "\n")
    (out / "gpu.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
