"""``geo-neuralop study``: run the accuracy studies and write their reports.

::

    geo-neuralop study list                       # the studies and their models
    geo-neuralop study darcy                      # run (or resume) one study, 3 seeds
    geo-neuralop study all --quick                # every study, small, in minutes
    geo-neuralop study ns2d --seeds 0             # only seed 0 (time budget: after seed 0)
    geo-neuralop study swe --report-only          # tables and plots from the result files

(also ``python -m benchmarks.accuracy ...`` from the repository root). Datasets and
checkpoints go to ``--work-dir`` (default ``outputs/accuracy``), result files,
tables and plots to ``--results-dir`` (default ``benchmarks/results/accuracy``);
``--quick`` uses ``quick/`` below both. Exit codes: 0 done, 2 bad arguments,
3 stale results (rerun with ``--rerun-stale``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_RESULTS = REPO / "benchmarks" / "results" / "accuracy"


def build_parser(prog: str = "geo-neuralop study") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Accuracy studies: our models and the peers' own models, "
        "trained alike on our generated data; results in benchmarks/results/accuracy/.")
    parser.add_argument("names", nargs="+", metavar="NAME",
                        help="study names, 'all', or 'list' to print the studies")
    parser.add_argument("--quick", action="store_true",
                        help="the small versions (one seed, tiny data; a few minutes each)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="run only these seeds (default: the study's)")
    parser.add_argument("--budgets", nargs="+", choices=["epochs", "time"], default=None,
                        help="run only these budgets (default both)")
    parser.add_argument("--models", nargs="+", default=None, metavar="LABEL",
                        help="run only these models (labels as in `study list`)")
    parser.add_argument("--report-only", action="store_true",
                        help="write tables and plots from the existing result files")
    parser.add_argument("--rerun-stale", action="store_true",
                        help="delete and rerun results made with another config or code")
    parser.add_argument("--work-dir", default=str(REPO / "outputs" / "accuracy"),
                        help="datasets and checkpoints (default: %(default)s)")
    parser.add_argument("--results-dir", default=str(DEFAULT_RESULTS),
                        help="result files, tables, plots (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes for data generation (default 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for training (default 1)")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "geo-neuralop study") -> int:
    args = build_parser(prog).parse_args(argv)
    import torch

    from .notes import FINDINGS
    from .report import splice_readme, write_readme, write_report
    from .runner import StaleResultError, StudyPaths, StudyRunner, plan_runs, run_study
    from .studies import get_study, study_names

    torch.set_num_threads(max(1, args.threads))
    names = study_names() if args.names in (["all"], ["list"]) else list(args.names)
    try:
        specs = [get_study(name, args.quick) for name in names]
    except ValueError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 2
    if args.names == ["list"]:
        for spec in specs:
            print(f"{spec.name}: {spec.title} (reference {spec.reference}; seeds "
                  f"{list(spec.seeds)}, {spec.trainer['epochs']} epochs)")
            for entry in spec.models:
                print(f"    {entry.label:<34} {entry.config['name']:<16} {entry.library}")
        return 0
    suffix = Path("quick") if args.quick else Path()
    paths = StudyPaths(Path(args.work_dir) / suffix, Path(args.results_dir) / suffix)
    status = 0
    for spec in specs:
        clock = time.perf_counter()
        if not args.report_only:
            print(f"=== study {spec.name}: {spec.title}", flush=True)
            try:
                done = run_study(spec, paths, seeds=args.seeds, budgets=args.budgets,
                                 labels=args.models, rerun_stale=args.rerun_stale,
                                 workers=args.workers, log=lambda m: print(m, flush=True))
            except StaleResultError as error:
                print(f"{prog}: {error}", file=sys.stderr)
                status = 3
                continue
            except ValueError as error:
                print(f"{prog}: {error}", file=sys.stderr)
                return 2
            print(f"study {spec.name}: ran {len(done['ran'])}, skipped {len(done['skipped'])} "
                  f"finished run(s) in {done['wall_s']:.0f} s"
                  + (" (time budget deferred)" if done["deferred"] else ""), flush=True)
        fresh = _freshness(spec, paths, StudyRunner, plan_runs)
        agg = write_report(spec, paths.study_results(spec.name), fresh)
        folder = paths.study_results(spec.name)
        print(f"wrote {folder / 'summary.md'} ({len(agg['plots'])} plot(s)) in "
              f"{time.perf_counter() - clock:.0f} s", flush=True)
    from .studies import STUDIES

    all_specs = [get_study(name, args.quick) for name in STUDIES]
    readme = write_readme(all_specs, paths.results, FINDINGS)
    print(f"wrote {readme}")
    project = REPO / "README.md"
    if not args.quick and paths.results.resolve() == DEFAULT_RESULTS.resolve() and \
            project.is_file() and splice_readme(readme, project):
        print(f"updated the Results section of {project}")
    return status


def _freshness(spec, paths, runner_cls, plan_runs) -> dict[str, str | None]:
    """Why result files differ from the current study (key -> None, "config" or "code")."""
    import json

    folder = paths.study_results(spec.name)
    params = folder / "params.json"
    if not params.exists():
        return {}
    matched = json.loads(params.read_text())["models"]
    runner = runner_cls(spec, paths)
    out: dict[str, str | None] = {}
    for path in sorted((folder / "runs").glob("*.json")):
        record = json.loads(path.read_text())
        label = record["label"]
        tuned = {label: record.get("trainer", {}).get(spec.tune_key)} \
            if spec.tune_values else None
        plan = plan_runs(spec, {label: {**matched[label]}}, [record["seed"]],
                         {label: record["epochs"]}, [label], tuned) \
            if label in matched and label in [m.label for m in spec.models] else []
        if not plan:
            out[record["key"]] = "config"
            continue
        current = runner.fingerprint(plan[0])
        old = record.get("fingerprint", {})
        out[record["key"]] = ("config" if old.get("config") != current["config"] else
                              "code" if old.get("code") != current["code"] else None)
    return out


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
