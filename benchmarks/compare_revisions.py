"""Step times of the models and sphere local layers at two revisions of the package, paired.

Run: ``.venv/bin/python benchmarks/compare_revisions.py --old-python OLD/.venv/bin/python
[--rounds 5] [--threads 1] [--quick]``, where ``OLD`` is a checkout of the earlier commit
with its own environment (``git worktree add OLD REV && make -C OLD install``).
Writes ``benchmarks/results/compare_revisions.{json,md}``.

Every case (the models of ``benchmarks/models.py`` and the sphere DISCO + differential
layers of ``benchmarks/sphere_ring.py``) runs in a fresh process of each revision, the
two revisions alternating over ``--rounds`` rounds (old, new, new, old, ...), so a
change of the machine's load hits both; the ratio is new / old of the medians of the
timed steps (below 1: the new revision is faster).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]
BATCH, HIDDEN, LAYERS = 4, 32, 4

MODEL_CASES = [("FNO", (64, 64)), ("AMFNO", (64, 64)), ("LocalNO", (64, 64)),
               ("SFNO", (32, 64)), ("SFNO", (64, 128)), ("LocalSFNO", (32, 64)),
               ("LocalSFNO", (64, 128)), ("MeshNO", (1200, 0))]
LAYER_CASES = [("sphere local layers", (32, 64)), ("sphere local layers", (64, 128)),
               ("sphere local layers", (128, 256))]


def _model(name: str, shape: tuple[int, int]):
    import torch

    from geo_neuralop import models

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


def _model_step(name: str, shape: tuple[int, int]):
    import torch

    torch.manual_seed(0)
    model = _model(name, shape)
    if name == "MeshNO":
        from torch_geometric.data import Batch

        from geo_neuralop.geometry import perforated_rectangle_mesh

        meshes = [perforated_rectangle_mesh(0.045 + 0.002 * i) for i in range(BATCH)]
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


def _layers_step(shape: tuple[int, int]):
    """A sphere DISCO and a sphere differential layer (basis (3, 4), radius pi / 16), batch 4,
    32 -> 32 channels: forward of both, loss, backward (the case of sphere_ring.py)."""
    import torch

    import geo_neuralop.layers as layers

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
        from geo_neuralop.layers.sphere_ring_conv import SphereRingKernel

        from geo_neuralop.geometry import sphere_grid

        grid = sphere_grid(nlat, nlon, "equiangular", dtype=torch.float64)
        disco = layers.DiscoConv(HIDDEN, HIDDEN, (3, 4), radius=radius, bias=False)
        diff = layers.PointDifferentialConv(HIDDEN, HIDDEN, (3, 4), radius=radius)
        ring = SphereRingKernel([disco.build_kernel(grid, dtype=torch.float64),
                                 diff.build_kernel(grid, dtype=torch.float64)], nlat, nlon)

        def step():
            disco.zero_grad()
            diff.zero_grad()
            weight = torch.cat([disco.weight, diff.weight], dim=2)
            ring.apply(x, weight).square().mean().backward()

    return step


def child(case: str, shape: tuple[int, int], repeats: int, threads: int) -> dict:
    """Build the case, warm up twice (kernels and transforms are built), time ``repeats``."""
    import resource

    import torch

    torch.set_num_threads(threads)
    step = _layers_step(shape) if case == "sphere local layers" else _model_step(case, shape)
    for _ in range(2):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"times": times,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure(python: str, case: str, shape: tuple[int, int], repeats: int,
            threads: int) -> dict:
    command = [python, __file__, "--child", case, str(shape[0]), str(shape[1]), str(repeats),
               str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-python", required=False,
                        help="python of the earlier revision's environment")
    parser.add_argument("--new-python", default=sys.executable)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="skip the 128 x 256 layers")
    parser.add_argument("--child", nargs=5, metavar=("CASE", "N1", "N2", "REPEATS", "THREADS"))
    args = parser.parse_args()
    if args.child:
        case, n1, n2, repeats, threads = args.child
        print(json.dumps(child(case, (int(n1), int(n2)), int(repeats), int(threads))))
        return
    if not args.old_python:
        parser.error("--old-python is required")
    cases = MODEL_CASES + [c for c in LAYER_CASES if not (args.quick and c[1][0] >= 128)]
    times: dict = {}
    for r in range(args.rounds):
        for case, shape in cases:
            repeats = 3 if shape[0] >= 128 else 6
            order = ("old", "new") if r % 2 == 0 else ("new", "old")
            for revision in order:
                python = args.old_python if revision == "old" else args.new_python
                res = measure(python, case, shape, repeats, args.threads)
                entry = times.setdefault(f"{case}|{shape[0]}x{shape[1]}", {}).setdefault(
                    revision, {"times": [], "peak_rss_mb": 0.0})
                if "error" in res:
                    entry["error"] = res["error"]
                else:
                    entry["times"] += res["times"]
                    entry["peak_rss_mb"] = max(entry["peak_rss_mb"], res["peak_rss_mb"])
                print(f"round {r} {revision} {case} {shape}: "
                      f"{statistics.median(res['times']) if 'times' in res else res['error']}",
                      flush=True)
    rows = ["# Step times before and after: paired by alternating processes", "",
            f"{args.rounds} rounds, {args.threads} thread(s); forward + loss + backward, median "
            "seconds over all timed steps of each revision; ratio = new / old.", "",
            "| case | grid | old (s) | new (s) | new / old | peak RSS old / new (MB) |",
            "|---|---|---|---|---|---|"]
    summary = {}
    for key, entry in times.items():
        case, grid = key.split("|")
        old, new = entry.get("old", {}), entry.get("new", {})
        if old.get("times") and new.get("times"):
            m_old, m_new = statistics.median(old["times"]), statistics.median(new["times"])
            summary[key] = {"old_s": m_old, "new_s": m_new, "ratio": m_new / m_old,
                            "peak_rss_mb": [old["peak_rss_mb"], new["peak_rss_mb"]]}
            rows.append(f"| {case} | {grid} | {m_old:.4g} | {m_new:.4g} | {m_new / m_old:.3f} | "
                        f"{old['peak_rss_mb']:.0f} / {new['peak_rss_mb']:.0f} |")
        else:
            rows.append(f"| {case} | {grid} | {old.get('error', '-')} | "
                        f"{new.get('error', '-')} | - | - |")
    rows.append("")
    from common import machine, write_results

    write_results("compare_revisions", {"machine": machine(), "rounds": args.rounds,
                                        "threads": args.threads, "summary": summary,
                                        "times": times}, "\n".join(rows))


if __name__ == "__main__":
    main()
