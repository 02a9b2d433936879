"""The ``geo-neuralop`` command line."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geo-neuralop",
        description="Neural operators on meshes and spheres.",
    )
    add_version_argument(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="run the end-to-end demo on a small default and check every result",
        description="Run the demo: every step is checked against an analytic reference; "
        "the exit code is non-zero if any check fails.",
    )
    demo.add_argument("--output-dir", default="outputs/demo",
                      help="folder for the files the demo writes (default: %(default)s)")
    demo.add_argument("--checks-only", action="store_true",
                      help="only the quick checks (quadrature, DISCO, differential kernels, "
                           "a picture); skip data generation, training and evaluation")
    add_generate_parser(sub)
    add_train_parsers(sub)
    add_import_parsers(sub)
    add_predict_parser(sub)
    sub.add_parser("study", add_help=False, help="accuracy studies against the peers' own "
                   "models (repository checkout; `geo-neuralop study --help`)")

    render = sub.add_parser(
        "render",
        help="pictures, animations and ParaView files from a prediction file",
        description="Render truth, prediction and error from a prediction file (HDF5, written "
        "by evaluation or geo_neuralop.data.save_predictions): a PNG of one frame, optionally "
        "an animation of the rollout, Mollweide maps (sphere) and VTU/PVD or XDMF files.",
    )
    render.add_argument("predictions", help="prediction file (.h5)")
    render.add_argument("--field", help="field to draw (default: the first in the file)")
    render.add_argument("--frame", type=int, default=-1,
                        help="frame index for the picture (default: the last)")
    render.add_argument("--output-dir", default=None,
                        help="where to write (default: beside the prediction file)")
    render.add_argument("--animate", choices=["gif", "mp4"],
                        help="also write an animation of every frame")
    render.add_argument("--fps", type=int, default=6, help="animation frames per second")
    render.add_argument("--map", action="store_true",
                        help="sphere only: also write Mollweide maps with matplotlib")
    render.add_argument("--vtu", action="store_true",
                        help="also write one VTU per frame and a .pvd collection for ParaView")
    render.add_argument("--xdmf", action="store_true",
                        help="also write an XDMF time series (+ .h5) for ParaView")
    render.add_argument("--show-edges", action="store_true", help="draw mesh edges")
    render.add_argument("--show", action="store_true",
                        help="open an interactive window when a display is available")
    return parser


def run_render(args: argparse.Namespace) -> int:
    """Implementation of ``geo-neuralop render``; prints every file written and its time."""
    from pathlib import Path

    from geo_neuralop.data import load_predictions
    from geo_neuralop.viz import render_predictions

    def fail(message: object) -> int:
        print(f"geo-neuralop render: {message}", file=sys.stderr)
        return 2

    if args.fps <= 0:
        return fail(f"--fps must be a positive number of frames per second, got {args.fps}")
    try:
        data = load_predictions(args.predictions)
    except (FileNotFoundError, ValueError) as error:
        return fail(error)
    except OSError as error:
        return fail(_os_error(error))
    out = Path(args.output_dir) if args.output_dir else Path(args.predictions).parent

    def report(path: Path, seconds: float) -> None:
        print(f"wrote {path}  ({seconds:.2f} s)", flush=True)

    try:
        render_predictions(data, out, Path(args.predictions).stem, field=args.field,
                           frame=args.frame, sphere_map=args.map, animation=args.animate,
                           fps=args.fps, vtu=args.vtu, xdmf=args.xdmf,
                           show_edges=args.show_edges, show=args.show, on_written=report)
    except ValueError as error:
        return fail(error)
    except OSError as error:  # a read-only or immutable --output-dir, a full disk
        return fail(_os_error(error))
    return 0


#: Samples generated when --n-samples is not given.
GENERATE_DEFAULT_SAMPLES = {"cylinder": 10, "swe": 20, "darcy": 100, "ns2d": 20}


def add_generate_parser(sub) -> None:
    """The ``generate`` subcommand's arguments."""
    import textwrap

    from geo_neuralop.data.generate import GENERATORS

    lines = []
    for name, spec in GENERATORS.items():
        defaults = ", ".join(f"{k}={v}" for k, v in spec.defaults.items())
        lines.append(textwrap.fill(f"{name}: {spec.description}", 88, initial_indent="  ",
                                   subsequent_indent="    "))
        lines.append(textwrap.fill(f"parameters: {defaults}", 88, initial_indent="    ",
                                   subsequent_indent="      "))
    gen = sub.add_parser(
        "generate",
        help="generate a dataset (cylinder flow, shallow water, Darcy, 2D Navier-Stokes)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Generate a dataset with geo_neuralop's own solvers into --out: one HDF5 file per "
            "sample (meshes also as VTU), a normalizer fitted on the training split and a "
            "dataset card (card.yaml) with the parameters, seed, code version and checksums. "
            "Sample i depends only on (--seed, i) and the parameters. Running the same command "
            "again resumes an interrupted run (finished samples are kept) or, when complete, "
            "does nothing; a folder holding anything else is never written over.", 88),
        epilog="generators and their parameters (None: the solver's default):\n"
        + "\n".join(lines)
        + "\n\nexamples:\n"
        "  geo-neuralop generate swe --out datasets/swe_small --n-samples 20 --workers 2\n"
        "  geo-neuralop generate swe --param nlat=64 --param initial_condition=galewsky\n"
        "  geo-neuralop generate darcy --out datasets/darcy --n-samples 1000 "
        "--param resolution=85\n"
        "  geo-neuralop generate cylinder --out datasets/cylinder --n-samples 200 --workers 2",
    )
    gen.add_argument("generator", choices=sorted(GENERATORS), help="which dataset to make")
    gen.add_argument("--out", default=None,
                     help="dataset folder (default: datasets/GENERATOR); must be absent, empty "
                     "or hold the same dataset")
    gen.add_argument("--n-samples", type=int, default=None,
                     help="number of samples (trajectories); default: "
                     + ", ".join(f"{k} {v}" for k, v in GENERATE_DEFAULT_SAMPLES.items()))
    gen.add_argument("--seed", type=int, default=0, help="dataset seed (default: %(default)s)")
    gen.add_argument("--workers", type=int, default=1,
                     help="parallel processes, one torch thread each (default: %(default)s)")
    gen.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                     help="set a generator parameter (repeatable); VALUE is read as YAML, "
                     "e.g. nlat=64, dt=600, reynolds_range=[80,160], initial_condition=galewsky")
    gen.add_argument("--split", type=float, nargs=3, default=(0.8, 0.1, 0.1),
                     metavar=("TRAIN", "VAL", "TEST"),
                     help="fractions of samples in the train/val/test splits (contiguous "
                     "index ranges; default: 0.8 0.1 0.1)")
    gen.add_argument("--overwrite", action="store_true",
                     help="if --out holds a different geo_neuralop dataset, delete its files "
                     "(only those) instead of stopping")
    gen.add_argument("--shard", default=None, metavar="I/N",
                     help="make only the samples i with i %% N == I (0 <= I < N), e.g. one "
                     "SLURM array task each (--shard $SLURM_ARRAY_TASK_ID/N with "
                     "--array=0-(N-1)); shards fill the same --out at the same time; then "
                     "run once with --finalize")
    gen.add_argument("--finalize", action="store_true",
                     help="compute nothing: check that every sample is present and readable "
                     "(refusing otherwise) and write the normalizer and card.yaml")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_generate(args: argparse.Namespace) -> int:
    """Implementation of ``geo-neuralop generate``."""
    from geo_neuralop.data import DatasetError, generate_dataset
    from geo_neuralop.utils.folders import FolderBusyError
    from geo_neuralop.utils.yaml_values import parse_assignment

    def fail(message: object, code: int = 2) -> int:
        print(f"geo-neuralop generate: {message}", file=sys.stderr)
        return code

    params = {}
    for item in args.param:
        try:
            key, value = parse_assignment(item, "--param")  # read as train --set reads
        except ValueError as error:
            return fail(error)
        params[key] = value
    if args.n_samples is not None and args.n_samples < 1:
        return fail(f"--n-samples must be a positive integer, got {args.n_samples}")
    out = args.out or f"datasets/{args.generator}"
    n_samples = GENERATE_DEFAULT_SAMPLES[args.generator] if args.n_samples is None \
        else args.n_samples
    try:
        card = generate_dataset(args.generator, out, n_samples, seed=args.seed,
                                workers=args.workers, params=params,
                                split_fractions=tuple(args.split), overwrite=args.overwrite,
                                progress=not args.no_progress, shard=args.shard,
                                finalize=args.finalize)
    except (DatasetError, ValueError, FolderBusyError) as error:
        return fail(error)
    except OSError as error:  # a read-only or immutable folder, a full disk
        return fail(_os_error(error))
    except RuntimeError as error:
        return fail(error, 1)
    except KeyboardInterrupt:
        return fail("interrupted; the finished samples are kept, run the same command again "
                    "to resume", 130)
    if card is not None:
        print(f"wrote {card}")
    return 0


def _os_error(error: OSError) -> str:
    """One line for a file-system error: what failed, on which path."""
    where = f" {error.filename}" if error.filename else ""
    reason = error.strerror or str(error)
    hint = ""
    if isinstance(error, PermissionError):
        hint = " (a read-only or immutable folder? choose another folder or fix its permissions)"
    return f"cannot access{where}: {reason}{hint}"


def _rollout_steps(text: str) -> int | None:
    """``--rollout-steps`` values: a non-negative int, or ``all``."""
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer or 'all', got "
                                         f"{text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def add_train_parsers(sub) -> None:
    """The ``train`` and ``evaluate`` subcommands' arguments."""
    import textwrap

    train = sub.add_parser(
        "train",
        help="train a model from a YAML config, then evaluate it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Train the model a YAML config describes (sections data, model, trainer, "
            "evaluation; see examples/configs/) on a dataset made by `geo-neuralop generate`, "
            "save checkpoints, metrics and the final model in the run folder, then evaluate it "
            "on the test split (one-step and rollout errors against the persistence baseline, "
            "prediction files for `geo-neuralop render`). Config errors are reported with their "
            "key path. Several processes: torchrun --nproc_per_node 2 -m geo_neuralop.cli train "
            "CONFIG (trainer.batch_size is the global batch; only rank 0 writes files).", 88),
        epilog="run folder (--out, default trainer.out_dir or outputs/runs/NAME):\n"
        "  config.yaml  resolved config     checkpoints/  last.pt, previous.pt, best.pt\n"
        "  metrics.jsonl, metrics.csv       model.pt      final model (load_model)\n"
        "  evaluation/metrics.json          evaluation/predictions/*.h5\n\n"
        "examples:\n"
        "  geo-neuralop train examples/configs/darcy.yaml\n"
        "  geo-neuralop train examples/configs/shallow_water.yaml --set trainer.epochs=2 "
        "--set model.hidden_channels=16\n"
        "  geo-neuralop train examples/configs/cylinder.yaml --out outputs/runs/cyl --resume",
    )
    train.add_argument("config", help="YAML config file")
    train.add_argument("--out", default=None, metavar="DIR",
                       help="run folder (default: trainer.out_dir of the config, else "
                       "outputs/runs/NAME)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in the run folder from its newest checkpoint "
                       "(exactly, as if never stopped); a finished run is only evaluated again")
    train.add_argument("--overwrite", action="store_true",
                       help="start afresh even though the run folder holds checkpoints")
    train.add_argument("--set", action="append", default=[], dest="overrides",
                       metavar="KEY.PATH=VALUE",
                       help="override a config value (repeatable); VALUE is read as YAML, "
                       "e.g. --set trainer.epochs=5 --set model.n_modes=[12,12]")
    train.add_argument("--no-eval", action="store_true",
                       help="skip the evaluation after training")

    ev = sub.add_parser(
        "evaluate",
        help="evaluate a trained model: metrics table and prediction files",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Evaluate a model trained by `geo-neuralop train` on a dataset split: "
            "one-step errors over every sample and, for time-dependent data, autoregressive "
            "rollout errors per step, each next to the persistence baseline (the last input "
            "held constant), in normalized units. Prints a table, writes metrics.json and "
            "prediction files (physical units) for `geo-neuralop render`. The data may be "
            "another dataset of the same fields (e.g. a finer grid); the training normalizer "
            "is used.", 88),
        epilog="examples:\n"
        "  geo-neuralop evaluate outputs/runs/shallow_water --rollout-steps 20\n"
        "  geo-neuralop evaluate outputs/runs/darcy/model.pt --data datasets/darcy_fine "
        "--split test",
    )
    ev.add_argument("checkpoint",
                    help="run folder (uses checkpoints/best.pt, else last.pt, else model.pt), "
                    "training checkpoint (.pt) or model.pt")
    ev.add_argument("--data", default=None, metavar="PATH",
                    help="dataset folder (default: the dataset the model was trained on)")
    ev.add_argument("--split", default=None,
                    help="split to evaluate: train, val or test (default: the config's "
                    "evaluation.split, test)")
    ev.add_argument("--rollout-steps", type=_rollout_steps, default=argparse.SUPPRESS,
                    metavar="N",
                    help="rollout length in steps, 0 for none, 'all' for as many as the data "
                    "allows (default: the config's evaluation.rollout_steps)")
    ev.add_argument("--out", default=None, metavar="DIR",
                    help="where metrics.json and predictions/ go (default: evaluation/ in the "
                    "checkpoint's run folder)")
    ev.add_argument("--device", default=None,
                    help="auto, cpu, cuda or cuda:I (default: the config's evaluation.device)")


def _setup_logging() -> None:
    import logging
    import os

    level = logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s")


def run_train(args: argparse.Namespace) -> int:
    """Implementation of ``geo-neuralop train``.

    Exit codes: 0 done, 2 a problem of the input (config, dataset, run folder, file
    system), 1 training diverged, 130 / 143 stopped by Ctrl-C / SIGTERM after writing a
    checkpoint (``--resume`` continues exactly).
    """
    from geo_neuralop.data import DatasetError
    from geo_neuralop.training.config import ConfigError
    from geo_neuralop.training.evaluation import format_results
    from geo_neuralop.training.experiment import run_experiment
    from geo_neuralop.training.trainer import NonFiniteLossError
    from geo_neuralop.utils.folders import FolderBusyError, FolderNotOursError

    def fail(message: object, code: int = 2) -> int:
        print(f"geo-neuralop train: {message}", file=sys.stderr)
        return code

    _setup_logging()
    try:
        result = run_experiment(args.config, args.out, resume=args.resume,
                                overrides=args.overrides, overwrite=args.overwrite,
                                evaluate=False if args.no_eval else None)
    except (ConfigError, DatasetError, FileNotFoundError, FolderBusyError,
            FolderNotOursError) as error:
        return fail(error)
    except NonFiniteLossError as error:
        return fail(error, 1)
    except IsADirectoryError as error:
        return fail(f"{error.filename} is a folder, not a file")
    except OSError as error:  # a read-only or immutable run folder, a full disk
        return fail(_os_error(error))
    except KeyboardInterrupt:  # outside the training loop, which checkpoints and exits 130
        return fail("interrupted", 130)
    if result["rank"] != 0:
        return 0
    history = result["history"]
    if history:
        last = history[-1]
        shown = ", ".join(f"{k} {v:.4g}" for k, v in last.items()
                          if k in ("train_loss", "val_loss") and isinstance(v, float))
        print(f"trained {last['epoch']} epochs in {result['train_time_s']:.1f} s ({shown})")
    print(f"run folder: {result['out_dir']} (model: {result['model_path']})")
    if result["evaluation"] is not None:
        print(format_results(result["evaluation"]))
    return 0


def _check_device(text: str | None) -> str | None:
    """``--device`` values: auto, cpu, cuda, cuda:I or another device torch knows."""
    if text is None or text == "auto":
        return None
    import torch

    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        return (f"--device {text!r} is not a device; use auto, cpu, cuda or cuda:I (e.g. "
                f"cuda:0)")
    return None


def run_evaluate(args: argparse.Namespace) -> int:
    """Implementation of ``geo-neuralop evaluate``."""
    from geo_neuralop.data import DatasetError
    from geo_neuralop.training.config import ConfigError
    from geo_neuralop.training.evaluation import evaluate_checkpoint, format_results

    def fail(message: object, code: int = 2) -> int:
        print(f"geo-neuralop evaluate: {message}", file=sys.stderr)
        return code

    problem = _check_device(args.device)
    if problem:
        return fail(problem)
    _setup_logging()
    try:
        results = evaluate_checkpoint(args.checkpoint, args.data, args.split,
                                      getattr(args, "rollout_steps", "config"), args.out,
                                      device=args.device)
    except (ConfigError, DatasetError, FileNotFoundError, ValueError) as error:
        return fail(error)
    except OSError as error:
        return fail(_os_error(error))
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    print(format_results(results))
    return 0


def add_version_argument(parser: argparse.ArgumentParser) -> None:
    """``--version``: the package version (geo_neuralop/_version.py)."""
    from geo_neuralop._version import __version__

    parser.add_argument("--version", action="version", version=f"geo-neuralop {__version__}")


def add_import_parsers(sub) -> None:
    """The ``import`` and ``export`` subcommands' arguments."""
    import textwrap

    imp = sub.add_parser(
        "import",
        help="make a dataset from NetCDF/Zarr lat/lon fields, The Well or PDEBench files",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Convert data in another format into a dataset folder the trainer takes (the "
            "layout `geo-neuralop generate` writes: one HDF5 file per sample, a normalizer "
            "fitted on the training split and a dataset card). Files are read one frame or "
            "trajectory at a time, so they may be larger than memory.", 88),
        epilog="examples:\n"
        "  geo-neuralop import xarray era5_z500.nc --variables z --out datasets/z500\n"
        "  geo-neuralop import xarray store.zarr --variables u10 v10 --lat latitude "
        "--lon longitude --frames-per-sample 8 --out datasets/wind\n"
        "  geo-neuralop import the-well the_well/datasets/planetswe --out datasets/planetswe\n"
        "  geo-neuralop import pdebench 2D_DarcyFlow_beta1.0_Train.hdf5 --out datasets/pdb_darcy",
    )
    kinds = imp.add_subparsers(dest="format", required=True, metavar="FORMAT")
    xa = kinds.add_parser("xarray", help="global lat/lon fields in a NetCDF file or Zarr store",
                          description="Global lat/lon fields (equiangular with or without pole "
                          "rows, or Gaussian latitudes, recognized from the coordinates; "
                          "latitudes in either order, longitudes 0..360 or -180..180). The time "
                          "series is cut into samples of --frames-per-sample frames; the splits "
                          "are contiguous in time.")
    xa.add_argument("path", help="NetCDF file (.nc) or Zarr store (.zarr)")
    xa.add_argument("--variables", nargs="+", required=True, metavar="NAME",
                    help="variables to import (the model's fields, in this order)")
    xa.add_argument("--lat", default="lat", help="latitude coordinate (default: %(default)s)")
    xa.add_argument("--lon", default="lon", help="longitude coordinate (default: %(default)s)")
    xa.add_argument("--time", default="time", help="time dimension (default: %(default)s)")
    xa.add_argument("--frames-per-sample", type=int, default=None, metavar="N",
                    help="frames per sample (default: the series in 10 pieces)")
    well = kinds.add_parser("the-well", help="The Well's HDF5 files (a file, a folder of them, "
                            "or a dataset folder with data/train, data/valid, data/test)")
    well.add_argument("path", help="Well file or folder")
    pdb = kinds.add_parser("pdebench", help="a PDEBench 2D file: Darcy, incompressible "
                           "Navier-Stokes or shallow water (radial dam break)")
    pdb.add_argument("path", help="PDEBench HDF5 file")
    pdb.add_argument("--layout", choices=["darcy", "ns", "swe"], default=None,
                     help="the file's layout (default: detected from its contents)")
    pdb.add_argument("--max-samples", type=int, default=None, metavar="N",
                     help="import only the first N samples")
    for p in (xa, well, pdb):
        p.add_argument("--out", required=True, metavar="DIR", help="dataset folder to write")
        p.add_argument("--split", type=float, nargs=3, default=(0.8, 0.1, 0.1),
                       metavar=("TRAIN", "VAL", "TEST"),
                       help="fractions of samples per split (contiguous; the-well keeps the "
                       "source's own splits when it has them)")
        p.add_argument("--overwrite", action="store_true",
                       help="replace an earlier dataset in --out (only its own files)")

    exp = sub.add_parser("export", help="write a dataset in another tool's layout (The Well)",
                         description="Write a regular-grid or sphere-grid dataset in The Well's "
                         "HDF5 layout: OUT/data/{train,valid,test}/NAME.hdf5 and OUT/stats.yaml, "
                         "which the_well's WellDataset loads.")
    exp_kinds = exp.add_subparsers(dest="format", required=True, metavar="FORMAT")
    ew = exp_kinds.add_parser("the-well", help="The Well's layout")
    ew.add_argument("dataset", help="dataset folder (with card.yaml)")
    ew.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    ew.add_argument("--name", default=None, help="dataset_name (default: the dataset's name)")
    ew.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")


def add_predict_parser(sub) -> None:
    """The ``predict`` subcommand's arguments."""
    import textwrap

    pred = sub.add_parser(
        "predict",
        help="run a trained model on a new mesh or lat/lon file",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Roll a model trained by `geo-neuralop train` out from a new input: a mesh file "
            "with fields as point data (VTU, XDMF time series, ... through meshio), a NetCDF "
            "file or Zarr store of lat/lon fields, or a dataset sample (.h5). The input is "
            "checked against the model's training card (fields, units, grid kind, conditioning, "
            "node types); values far outside the training data are warned about. The output "
            "format follows --out's suffix: .vtu (last frame, and every frame as NAME_stepK), "
            ".pvd (a VTU per frame and a ParaView collection), .nc or .zarr (CF lat/lon), .h5 "
            "(dataset sample format).", 88),
        epilog="examples:\n"
        "  geo-neuralop predict outputs/runs/cylinder new_cylinder.vtu --steps 20 --param "
        "reynolds=120 --out pred.pvd\n"
        "  geo-neuralop predict outputs/runs/z500 analysis.nc --steps 8 --out forecast.nc",
    )
    pred.add_argument("model", help="run folder, training checkpoint or model.pt")
    pred.add_argument("input", help="mesh file, NetCDF file, Zarr store or dataset sample (.h5)")
    pred.add_argument("--steps", type=int, default=1, help="autoregressive steps (default 1)")
    pred.add_argument("--out", required=True, metavar="FILE",
                      help="output file: .vtu, .pvd, .nc, .zarr or .h5")
    pred.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                      help="a conditioning value the input does not carry, e.g. reynolds=120")
    pred.add_argument("--variables", nargs="+", default=None, metavar="NAME",
                      help="lat/lon inputs: the variables to read (default: all)")
    pred.add_argument("--device", default="cpu", help="cpu, cuda or cuda:I (default: cpu)")


def run_predict(args: argparse.Namespace) -> int:
    """Implementation of ``geo-neuralop predict``."""
    import warnings

    from geo_neuralop.data import DatasetError
    from geo_neuralop.training.prediction import PredictionWarning, predict

    conditioning = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        try:
            conditioning[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            print(f"geo-neuralop predict: --param expects NAME=NUMBER, got {item!r}",
                  file=sys.stderr)
            return 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PredictionWarning)
        try:
            result = predict(args.model, args.input, steps=args.steps, out=args.out,
                             conditioning=conditioning or None, fields=args.variables,
                             device=args.device)
        except (DatasetError, ValueError, FileNotFoundError, ImportError) as error:
            print(f"geo-neuralop predict: {error}", file=sys.stderr)
            return 2
    for warning in caught:
        if issubclass(warning.category, PredictionWarning):
            print(f"warning: {warning.message}", file=sys.stderr)
    print(f"predicted {result.prediction.shape[0]} step(s) of {', '.join(result.field_names)} "
          f"on {result.prediction.shape[1]} points; wrote {result.path}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    """Implementation of ``geo-neuralop import``."""
    from geo_neuralop.data import DatasetError
    from geo_neuralop.data.importers import import_pdebench, import_well, import_xarray

    common = {"split_fractions": tuple(args.split), "overwrite": args.overwrite, "log": print}
    try:
        if args.format == "xarray":
            card = import_xarray(args.path, args.variables, args.out, lat=args.lat,
                                 lon=args.lon, time=args.time,
                                 frames_per_sample=args.frames_per_sample, **common)
        elif args.format == "the-well":
            card = import_well(args.path, args.out, **common)
        else:
            card = import_pdebench(args.path, args.out, layout=args.layout,
                                   max_samples=args.max_samples, **common)
    except (DatasetError, ValueError, FileNotFoundError, ImportError) as error:
        print(f"geo-neuralop import: {error}", file=sys.stderr)
        return 2
    print(f"wrote {card}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Implementation of ``geo-neuralop export``."""
    from geo_neuralop.data import DatasetError
    from geo_neuralop.data.importers import export_well

    try:
        out = export_well(args.dataset, args.out, name=args.name, overwrite=args.overwrite)
    except (DatasetError, ValueError, FileNotFoundError) as error:
        print(f"geo-neuralop export: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


def run_study(argv: list[str]) -> int:
    """``geo-neuralop study``: the accuracy studies in the checkout's benchmarks/accuracy/."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "accuracy" / "cli.py").is_file():
        print(f"geo-neuralop study: no benchmarks/accuracy/ beside {root / 'geo_neuralop'}; "
              f"the studies run from a repository checkout", file=sys.stderr)
        return 2
    sys.path.insert(0, str(root))
    from benchmarks.accuracy.cli import main as study_main

    return study_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["study"]:  # its own parser (options are passed through)
        return run_study(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from geo_neuralop.demo import run_demo

        return run_demo(args.output_dir, checks_only=args.checks_only)
    if args.command == "render":
        return run_render(args)
    if args.command == "generate":
        return run_generate(args)
    if args.command == "train":
        return run_train(args)
    if args.command == "evaluate":
        return run_evaluate(args)
    if args.command == "import":
        return run_import(args)
    if args.command == "export":
        return run_export(args)
    if args.command == "predict":
        return run_predict(args)
    raise AssertionError(f"unhandled command {args.command}")  # argparse rejects unknown ones


if __name__ == "__main__":
    sys.exit(main())
