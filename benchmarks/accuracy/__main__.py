"""``python -m benchmarks.accuracy NAME ...`` (from the repository root): see :mod:`.cli`."""

from .cli import main

raise SystemExit(main(prog="python -m benchmarks.accuracy"))
