"""LocalSFNO at weather resolutions: kernel build time, step time against SFNO, peak memory.

Run: ``.venv/bin/python benchmarks/sphere_scale.py [--quick] [--threads 1 2]
[--sizes 129x256 ...] [--grids equiangular legendre-gauss] [--label NAME] [--no-peer]``.
Writes ``benchmarks/results/sphere_scale[_LABEL].{json,md}``; cases already in that
JSON are skipped, so an interrupted run resumes.

Case: LocalSFNO with 32 hidden channels and 4 blocks, each with a sphere DISCO and a
differential layer (piecewise-linear basis (3, 4), radius 2 cells of the blocks'
grid), the weather-model layout of torch-harmonics' SFNO: the first block maps the
input grid onto an internal Legendre-Gauss grid of half the resolution
(``internal_scale=2``; ``(nlat - 1) / 2 + 1`` by ``nlon / 2``), the last block maps
back, the others stay on it; ``lmax`` = the internal ``nlat`` (torch-harmonics' default
``modes_lat``). Batch 1, 3 input
and output channels; one step = forward, mean-square loss, backward. Every case runs
in a fresh process; alone, its peak RSS covers the model, the kernel build and two
forward+backward passes, and "build" is the time spent constructing the local
layers' kernels (in the first pass). SFNO is the same model without the local
layers. Step times and their ratio come from a third process holding both models
and alternating their steps (``--steps`` each), so that the load of a shared machine
hits both alike: the ratio is the median of the per-pair ratios. Peer: torch-harmonics 0.8's
``DiscreteContinuousConvS2`` (32 -> 32 channels, the same basis, radius and grids,
input grid to internal grid), its construction time and the peak RSS of the
process, where it finishes within ``--peer-timeout`` seconds.

The package under test is the one on ``sys.path`` (``PYTHONPATH=OLD_CHECKOUT`` measures
an earlier revision with the same script).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, fmt, machine, measure, write_results  # noqa: E402

HIDDEN, LAYERS, SCALE, CELLS = 32, 4, 2, 2.0
SIZES = [(129, 256), (181, 360), (361, 720), (721, 1440)]
CHECKPOINT_ENV = "GEO_NEURALOP_SPHERE_SCALE_CHECKPOINT_BLOCKS"


def _config(nlat: int, nlon: int, grid: str) -> dict:
    inner = (nlat - 1) // SCALE + 1
    # --checkpoint-blocks reaches the case processes through the environment
    return {"in_channels": 3, "out_channels": 3, "lmax": inner, "hidden_channels": HIDDEN,
            "n_layers": LAYERS, "grid": grid, "internal_grid": "legendre-gauss",
            "internal_scale": SCALE,
            "checkpoint_blocks": os.environ.get(CHECKPOINT_ENV) == "1"}


def _radius(nlat: int) -> float:
    inner = (nlat - 1) // SCALE + 1
    return CELLS * math.pi / (inner - 1)  # the internal grid's latitude spacing, about


def _timed_construction():
    """Accumulate the time spent building local kernels (ring kernels and, in earlier
    revisions, the sparse kernels they were cut from); returns the running total."""
    from geo_neuralop.kernels import sphere_ring
    from geo_neuralop.layers import disco_conv

    total = {"s": 0.0, "depth": 0}

    def wrap(owner, name):
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            total["depth"] += 1
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                total["depth"] -= 1
                if total["depth"] == 0:
                    total["s"] += time.perf_counter() - start

        setattr(owner, name, timed)

    wrap(sphere_ring.SphereRingKernel, "__init__")
    wrap(disco_conv.DiscoConv, "build_kernel")
    return total


def model_case(kind: str, nlat: int, nlon: int, grid: str):
    import torch

    from geo_neuralop.models import SFNO, LocalSFNO

    build = _timed_construction()
    torch.manual_seed(0)
    config = _config(nlat, nlon, grid)
    if kind == "local_sfno":
        radius = _radius(nlat)
        model = LocalSFNO(**config, disco_radius=radius, diff_radius=radius)
    else:
        model = SFNO(**config)
    x = torch.randn(1, 3, nlat, nlon)
    start = time.perf_counter()
    model(x).square().mean().backward()  # builds the transforms and kernels
    first = time.perf_counter() - start

    def step():
        model.zero_grad(set_to_none=True)
        model(x).square().mean().backward()

    step.info = {"first_step_s": first, "build_s": build["s"]}
    return step


def paired_case(nlat: int, nlon: int, grid: str, steps: int):
    """Both models in one process, steps alternating (LocalSFNO, SFNO, SFNO, LocalSFNO, ...),
    so that a change of the machine's load hits both: the ratio is the median of the
    per-pair ratios."""
    import statistics

    import torch

    from geo_neuralop.models import SFNO, LocalSFNO

    torch.manual_seed(0)
    config = _config(nlat, nlon, grid)
    radius = _radius(nlat)
    models = {"local_sfno": LocalSFNO(**config, disco_radius=radius, diff_radius=radius),
              "sfno": SFNO(**config)}
    x = torch.randn(1, 3, nlat, nlon)

    def one(model) -> float:
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        model(x).square().mean().backward()
        return time.perf_counter() - start

    for model in models.values():
        one(model)  # builds

    def run():
        times = {"local_sfno": [], "sfno": []}
        for i in range(steps):
            order = ("local_sfno", "sfno") if i % 2 == 0 else ("sfno", "local_sfno")
            for name in order:
                times[name].append(one(models[name]))
        ratios = [a / b for a, b in zip(times["local_sfno"], times["sfno"], strict=True)]
        run.info = {"local_sfno_s": statistics.median(times["local_sfno"]),
                    "sfno_s": statistics.median(times["sfno"]),
                    "ratio": statistics.median(ratios), "times": times}

    return run


def peer_case(nlat: int, nlon: int, grid: str):
    from torch_harmonics import DiscreteContinuousConvS2

    inner = ((nlat - 1) // SCALE + 1, nlon // SCALE)

    def build():
        start = time.perf_counter()
        DiscreteContinuousConvS2(HIDDEN, HIDDEN, (nlat, nlon), inner, kernel_shape=(3, 4),
                                 basis_type="piecewise linear", grid_in=grid,
                                 grid_out="legendre-gauss", theta_cutoff=_radius(nlat))
        build.info = {"build_s": time.perf_counter() - start}

    return build


def _load(path: Path) -> dict:
    return json.loads(path.read_text())["cases"] if path.exists() else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="129x256 and 181x360 only")
    parser.add_argument("--sizes", nargs="+", default=None, help="e.g. 129x256 721x1440")
    parser.add_argument("--grids", nargs="+", default=["equiangular", "legendre-gauss"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--steps", type=int, default=3, help="timed steps of each model")
    parser.add_argument("--label", default="", help="suffix of the result files")
    parser.add_argument("--checkpoint-blocks", action="store_true",
                        help="both models with checkpoint_blocks=True (activation "
                        "checkpointing; use with --label)")
    parser.add_argument("--no-peer", action="store_true", help="skip torch-harmonics")
    parser.add_argument("--peer-timeout", type=float, default=600.0)
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args()
    if args.checkpoint_blocks:
        os.environ[CHECKPOINT_ENV] = "1"
    sizes = SIZES[:2] if args.quick else SIZES
    if args.sizes:
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    name = "sphere_scale" + (f"_{args.label}" if args.label else "") + (
        "_quick" if args.quick else "")
    path = RESULTS / f"{name}.json"
    cases = _load(path)

    def save() -> None:
        RESULTS.mkdir(exist_ok=True)
        from geo_neuralop.utils import atomic_path

        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps({"machine": machine(), "cases": cases}, indent=2) + "\n")

    for nlat, nlon in sizes:
        for grid in args.grids:
            for threads in sorted(set(args.threads)):
                for kind in ("local_sfno", "sfno", "paired"):
                    key = f"{kind}|{nlat}x{nlon}|{grid}|{threads}"
                    if key in cases:
                        continue
                    if kind == "paired":
                        cases[key] = measure(paired_case, (nlat, nlon, grid, args.steps), 1,
                                             threads, args.timeout)
                    else:  # alone in its process: build time and peak memory
                        cases[key] = measure(model_case, (kind, nlat, nlon, grid), 1, threads,
                                             args.timeout)
                    print(key, {k: v for k, v in cases[key].items() if k != "times"},
                          flush=True)
                    save()
            key = f"torch_harmonics|{nlat}x{nlon}|{grid}|1"
            if not args.no_peer and key not in cases:
                cases[key] = measure(peer_case, (nlat, nlon, grid), 1, 1, args.peer_timeout)
                print(key, cases[key], flush=True)
                save()

    md = ["# LocalSFNO at weather resolutions", "",
          "Machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()) + ".", "",
          f"LocalSFNO, {HIDDEN} channels, {LAYERS} blocks with a DISCO and a differential "
          f"layer each (basis (3, 4), radius {CELLS:g} cells of the internal grid), internal "
          f"Legendre-Gauss grid at 1/{SCALE} resolution, lmax = internal nlat; batch 1; "
          "step = forward + loss + backward (medians of alternating steps of both models in "
          "one process; ratio = median of the per-pair ratios); build = the local "
          "kernels' construction; peak RSS of each model's own process (model, build, two "
          "steps). "
          "torch-harmonics 0.8 DiscreteContinuousConvS2: construction of one layer (input "
          "grid to internal grid) and the peak RSS of its process.", "",
          "| grid | kind | threads | build (s) | LocalSFNO step (s) | SFNO step (s) | ratio | "
          "peak RSS LocalSFNO / SFNO (MB) | torch-harmonics build (s) / peak RSS (MB) |",
          "|---|---|---|---|---|---|---|---|---|"]
    for nlat, nlon in sizes:
        for grid in args.grids:
            peer = cases.get(f"torch_harmonics|{nlat}x{nlon}|{grid}|1", {})
            peer_text = (f"{fmt((peer.get('info') or {}).get('build_s'))} / "
                         f"{fmt(peer.get('peak_rss_mb'), 4)}" if "times" in peer else
                         peer.get("error", "-"))
            for threads in sorted(set(args.threads)):
                a = cases.get(f"local_sfno|{nlat}x{nlon}|{grid}|{threads}", {})
                b = cases.get(f"sfno|{nlat}x{nlon}|{grid}|{threads}", {})
                pair = cases.get(f"paired|{nlat}x{nlon}|{grid}|{threads}", {})
                timing = pair.get("info") or {}
                build = (a.get("info") or {}).get("build_s")
                local = fmt(timing.get("local_sfno_s")) if timing else pair.get("error", "-")
                md.append(f"| {nlat}×{nlon} | {grid} | {threads} | "
                          f"{fmt(build) if 'times' in a else a.get('error', '-')} | {local} | "
                          f"{fmt(timing.get('sfno_s'))} | {fmt(timing.get('ratio'))} | "
                          f"{fmt(a.get('peak_rss_mb'), 4)} / {fmt(b.get('peak_rss_mb'), 4)} | "
                          f"{peer_text} |")
    md.append("")
    write_results(name, {"machine": machine(), "cases": cases}, "\n".join(md))


if __name__ == "__main__":
    main()
