"""Helpers for the benchmark scripts: isolated timing with peak memory, and result files.

Each measurement runs in a fresh process (multiprocessing "spawn"), so the peak
resident memory it reports belongs to that measurement alone.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _child(target: Callable, args: tuple, repeats: int, threads: int, queue) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        setup = target(*args)  # returns a callable to time (geometry etc. prepared outside)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            setup()
            times.append(time.perf_counter() - start)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        queue.put({"times": times, "peak_rss_mb": peak / 1024,
                   "extra_rss_mb": (peak - base) / 1024,
                   "info": getattr(setup, "info", None)})
    except Exception as error:  # report the failure as a result row
        queue.put({"error": f"{type(error).__name__}: {error}"})


def measure(target: Callable, args: tuple = (), repeats: int = 3, threads: int = 2,
            timeout: float = 900.0) -> dict:
    """Run ``target(*args)()`` ``repeats`` times in a fresh process.

    Returns ``{"median_s", "times", "peak_rss_mb", "extra_rss_mb", "info"}`` (extra: the
    growth of peak memory during the timed calls; info: the timed callable's ``info``
    attribute, if any, e.g. a build time measured during the setup) or ``{"error": ...}``.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(target, args, repeats, threads, queue))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        return {"error": f"timed out after {timeout:.0f} s"}
    result = queue.get() if not queue.empty() else {"error": f"exit code {proc.exitcode}"}
    if "times" in result:
        result["median_s"] = statistics.median(result["times"])
    return result


def machine() -> dict:
    import torch

    return {"python": sys.version.split()[0], "torch": torch.__version__,
            "platform": platform.platform(), "cpus": os.cpu_count()}


def write_results(name: str, payload: dict, markdown: str) -> None:
    """Write ``results/<name>.json`` and ``results/<name>.md`` atomically."""
    from geo_neuralop.utils import atomic_path

    RESULTS.mkdir(exist_ok=True)
    with atomic_path(RESULTS / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
    with atomic_path(RESULTS / f"{name}.md") as tmp:
        tmp.write_text(markdown)
    print(markdown)
    print(f"saved {RESULTS / (name + '.json')} and .md")


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}"
