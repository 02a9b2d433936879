"""How much of a one-step cylinder update a latent grid can hold at all.

MeshNO predicts the change of the state over one step through a regular latent grid
over the channel (its mesh-level path adds only pointwise features and, optionally,
fixed-radius mesh layers). This script measures, on the test trajectories, the
error left when the true change is merely *carried* through a latent grid and back:
piecewise-linear interpolation from the mesh to the grid points, bilinear
interpolation back to the vertices. No model can beat this floor by working on that
grid alone; the local layers of a LocalNO processor work on the same grid.

For latent shapes 48 x 12 (the studies'), 96 x 24 and 192 x 48 it reports, in the
normalized units of the one-step errors:

- ``floor``: mean over windows of ``||Π δ - δ|| / ||x_{t+1}||`` (quadrature-weighted
  L2 over all three fields), ``δ = x_{t+1} - x_t`` and ``Π`` the round trip;
- ``near_share``: the share of ``||Π δ - δ||²`` within two diameters of the cylinder
  centre (a region of about 5% of the channel's area);
- ``change``: mean ``||δ|| / ||x_{t+1}||``, the error of predicting no change.

Run: ``.venv/bin/python -m benchmarks.accuracy.latent_floor [--quick]``; writes
``<results>/cylinder_gap/latent_floor.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator, RegularGridInterpolator

from geo_neuralop.data import FieldNormalizer, read_card, read_trajectory
from geo_neuralop.data.dataset_card import split_indices
from geo_neuralop.data.storage import NORMALIZER_NAME, sample_path
from geo_neuralop.utils import atomic_path

from .datasets import dataset_root
from .studies import get_study

__all__ = ["SHAPES", "latent_floor", "round_trip"]

SHAPES = ((48, 12), (96, 24), (192, 48))
FIELDS = ("u", "v", "p")


def round_trip(points: np.ndarray, values: np.ndarray, shape: Sequence[int],
               margin: float = 0.05) -> np.ndarray:
    """Vertex values ``[N, C]`` interpolated to a ``shape`` grid over the padded bounding box
    (linear on the triangulation, nearest outside it) and back (bilinear), ``[N, C]``."""
    lo, hi = points.min(0), points.max(0)
    pad = (hi - lo) * margin
    axes = [np.linspace(a, b, n) for a, b, n in zip(lo - pad, hi + pad, shape, strict=True)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    on_grid = LinearNDInterpolator(points, values)(grid)
    missing = np.isnan(on_grid).any(axis=1)
    if missing.any():  # outside the mesh (corners of the padded box, the cylinder)
        on_grid[missing] = NearestNDInterpolator(points, values)(grid[missing])
    back = RegularGridInterpolator(axes, on_grid.reshape(*shape, -1))
    return back(points)


def latent_floor(root: str | Path, shapes: Sequence[Sequence[int]] = SHAPES,
                 split: str = "test") -> dict:
    """The floor of every latent shape on the ``split`` trajectories of a cylinder dataset."""
    root = Path(root)
    card = read_card(root)
    norm = FieldNormalizer.load(root / NORMALIZER_NAME)
    stats = {tuple(s): {"floor": [], "near": [], "change": []} for s in shapes}
    for index in split_indices(card, split):
        traj = read_trajectory(sample_path(root, index))
        w = traj.weights
        x = np.stack([(traj.fields[f] - norm.mean[f]) / norm.std[f] for f in FIELDS], -1)
        solver = traj.params["solver"]
        near = np.linalg.norm(traj.pos - np.asarray(solver["center"]), axis=1) < \
            2 * solver["diameter"]
        for t in range(x.shape[0] - 1):
            delta = x[t + 1] - x[t]
            norm_next = np.sqrt((w[:, None] * x[t + 1] ** 2).sum())
            for shape in stats:
                err = round_trip(traj.pos, delta, shape) - delta
                sq = (w[:, None] * err**2).sum(1)
                stats[shape]["floor"].append(np.sqrt(sq.sum()) / norm_next)
                stats[shape]["near"].append(sq[near].sum() / max(sq.sum(), 1e-300))
                stats[shape]["change"].append(np.sqrt((w[:, None] * delta**2).sum())
                                              / norm_next)
    return {"dataset": str(root), "split": split, "windows": len(stats[tuple(shapes[0])]
                                                                  ["floor"]),
            "shapes": {f"{s[0]}x{s[1]}": {"floor": float(np.mean(v["floor"])),
                                          "near_share": float(np.mean(v["near"])),
                                          "change": float(np.mean(v["change"]))}
                       for s, v in stats.items()}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy.latent_floor",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    repo = Path(__file__).resolve().parents[2]
    parser.add_argument("--work-dir", default=str(repo / "outputs" / "accuracy"))
    parser.add_argument("--results-dir", default=str(repo / "benchmarks" / "results" /
                                                     "accuracy"))
    args = parser.parse_args(argv)
    suffix = "quick" if args.quick else ""
    spec = get_study("cylinder_gap", args.quick)
    root = dataset_root(Path(args.work_dir) / suffix, spec.datasets["coarse"])
    result = latent_floor(root)
    out = Path(args.results_dir) / suffix / "cylinder_gap"
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "latent_floor.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    lines = ["| latent grid | floor (rel. L2 of the carried change) | share within 2 D of "
             "the cylinder | no-change error |", "|---|---|---|---|"]
    for name, v in result["shapes"].items():
        lines.append(f"| {name} | {v['floor']:.4f} | {v['near_share']:.0%} | "
                     f"{v['change']:.4f} |")
    with atomic_path(out / "latent_floor.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
