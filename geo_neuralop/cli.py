"""The ``geo-neuralop`` command line."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geo-neuralop",
        description="Neural operators on meshes and spheres.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="run the end-to-end demo on a small default and check every result",
        description="Run the demo: every step is checked against an analytic reference; "
        "the exit code is non-zero if any check fails.",
    )
    demo.add_argument("--output-dir", default="outputs/demo",
                      help="folder for the files the demo writes (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from geo_neuralop.demo import run_demo

        return run_demo(args.output_dir)
    raise AssertionError(f"unhandled command {args.command}")  # argparse rejects unknown ones


if __name__ == "__main__":
    sys.exit(main())
