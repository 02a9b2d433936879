"""What the studies found, in words, for the README section (numbers stay in the tables).

Each entry is shown under its study's table by :func:`~benchmarks.accuracy.report.write_readme`.
The text holds no numbers: every number of the section comes from a result file.
"""

from __future__ import annotations

__all__ = ["FINDINGS"]

FINDINGS: dict[str, str] = {}
