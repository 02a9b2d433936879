"""Operator families on one 64 x 64 problem: parameters and CPU time per training step beside FNO.

Run: ``.venv/bin/python benchmarks/families.py [--quick] [--threads 1] [--repeats 7]``.
Writes ``benchmarks/results/families.{json,md}`` (``families_quick`` with ``--quick``).

The problem of benchmarks/models.py: batch 4, one input and one output channel on a
64 x 64 grid, 32 hidden channels where the family has such a width. Grid models take
``[4, 1, 64, 64]`` tensors; the point-cloud models (DeepONet, Transolver) take the same
grid as a PyG batch of four 4096-point clouds with trapezoid weights. One step =
zero_grad, forward, mean-square loss, backward; each case in a fresh process with
the thread count given, after two warm-up steps; the figure is the median of the
timed steps. The ratio to FNO is measured *paired*: the case and FNO in one process,
steps alternating (A B B A ...), ratio = median of the per-step ratios, far less
sensitive to a shared machine's load than the separate medians. A second table
compares the Hartley and Fourier spectral layers alone (32 -> 32 channels, n_modes
(16, 16), ``[4, 32, 64, 64]``), paired the same way.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt, machine, measure, write_results  # noqa: E402

BATCH, HIDDEN, LAYERS, GRID = 4, 32, 4, 64

CASES = {
    # name: description
    "FNO": "n_modes (16, 16): -8 <= k1 <= 8, 0 <= k2 <= 8; 4 blocks, 32 channels (the reference)",
    "TFNO (Tucker, rank 0.05)": "FNO with Tucker spectral weights, 5% of the dense ones",
    "TFNO (CP, rank 0.05)": "FNO with CP spectral weights",
    "TFNO (TT, rank 0.05)": "FNO with tensor-train spectral weights",
    "MG-TFNO (1 level)": "2 x 2 patches of 32 + 2 x 8 cells, half-resolution context, "
                         "Tucker 0.1, n_modes (16, 16)",
    "HNO (Hartley FNO)": "FNO with basis='hartley': real multipliers on -8 <= k1, k2 <= 8",
    "LSM": "4-level U-Net, 32 channels at the top, 4 tokens, 12 basis terms, patches <= 4",
    "DeepONet (integral branch)": "quadrature encoder of 128 functions, width 128, 128 terms",
    "DeepONet (sensor branch)": "the paper's branch on the 4096 grid values, width 128, 128 terms",
    "Transolver": "64 channels, 4 blocks, 4 heads, 32 slices (quadrature-weighted)",
}

LAYER_CASES = {
    "SpectralConv (Fourier)": "complex weight, -8 <= k1 <= 8, 0 <= k2 <= 8",
    "SpectralConv (Hartley)": "real weight, -8 <= k1, k2 <= 8",
}


def build(name: str):
    """The model of case ``name`` and its input (float32, seeded)."""
    import torch

    torch.manual_seed(0)
    x = torch.randn(BATCH, 1, GRID, GRID, generator=torch.Generator().manual_seed(1))
    from geo_neuralop import models as m

    common = {"hidden_channels": HIDDEN, "n_layers": LAYERS}
    if name == "FNO":
        return m.FNO(1, 1, n_modes=(16, 16), **common), x
    if name.startswith("TFNO"):
        kind = name.split("(")[1].split(",")[0]
        factorization = {"Tucker": "tucker", "CP": "cp", "TT": "tt"}[kind]
        return m.TFNO(1, 1, n_modes=(16, 16), factorization=factorization, rank=0.05,
                      **common), x
    if name.startswith("MG-TFNO"):
        return m.MGTFNO(1, 1, n_modes=(16, 16), levels=1, padding_fraction=0.125, rank=0.1,
                        **common), x
    if name.startswith("HNO"):
        return m.FNO(1, 1, n_modes=(16, 16), basis="hartley", **common), x
    if name == "LSM":
        return m.LSM(1, 1, **common), x
    from torch_geometric.data import Batch

    from geo_neuralop.geometry import regular_grid

    grid = regular_grid((GRID, GRID), dtype=torch.float32)
    clouds = []
    for i in range(BATCH):
        cloud = grid.clone()
        cloud.x = x[i, 0].reshape(-1, 1)
        clouds.append(cloud)
    batch = Batch.from_data_list(clouds)
    if name.startswith("DeepONet"):
        branch = "integral" if "integral" in name else "sensors"
        extra = {"n_sensors": GRID * GRID} if branch == "sensors" else {}
        return m.DeepONet(1, 1, pos_dim=2, branch=branch, n_basis=128, width=128,
                          n_functions=128, **extra), batch
    if name == "Transolver":
        return m.Transolver(1, 1, pos_dim=2, hidden_channels=64, n_layers=4, heads=4,
                            slices=32), batch
    if name in LAYER_CASES:
        from geo_neuralop.layers import SpectralConv

        basis = "hartley" if "Hartley" in name else "fourier"
        h = torch.randn(BATCH, HIDDEN, GRID, GRID, generator=torch.Generator().manual_seed(2))
        return SpectralConv(HIDDEN, HIDDEN, (16, 16), basis=basis), h.requires_grad_()
    raise ValueError(f"unknown case {name!r}")


def step_of(name: str):
    """Setup in the child process: build, warm up twice, return one training step."""
    model, x = build(name)

    def step():
        model.zero_grad(set_to_none=True)
        model(x).square().mean().backward()

    for _ in range(2):
        step()
    return step


def _paired_child(names: tuple[str, str], threads: int, repeats: int, queue) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        steps = [step_of(name) for name in names]
        times: list[list[float]] = [[], []]
        for i in range(repeats):
            for j in ((0, 1) if i % 2 == 0 else (1, 0)):
                start = time.perf_counter()
                steps[j]()
                times[j].append(time.perf_counter() - start)
        queue.put({"times": times})
    except Exception as error:  # report the failure as a result row
        queue.put({"error": f"{type(error).__name__}: {error}"})


def paired(names: tuple[str, str], threads: int, repeats: int, timeout: float = 1800) -> dict:
    """Both cases in one fresh process, steps alternating; ratio = median of t_A / t_B."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_paired_child, args=(names, threads, repeats, queue))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        return {"error": f"timed out after {timeout:.0f} s"}
    out = queue.get() if not queue.empty() else {"error": f"exit code {proc.exitcode}"}
    if "times" in out:
        a, b = out["times"]
        out["median_s"] = [statistics.median(a), statistics.median(b)]
        out["ratio"] = statistics.median(x / y for x, y in zip(a, b, strict=True))
    return out


def param_count(name: str) -> int:
    """Real scalars of the trainable parameters (complex tensors count twice)."""
    model, _ = build(name)
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 timed steps per case")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    names = list(CASES) + list(LAYER_CASES)
    results = {}
    for name in names:
        load = os.getloadavg()[0]
        res = measure(step_of, (name,), repeats=repeats, threads=args.threads, timeout=1800)
        res["load"] = round(load, 2)
        res["params"] = param_count(name)
        reference = "SpectralConv (Fourier)" if name in LAYER_CASES else "FNO"
        if name != reference:
            res["paired"] = paired((name, reference), args.threads, 2 * repeats)
        results[name] = res
        print(f"{name}: {res.get('median_s', res.get('error'))} s, {res['params']:,} params, "
              f"paired ratio {res.get('paired', {}).get('ratio')} (load {load:.2f})", flush=True)
    report(args, repeats, results)


def report(args, repeats: int, results: dict) -> None:
    fno = results["FNO"]
    md = ["# Operator families on a 64 x 64 problem: parameters and time per step", "",
          "Machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()) +
          f"; {args.threads} thread(s), median of {repeats} steps after 2 warm-up steps, each "
          "case in a fresh process. The machine is shared: the 1-minute load average at the "
          "start of each case is listed.", "",
          f"Batch {BATCH}, 1 -> 1 channels on a {GRID} x {GRID} grid; one step = forward, "
          "mean-square loss, backward.", "",
          "| model | configuration | parameters | vs FNO | time per step (s) | time vs FNO "
          "(paired) | load |",
          "|---|---|---|---|---|---|---|"]
    for name, desc in CASES.items():
        r = results[name]
        t = r.get("median_s")
        ratio_t = fmt(r["paired"].get("ratio")) if "paired" in r else "1"
        if "paired" in r and "error" in r["paired"]:
            ratio_t = r["paired"]["error"]
        md.append(f"| {name} | {desc} | {r['params']:,} | {r['params'] / fno['params']:.3f} | "
                  f"{fmt(t) if t else r.get('error')} | {ratio_t} | {r['load']:.1f} |")
    md += ["", f"## Spectral layer alone: Hartley vs Fourier ({HIDDEN} -> {HIDDEN} channels, "
           f"n_modes (16, 16), input [{BATCH}, {HIDDEN}, {GRID}, {GRID}])", "",
           "| layer | kept modes | parameters | time per step (s) | time vs Fourier (paired) "
           "| load |",
           "|---|---|---|---|---|---|"]
    for name, desc in LAYER_CASES.items():
        r = results[name]
        ratio = fmt(r["paired"].get("ratio")) if "paired" in r else "1"
        md.append(f"| {name} | {desc} | {r['params']:,} | "
                  f"{fmt(r['median_s']) if 'median_s' in r else r.get('error')} | {ratio} | "
                  f"{r['load']:.1f} |")
    md.append("")
    payload = {"machine": machine(), "batch": BATCH, "grid": GRID, "hidden": HIDDEN,
               "layers": LAYERS, "threads": args.threads, "repeats": repeats,
               "cases": CASES, "layer_cases": LAYER_CASES, "results": results}
    write_results("families" + ("_quick" if args.quick else ""), payload, "\n".join(md))


if __name__ == "__main__":
    main()
