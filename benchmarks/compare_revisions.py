"""Step times of the models and sphere local layers at two revisions of the package, paired.

Run: ``.venv/bin/python benchmarks/compare_revisions.py --old-source OLD [--steps 20]
[--threads 1] [--quick]``, where ``OLD`` is a checkout of the earlier commit (``git
worktree add OLD REV``). Writes ``benchmarks/results/compare_revisions.{json,md}``.

The earlier revision's package is copied and imported as ``geo_neuralop_old`` beside the
current one, so both run in the same process: for every case (the models of
``benchmarks/models.py`` and the sphere DISCO + differential layers of
``benchmarks/sphere_ring.py``) the two revisions' steps alternate, and the figure is
the median of the per-step ratios new / old (below 1: the new revision is faster), which
a shared machine's changing load hardly moves. Each case runs in a fresh process.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BATCH, HIDDEN, LAYERS = 4, 32, 4

MODEL_CASES = [("FNO", (64, 64)), ("AMFNO", (64, 64)), ("LocalNO", (64, 64)),
               ("SFNO", (32, 64)), ("SFNO", (64, 128)), ("LocalSFNO", (32, 64)),
               ("LocalSFNO", (64, 128)), ("MeshNO", (1200, 0))]
LAYER_CASES = [("sphere local layers", (32, 64)), ("sphere local layers", (64, 128)),
               ("sphere local layers", (128, 256))]


def _model(package, name: str, shape: tuple[int, int]):
    import torch

    models = importlib.import_module(f"{package}.models")

    if name == "FNO":
        return models.FNO(1, 1, n_modes=(16, 16), hidden_channels=HIDDEN, n_layers=LAYERS)
    if name == "AMFNO":
        return models.AMFNO(1, 1, n_dim=2, hidden_channels=HIDDEN, n_layers=LAYERS)
    if name == "LocalNO":
        return models.LocalNO(1, 1, n_modes=(16, 16), hidden_channels=HIDDEN, n_layers=LAYERS)
    if name == "MeshNO":
        return models.MeshNO(3, 3, latent_shape=(48, 12), hidden_channels=24, n_layers=3,
                             n_modes=(20, 8))
    nlat, nlon = shape
    lmax = min(nlat, nlon // 2)
    common = {"lmax": lmax, "hidden_channels": HIDDEN, "n_layers": LAYERS,
              "operator_type": "driscoll-healy-complex", "channel_mlp_expansion": 0.5}
    cls = models.SFNO if name == "SFNO" else models.LocalSFNO
    torch.manual_seed(0)
    return cls(1, 1, **common)


def _model_step(package: str, name: str, shape: tuple[int, int]):
    import torch

    torch.manual_seed(0)
    model = _model(package, name, shape)
    if name == "MeshNO":
        from torch_geometric.data import Batch

        geometry = importlib.import_module(f"{package}.geometry")
        meshes = [geometry.perforated_rectangle_mesh(0.045 + 0.002 * i) for i in range(BATCH)]
        batch = Batch.from_data_list(meshes)
        x = torch.randn(batch.num_nodes, 3, generator=torch.Generator().manual_seed(1))

        def step():
            model.zero_grad(set_to_none=True)
            model(batch, x=x).square().mean().backward()
    else:
        x = torch.randn(BATCH, 1, *shape, generator=torch.Generator().manual_seed(1))

        def step():
            model.zero_grad(set_to_none=True)
            model(x).square().mean().backward()

    return step


def _layers_step(package: str, shape: tuple[int, int]):
    """A sphere DISCO and a sphere differential layer (basis (3, 4), radius pi / 16), batch 4,
    32 -> 32 channels: forward of both, loss, backward (the case of sphere_ring.py)."""
    import torch

    layers = importlib.import_module(f"{package}.layers")

    nlat, nlon = shape
    radius = math.pi / 16
    torch.manual_seed(0)
    x = torch.randn(BATCH, HIDDEN, nlat, nlon, requires_grad=True)
    if hasattr(layers, "SphereDiscoConv"):  # layers that own their kernels
        disco = layers.SphereDiscoConv(HIDDEN, HIDDEN, (3, 4), radius=radius)
        diff = layers.SphereDifferentialConv(HIDDEN, HIDDEN, (3, 4), radius=radius)

        def step():  # as in a LocalSFNO block: one ring kernel shared by both layers
            disco.zero_grad()
            diff.zero_grad()
            disco.apply_fused([disco, diff], x).square().mean().backward()
    else:  # the kernels driven from outside (earlier revision)
        sphere_grid = importlib.import_module(f"{package}.geometry").sphere_grid
        ring_module = importlib.import_module(f"{package}.layers.sphere_ring_conv")
        grid = sphere_grid(nlat, nlon, "equiangular", dtype=torch.float64)
        disco = layers.DiscoConv(HIDDEN, HIDDEN, (3, 4), radius=radius, bias=False)
        diff = layers.PointDifferentialConv(HIDDEN, HIDDEN, (3, 4), radius=radius)
        ring = ring_module.SphereRingKernel([disco.build_kernel(grid, dtype=torch.float64),
                                 diff.build_kernel(grid, dtype=torch.float64)], nlat, nlon)

        def step():
            disco.zero_grad()
            diff.zero_grad()
            weight = torch.cat([disco.weight, diff.weight], dim=2)
            ring.apply(x, weight).square().mean().backward()

    return step


def child(old_root: str, case: str, shape: tuple[int, int], steps: int,
          threads: int) -> dict:
    """Both revisions' steps of one case, alternating; per-step times and ratios."""
    import resource

    import torch

    sys.path.insert(0, old_root)
    torch.set_num_threads(threads)
    pair = {}
    for revision, package in (("old", "geo_neuralop_old"), ("new", "geo_neuralop")):
        pair[revision] = (_layers_step(package, shape) if case == "sphere local layers"
                          else _model_step(package, case, shape))
        for _ in range(2):  # warm up: kernels and transforms are built
            pair[revision]()
    times: dict[str, list[float]] = {"old": [], "new": []}
    for i in range(steps):
        for revision in (("old", "new") if i % 2 == 0 else ("new", "old")):
            start = time.perf_counter()
            pair[revision]()
            times[revision].append(time.perf_counter() - start)
    ratios = [n / o for n, o in zip(times["new"], times["old"], strict=True)]
    return {"times": times, "ratios": ratios,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def renamed_copy(source: Path, target: Path) -> Path:
    """The package of checkout ``source`` as ``geo_neuralop_old`` under ``target``."""
    package = target / "geo_neuralop_old"
    shutil.rmtree(package, ignore_errors=True)
    shutil.copytree(source / "geo_neuralop", package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    for path in package.rglob("*.py"):
        text = re.sub(r"\bgeo_neuralop\b", "geo_neuralop_old", path.read_text(encoding="utf-8"))
        # PyG names the batch class of a Data subclass after it, once per process: the two
        # revisions' point clouds and kernels need different class names
        text = re.sub(r"\b(PointCloud|DiscoKernel)\b", r"\1Old", text)
        path.write_text(text, encoding="utf-8")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-source", help="checkout of the earlier revision")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per revision")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="skip the 128 x 256 layers")
    parser.add_argument("--cases", nargs="+", help="run only these cases (e.g. MeshNO)")
    parser.add_argument("--name", default="compare_revisions",
                        help="results file name under benchmarks/results/")
    parser.add_argument("--child", nargs=6,
                        metavar=("OLD_ROOT", "CASE", "N1", "N2", "STEPS", "THREADS"))
    args = parser.parse_args()
    if args.child:
        old_root, case, n1, n2, steps, threads = args.child
        print(json.dumps(child(old_root, case, (int(n1), int(n2)), int(steps), int(threads))))
        return
    if not args.old_source:
        parser.error("--old-source is required")
    old_root = renamed_copy(Path(args.old_source).resolve(),
                            Path(tempfile.mkdtemp(prefix="geo_neuralop_old_")))
    cases = MODEL_CASES + [c for c in LAYER_CASES if not (args.quick and c[1][0] >= 128)]
    if args.cases:
        cases = [c for c in cases if c[0] in args.cases]
    rows = ["# Step times before and after the redesign, paired in one process", "",
            f"Old: `{args.old_source}` (imported as geo_neuralop_old), new: this checkout. "
            f"{args.threads} thread(s); forward + loss + backward; each case in a fresh "
            f"process with both revisions' steps alternating ({args.steps} timed steps each "
            "after two warm-up steps). Ratio = median of the per-step ratios new / old.", "",
            "| case | grid | old median (s) | new median (s) | new / old (paired) | load |",
            "|---|---|---|---|---|---|"]
    summary = {}
    for case, shape in cases:
        steps = max(4, args.steps // 4) if shape[0] >= 128 else args.steps
        load = os.getloadavg()[0]
        command = [sys.executable, __file__, "--child", str(old_root), case, str(shape[0]),
                   str(shape[1]), str(steps), str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600,
                              check=False)
        grid = f"{shape[0]}x{shape[1]}" if case != "MeshNO" else "4 DFG meshes"
        if done.returncode != 0:
            error = done.stderr.strip().splitlines()[-1] if done.stderr else "failed"
            rows.append(f"| {case} | {grid} | {error} | | | |")
            print(case, shape, error, flush=True)
            continue
        res = json.loads(done.stdout.strip().splitlines()[-1])
        m_old = statistics.median(res["times"]["old"])
        m_new = statistics.median(res["times"]["new"])
        ratio = statistics.median(res["ratios"])
        summary[f"{case}|{grid}"] = {"old_s": m_old, "new_s": m_new, "paired_ratio": ratio,
                                     "load": load, "peak_rss_mb": res["peak_rss_mb"]}
        rows.append(f"| {case} | {grid} | {m_old:.4g} | {m_new:.4g} | {ratio:.3f} | "
                    f"{load:.1f} |")
        print(rows[-1], flush=True)
    rows.append("")
    from common import machine, write_results

    write_results(args.name, {"machine": machine(), "threads": args.threads,
                                        "old": str(args.old_source), "summary": summary},
                  "\n".join(rows))


if __name__ == "__main__":
    main()
