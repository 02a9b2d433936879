"""Models, forward + backward on CPU: geo_neuralop vs neuraloperator 2.0.0 and torch-harmonics.

Run: ``.venv/bin/python benchmarks/models.py [--quick] [--threads 1] [--paired-threads 1 2]
[--rounds 1]``; ``--profile 'LocalSFNO (ours)'`` prints a torch.profiler table instead;
``--pairs-only 'SFNO (ours)'`` measures only the paired ratios whose first model is that
case (``--pair-runs`` times each), written to ``models_pairs_<case>.{json,md}``.
Writes ``benchmarks/results/models.{json,md}`` (``models_quick`` with ``--quick``).

Grid case (from the models issue): 64 x 64 periodic grid, batch 4, 1 -> 1 channels,
32 hidden channels, 4 blocks, channel MLP (expansion 0.5, soft-gating skip) and a
linear skip in every block, GELU. Kept Fourier modes are matched exactly: our
``n_modes=(16, 16)`` keeps ``|k_1| <= 8, 0 <= k_2 <= 8`` (17 x 9 modes) and so does
neuraloperator's ``n_modes=(17, 16)``; its usual ``(16, 16)`` keeps ``-8 <= k_1 <= 7``
(16 x 9) and is timed as well. LocalNO: DISCO piecewise-linear basis (2, 4) and a
3-point differential stencil in every block; our DISCO radius is 1/16 of the domain
(4 cells at 64^2, applied through the FFT); neuraloperator's is its default (one
cell, a 3 x 3 ``conv2d``) and, in a second row, the same 1/16 of the domain
(a 9 x 9 ``conv2d``).

Sphere case: equiangular grids 32 x 64 and 64 x 128, batch 4, 32 hidden channels,
4 blocks, ``lmax = mmax = min(nlat, nlon / 2)`` (torch-harmonics' SFNO rule for
``scale_factor=1``), complex Driscoll-Healy weights (one per degree) on both
sides, channel MLP expansion 0.5 (torch-harmonics ``mlp_ratio=0.5``), no internal
down-sampling. LocalSFNO adds a sphere DISCO and a differential layer to every
block (its defaults: basis (3, 4), radius pi / 16).

One step = zero_grad, forward, mean-square loss, backward. Each case runs in its own
spawned process with a fixed thread count, after two warm-up steps that build the
cached transforms, stencils and kernel matrices; the figure is the median of the
timed steps of all rounds (rounds run the cases in alternating order so that a
change of the machine's load hits all of them). The targets are also measured as
*paired* ratios: both models in one process, steps alternating, ratio = median of
the per-step ratios, which is far less sensitive to a shared machine's load.
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

GRID_CASES = {
    # name: (library, description)
    "FNO (ours)": ("geo_neuralop", "n_modes (16, 16): -8 <= k1 <= 8, k2 <= 8"),
    "FNO (neuraloperator, 17x9 modes)": ("neuraloperator",
                                         "n_modes (17, 16): -8 <= k1 <= 8, k2 <= 8"),
    "FNO (neuraloperator, 16x9 modes)": ("neuraloperator",
                                         "n_modes (16, 16): -8 <= k1 <= 7, k2 <= 8"),
    "AMFNO (ours)": ("geo_neuralop", "all 64 x 33 modes, separable MLP kernel on 16 "
                                     "Chebyshev features"),
    "LocalNO (ours)": ("geo_neuralop", "17 x 9 modes; DISCO (2, 4) r = 1/16 (FFT); 3-pt diff"),
    "LocalNO (neuraloperator, default radius)": (
        "neuraloperator", "17 x 9 modes; DISCO (2, 4) r = 1 cell (3 x 3 conv2d); 3-pt diff"),
    "LocalNO (neuraloperator, r = 1/16)": (
        "neuraloperator", "17 x 9 modes; DISCO (2, 4) r = 1/16 (9 x 9 conv2d); 3-pt diff"),
}

SPHERE_CASES = {
    "SFNO (ours)": ("geo_neuralop", "driscoll-healy-complex"),
    "LocalSFNO (ours)": ("geo_neuralop", "+ sphere DISCO (3, 4) and differential, r = pi/16"),
    "SFNO (torch-harmonics)": ("torch-harmonics", "examples.models.SphericalFourierNeuralOperator"
                                                  ", scale_factor 1"),
}


def build(name: str, shape: tuple[int, int]):
    """The model of case ``name`` for grid ``shape`` (float32, seeded)."""
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    if name in SPHERE_CASES or name.startswith("SFNO"):
        return _build_sphere(name, *shape)
    if name == "FNO (ours)":
        from geo_neuralop.models import FNO

        return FNO(1, 1, n_modes=(16, 16), hidden_channels=HIDDEN, n_layers=LAYERS)
    if name == "AMFNO (ours)":
        from geo_neuralop.models import AMFNO

        return AMFNO(1, 1, n_dim=2, hidden_channels=HIDDEN, n_layers=LAYERS)
    if name == "LocalNO (ours)":
        from geo_neuralop.models import LocalNO

        return LocalNO(1, 1, n_modes=(16, 16), hidden_channels=HIDDEN, n_layers=LAYERS)
    import neuralop.models as nop

    if name.startswith("FNO (neuraloperator"):
        modes = (17, 16) if "17x9" in name else (16, 16)
        return nop.FNO(n_modes=modes, in_channels=1, out_channels=1, hidden_channels=HIDDEN,
                       n_layers=LAYERS, use_channel_mlp=True)
    if name.startswith("LocalNO (neuraloperator"):
        # neuraloperator's domain is [-1, 1]^2 (length 2): r = 1/16 of it is 0.125
        radius = None if "default" in name else 2.0 / 16
        return nop.LocalNO(n_modes=(17, 16), in_channels=1, out_channels=1,
                           hidden_channels=HIDDEN, n_layers=LAYERS, default_in_shape=shape,
                           use_channel_mlp=True, radius_cutoff=radius)
    raise ValueError(f"unknown case {name!r}")


def _build_sphere(name: str, nlat: int, nlon: int):
    lmax = min(nlat, nlon // 2)
    common = {"lmax": lmax, "hidden_channels": HIDDEN, "n_layers": LAYERS,
              "operator_type": "driscoll-healy-complex", "grid": "equiangular"}
    if name == "SFNO (ours)":
        from geo_neuralop.models import SFNO

        return SFNO(1, 1, **common)
    if name == "SFNO (ours, torch-harmonics' encoder and decoder)":
        # torch-harmonics' layout around the blocks: no position input, one linear map in
        # and out (our default: (x, y, z) inputs and two-layer GELU MLPs of width 64)
        from geo_neuralop.models import SFNO

        return SFNO(1, 1, **{**common, "positional_embedding": None,
                             "lifting_channel_ratio": 0.0, "projection_channel_ratio": 0.0})
    if name == "SFNO (ours, reference path)":  # before the fast path: RealSHT, einsum, ISHT
        from geo_neuralop.models import SFNO

        model = SFNO(1, 1, **common)
        for block in model.blocks:
            block.conv.forward = block.conv.forward_reference
        return model
    if name == "LocalSFNO (ours)":
        from geo_neuralop.models import LocalSFNO

        return LocalSFNO(1, 1, **common)
    from torch_harmonics.examples.models.sfno import SphericalFourierNeuralOperator

    return SphericalFourierNeuralOperator(
        img_size=(nlat, nlon), grid="equiangular", grid_internal="equiangular", scale_factor=1,
        in_chans=1, out_chans=1, embed_dim=HIDDEN, num_layers=LAYERS, mlp_ratio=0.5)


def step_of(name: str, shape: tuple[int, int]):
    """Setup in the child process: build, warm up twice, return one training step."""
    import torch

    model = build(name, shape)
    x = torch.randn(BATCH, 1, *shape, generator=torch.Generator().manual_seed(1))

    def step():
        model.zero_grad(set_to_none=True)
        model(x).square().mean().backward()

    for _ in range(2):
        step()
    return step


def param_counts(name: str, shape: tuple[int, int]) -> dict:
    """``stored``: ``sum(p.numel())`` (a complex weight counts once, as its library reports);
    ``real``: real scalars (a complex weight counts twice)."""
    model = build(name, shape)
    stored = sum(p.numel() for p in model.parameters())
    real = sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())
    return {"stored": stored, "real": real}


def run_cases(cases: list[tuple[str, tuple[int, int]]], threads: int, rounds: int,
              repeats: dict) -> dict:
    """Median step time of each case over ``rounds`` alternating rounds."""
    out = {case: {"times": [], "load": []} for case in cases}
    for r in range(rounds):
        order = cases if r % 2 == 0 else cases[::-1]
        for name, shape in order:
            load = os.getloadavg()[0]
            res = measure(step_of, (name, shape), repeats=repeats[shape], threads=threads,
                          timeout=900)
            entry = out[(name, shape)]
            entry["load"].append(round(load, 2))
            if "times" in res:
                entry["times"] += res["times"]
                entry["peak_rss_mb"] = max(entry.get("peak_rss_mb", 0), res["peak_rss_mb"])
            else:
                entry["error"] = res["error"]
            print(f"threads {threads} round {r} {name} {shape}: "
                  f"{res.get('median_s', res.get('error'))} (load {load:.2f})", flush=True)
    for entry in out.values():
        if entry["times"]:
            entry["median_s"] = statistics.median(entry["times"])
    return out


def _ratio(a: dict, b: dict) -> float | None:
    if "median_s" in a and "median_s" in b:
        return a["median_s"] / b["median_s"]
    return None


PAIRS = [
    # (numerator, denominator, grid): the targets and their references
    ("LocalNO (neuraloperator, default radius)", "LocalNO (ours)", (GRID, GRID)),
    ("LocalNO (neuraloperator, r = 1/16)", "LocalNO (ours)", (GRID, GRID)),
    ("FNO (neuraloperator, 17x9 modes)", "FNO (ours)", (GRID, GRID)),
    ("LocalSFNO (ours)", "SFNO (torch-harmonics)", (32, 64)),
    ("LocalSFNO (ours)", "SFNO (torch-harmonics)", (64, 128)),
    ("SFNO (ours)", "SFNO (torch-harmonics)", (64, 128)),
    ("SFNO (ours, reference path)", "SFNO (torch-harmonics)", (64, 128)),
    ("SFNO (ours, torch-harmonics' encoder and decoder)", "SFNO (torch-harmonics)", (64, 128)),
]


def _paired_child(names: tuple[str, str], shape: tuple[int, int], threads: int, repeats: int,
                  queue) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        steps = [step_of(name, shape) for name in names]  # both built and warmed up
        times: list[list[float]] = [[], []]
        for i in range(repeats):
            for j in ((0, 1) if i % 2 == 0 else (1, 0)):
                start = time.perf_counter()
                steps[j]()
                times[j].append(time.perf_counter() - start)
        queue.put({"times": times})
    except Exception as error:  # report the failure as a result row
        queue.put({"error": f"{type(error).__name__}: {error}"})


def paired(names: tuple[str, str], shape: tuple[int, int], threads: int, repeats: int,
           timeout: float = 900.0) -> dict:
    """Both models in one fresh process, steps alternating A B B A ...: load drift hits both.

    Returns the medians, ``ratio`` = median of the per-iteration ratios ``t_A / t_B``, and
    the load average at the start.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    load = os.getloadavg()[0]
    proc = ctx.Process(target=_paired_child, args=(names, shape, threads, repeats, queue))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        return {"error": f"timed out after {timeout:.0f} s", "load": load}
    out = queue.get() if not queue.empty() else {"error": f"exit code {proc.exitcode}"}
    out["load"] = round(load, 2)
    if "times" in out:
        a, b = out["times"]
        out["median_s"] = [statistics.median(a), statistics.median(b)]
        out["ratio"] = statistics.median(x / y for x, y in zip(a, b, strict=True))
    return out


def profile(name: str, shape: tuple[int, int], threads: int, rows: int = 15) -> None:
    """Print torch.profiler's top operators (by self CPU time, grouped by input shape) of
    three training steps of case ``name`` after the warm-up."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    torch.set_num_threads(threads)
    step = step_of(name, shape)
    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(3):
            step()
    print(f"{name} @ {shape}, {threads} thread(s), 3 steps")
    print(prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 steps per case, 32 x 64 sphere only, paired runs at 1 thread")
    parser.add_argument("--threads", type=int, nargs="+", default=[1],
                        help="thread counts of the main table")
    parser.add_argument("--paired-threads", type=int, nargs="+", default=None,
                        help="thread counts of the paired ratios (default 1 2; quick: 1)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", metavar="CASE", default=None,
                        help="print a torch.profiler table for one case (e.g. 'LocalSFNO "
                             "(ours)') and exit")
    parser.add_argument("--shape", type=int, nargs=2, default=None,
                        help="grid of --profile (default 64 64, or 64 128 for sphere cases)")
    parser.add_argument("--pairs-only", metavar="CASE", default=None,
                        help="only the paired ratios of PAIRS whose numerator is CASE")
    parser.add_argument("--pair-runs", type=int, default=3,
                        help="independent processes per pair with --pairs-only")
    parser.add_argument("--label", default="",
                        help="suffix of the --pairs-only result files")
    parser.add_argument("--sfno-split", action="store_true",
                        help="time the parts of our SFNO and torch-harmonics' side by side")
    args = parser.parse_args()
    if args.sfno_split:
        sfno_split()
        return
    if args.pairs_only is not None:
        pairs_only(args.pairs_only, args.paired_threads or [1], args.pair_runs,
                   args.label)
        return
    if args.profile is not None:
        default = (64, 128) if args.profile in SPHERE_CASES else (GRID, GRID)
        profile(args.profile, tuple(args.shape or default), args.threads[0])
        return
    paired_threads = args.paired_threads or ([1] if args.quick else [1, 2])
    spheres = [(32, 64)] if args.quick else [(32, 64), (64, 128)]
    grid = (GRID, GRID)
    repeats = {grid: 3 if args.quick else 7, (32, 64): 3 if args.quick else 7, (64, 128): 5}
    cases = [(name, grid) for name in GRID_CASES]
    cases += [(name, s) for s in spheres for name in SPHERE_CASES]

    params = {f"{name} @ {s[0]}x{s[1]}": param_counts(name, s) for name, s in cases}
    results: dict = {}
    pairs: dict = {}
    for threads in args.threads:
        timed = run_cases(cases, threads, args.rounds, repeats)
        results[threads] = {f"{name} @ {s[0]}x{s[1]}": v for (name, s), v in timed.items()}
        # written after every stage, so a long run interrupted later keeps its results
        report(args.quick, args.rounds, repeats, spheres, params, results, pairs)
    for threads in paired_threads:
        for a, b, shape in PAIRS:
            if shape not in [grid, *spheres]:
                continue
            res = paired((a, b), shape, threads, 2 * repeats[shape])
            pairs[f"{threads}|{a} / {b} @ {shape[0]}x{shape[1]}"] = res
            print(f"paired, {threads} thread(s): {a} / {b} @ {shape}: "
                  f"{res.get('ratio', res.get('error'))} (load {res['load']})", flush=True)
        report(args.quick, args.rounds, repeats, spheres, params, results, pairs)


def pairs_only(case: str, threads_list: list[int], runs: int, label: str = "") -> None:
    """Paired ratios of the PAIRS with numerator ``case``, ``runs`` fresh processes each,
    written to ``models_pairs_<case>[_<label>].{json,md}``."""
    payload = {}
    for threads in threads_list:
        for a, b, shape in PAIRS:
            if a != case:
                continue
            steps = 20 if shape == (64, 128) else 14
            results = [paired((a, b), shape, threads, steps) for _ in range(runs)]
            key = f"{threads}|{a} / {b} @ {shape[0]}x{shape[1]}"
            payload[key] = results
            for r in results:
                print(f"{key}: {r.get('ratio', r.get('error'))} (load {r['load']})", flush=True)
    slug = "".join(c if c.isalnum() else "_" for c in case.lower()).strip("_")
    while "__" in slug:
        slug = slug.replace("__", "_")
    name = f"models_pairs_{slug}" + (f"_{label}" if label else "")
    write_results(name, {"machine": machine(), "pairs": payload},
                  pairs_markdown(payload, machine()))


def sfno_split(shape: tuple[int, int] = (64, 128), repeats: int = 15) -> None:
    """Where the SFNO step goes: forward + backward of the parts of our SFNO and of
    torch-harmonics' (lifting and projection / encoder and decoder; the four blocks; one
    spherical convolution) on one thread, the two models' parts alternating in one
    process; medians. Writes ``models_sfno_split.{json,md}``."""
    import torch

    torch.set_num_threads(1)
    ours, th = build("SFNO (ours)", shape), build("SFNO (torch-harmonics)", shape)
    x = torch.randn(4, 1, *shape)
    h = torch.randn(4, HIDDEN, *shape, requires_grad=True)

    def ours_ends():
        e = ours.positional_embedding(x) if ours.positional_embedding is not None else x
        ours.projection(ours.lifting(e)).square().mean().backward()

    def th_ends():
        th.decoder(th.encoder(th.pos_embed(x) if hasattr(th, "pos_embed") else x)
                   ).square().mean().backward()

    def blocks(model):
        def run():
            y = h
            for block in model.blocks:
                y = block(y)
            y.square().mean().backward()
        return run

    def ours_conv():
        ours.blocks[0].conv(h).square().mean().backward()

    def th_conv():
        th.blocks[0].global_conv(h)[0].square().mean().backward()

    parts = {"lifting + projection (ours) / encoder + decoder (torch-harmonics)":
             (ours_ends, th_ends), f"the {LAYERS} blocks": (blocks(ours), blocks(th)),
             "one spherical convolution": (ours_conv, th_conv)}
    rows, payload = [], {}
    for name, (a, b) in parts.items():
        for f in (a, b, a, b):
            f()
        times = {"ours": [], "torch_harmonics": []}
        for _ in range(repeats):
            for f, key in ((a, "ours"), (b, "torch_harmonics")):
                start = time.perf_counter()
                f()
                times[key].append(time.perf_counter() - start)
        med = {k: statistics.median(v) for k, v in times.items()}
        payload[name] = {"times": times, "median_s": med, "load": os.getloadavg()[0]}
        rows.append(f"| {name} | {1e3 * med['ours']:.1f} | {1e3 * med['torch_harmonics']:.1f} "
                    f"| {med['ours'] / med['torch_harmonics']:.2f} |")
    md = ["# Where the SFNO step goes", "",
          "Machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()) + ".", "",
          f"{shape[0]}x{shape[1]} equiangular, batch 4, {HIDDEN} channels, {LAYERS} blocks, one "
          "thread; forward + sum-of-squares loss + backward of each part, ours and "
          "torch-harmonics' alternating in one process, medians of "
          f"{repeats}; load average {os.getloadavg()[0]:.1f}.", "",
          "| part | ours (ms) | torch-harmonics (ms) | ratio |", "|---|---|---|---|", *rows, ""]
    write_results("models_sfno_split", {"machine": machine(), "shape": list(shape),
                                        "parts": payload}, "\n".join(md))


def pairs_markdown(payload: dict, machine_info: dict) -> str:
    """The markdown table of ``pairs_only``'s payload ``{"threads|A / B @ grid": [run, ...]}``
    (each run a dict with ``ratio`` or ``error``, and ``load``)."""
    rows = []
    for key, results in payload.items():
        threads, pair = key.split("|", 1)
        names, grid = pair.rsplit(" @ ", 1)
        ratios = [r["ratio"] for r in results if "ratio" in r]
        median = statistics.median(ratios) if ratios else None
        loads = ", ".join(f"{r['load']:.1f}" for r in results)
        rows.append(f"| {threads} | {names} | {grid} | "
                    f"{', '.join(fmt(x) for x in ratios)} | {fmt(median)} | {loads} |")
    md = ["# Paired step-time ratios", "",
          "Machine: " + ", ".join(f"{k} {v}" for k, v in machine_info.items()) + ".", "",
          "Each run: both models in one fresh process, steps alternating (A B B A ...) after "
          "two warm-up steps; ratio = median of the per-step ratios t_A / t_B.", "",
          "| threads | A / B | grid | ratio per run | median | load per run |",
          "|---|---|---|---|---|---|", *rows, ""]
    return "\n".join(md)


def report(quick: bool, rounds: int, repeats: dict, spheres: list, params: dict,
           results: dict, pairs: dict) -> None:
    """Write the markdown tables and the JSON payload."""
    import neuralop
    import torch_harmonics

    grid = (GRID, GRID)
    threads_list = list(results)
    md = ["# Models: forward + backward step on CPU", "",
          "Machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()) +
          f"; neuraloperator {neuralop.__version__}, torch-harmonics "
          f"{torch_harmonics.__version__}.", "",
          "The machine is shared (2 cores, other jobs running): the 1-minute load average at "
          "the start of each measurement is listed; compare ratios within one thread count. "
          f"Median of {rounds} round(s) x {repeats[grid]} steps (5 at 64 x 128) after 2 "
          "warm-up steps, each case in a fresh process.", "",
          f"## Regular grid {GRID} x {GRID}, B = {BATCH}, {HIDDEN} hidden channels, "
          f"{LAYERS} blocks", "",
          "Parameters: *stored* = `sum(p.numel())` (neuraloperator's complex spectral "
          "weights count once); *real* = real scalars (complex counted twice; ours are "
          "all real tensors).", ""]
    head = "| model | config | params stored | params real |"
    rule = "|---|---|---|---|"
    for t in threads_list:
        head += f" {t} thread{'s' if t > 1 else ''} (s) | load |"
        rule += "---|---|"
    md += [head, rule]
    for name, (_, desc) in GRID_CASES.items():
        key = f"{name} @ {GRID}x{GRID}"
        row = (f"| {name} | {desc} | {params[key]['stored']:,} | {params[key]['real']:,} |")
        for t in threads_list:
            r = results[t][key]
            row += (f" {fmt(r.get('median_s')) if 'median_s' in r else r.get('error')} | "
                    f"{', '.join(f'{v:.1f}' for v in r['load'])} |")
        md.append(row)
    md.append("")
    ours = f"LocalNO (ours) @ {GRID}x{GRID}"
    for t in threads_list:
        for other in ("LocalNO (neuraloperator, default radius)",
                      "LocalNO (neuraloperator, r = 1/16)"):
            ratio = _ratio(results[t][f"{other} @ {GRID}x{GRID}"], results[t][ours])
            md.append(f"- {t} thread(s): {other} / LocalNO (ours) = {fmt(ratio)} "
                      f"(> 1: ours faster; target >= 1).")
        ratio = _ratio(results[t][f"FNO (neuraloperator, 17x9 modes) @ {GRID}x{GRID}"],
                       results[t][f"FNO (ours) @ {GRID}x{GRID}"])
        md.append(f"- {t} thread(s): FNO neuraloperator (17x9) / FNO (ours) = {fmt(ratio)}.")
    md += ["", f"## Sphere, equiangular grids, B = {BATCH}, {HIDDEN} hidden channels, "
           f"{LAYERS} blocks, lmax = mmax = min(nlat, nlon / 2)", "",
           head.replace("| model | config |", "| model | grid |"), rule]
    for s in spheres:
        for name in SPHERE_CASES:
            key = f"{name} @ {s[0]}x{s[1]}"
            row = (f"| {name} | {s[0]}×{s[1]} | {params[key]['stored']:,} | "
                   f"{params[key]['real']:,} |")
            for t in threads_list:
                r = results[t][key]
                row += (f" {fmt(r.get('median_s')) if 'median_s' in r else r.get('error')} | "
                        f"{', '.join(f'{v:.1f}' for v in r['load'])} |")
            md.append(row)
    md.append("")
    for t in threads_list:
        for s in spheres:
            tag = f"@ {s[0]}x{s[1]}"
            local = results[t][f"LocalSFNO (ours) {tag}"]
            sfno = results[t][f"SFNO (ours) {tag}"]
            th = results[t][f"SFNO (torch-harmonics) {tag}"]
            md.append(f"- {t} thread(s), {s[0]}×{s[1]}: LocalSFNO (ours) / SFNO (torch-harmonics)"
                      f" = {fmt(_ratio(local, th))}, / SFNO (ours) = {fmt(_ratio(local, sfno))}"
                      f" (target <= 3); SFNO ours / torch-harmonics = {fmt(_ratio(sfno, th))}.")
    md.append("")
    if pairs:
        md += ["## Paired ratios (the targets)", "",
               "Both models in one process, steps alternating (A B B A ...), "
               f"{2 * repeats[grid]} steps each ({2 * repeats[(64, 128)]} at 64 × 128) after "
               "the warm-up; ratio = median of the per-step ratios t_A / t_B. This cancels "
               "most of the load drift that the separate medians above suffer.", "",
               "| threads | A / B | grid | median A (s) | median B (s) | ratio | load |",
               "|---|---|---|---|---|---|---|"]
        for key, r in pairs.items():
            threads, rest = key.split("|", 1)
            label, shape = rest.rsplit(" @ ", 1)
            if "ratio" in r:
                md.append(f"| {threads} | {label} | {shape} | {fmt(r['median_s'][0])} | "
                          f"{fmt(r['median_s'][1])} | {fmt(r['ratio'])} | {r['load']:.1f} |")
            else:
                md.append(f"| {threads} | {label} | {shape} | - | - | {r['error']} | "
                          f"{r['load']:.1f} |")
        md += ["", "Targets: LocalNO (neuraloperator) / LocalNO (ours) >= 1; LocalSFNO (ours) / "
               "SFNO (torch-harmonics) <= 3.", ""]
    payload = {"machine": machine(), "batch": BATCH, "hidden": HIDDEN, "layers": LAYERS,
               "rounds": rounds, "repeats": {f"{k[0]}x{k[1]}": v for k, v in repeats.items()},
               "grid_cases": GRID_CASES, "sphere_cases": SPHERE_CASES, "params": params,
               "results": {str(t): v for t, v in results.items()}, "paired": pairs}
    write_results("models" + ("_quick" if quick else ""), payload, "\n".join(md))


if __name__ == "__main__":
    main()
