"""MeshNO training on a dataset of many different meshes against one repeated mesh.

Run: ``.venv/bin/python benchmarks/many_meshes.py [--quick] [--meshes 200] [--label NAME]``.
Writes ``benchmarks/results/many_meshes[_LABEL].{json,md}``.

Data: ``--meshes`` jittered triangulations of the rectangle [0, 2] x [0, 1], all
with the same number of vertices (60 x 30 = 1800, the size of the demo's cylinder
meshes) but different vertex positions (one seed each), two samples per mesh with
smooth random fields; against them, the same number of samples on one mesh.
Model: MeshNO, latent grid 32 x 16, 32 hidden channels, 4 FNO blocks, mesh DISCO
and differential layers (radius 0.1); Adam; batch 8; a PyG DataLoader with
``--workers`` workers (default 1); the main process trains on one thread. Rates are
samples per second over an epoch, after a first epoch that warms every cache (and
fills the kernel store).

Variants:

- ``one mesh``: every sample on one mesh, the model's own kernel caches (after the
  first batch nothing is built: the best case);
- ``many meshes, model caches``: the model builds kernels in the training step when
  its caches (64 meshes per layer) miss: every step with 200 meshes;
- ``many meshes, precomputed``: kernels built once per mesh by
  ``PrecomputeKernels(model.build_kernels, model.kernel_recipe(), store=...)`` in the
  DataLoader worker, kept in a ``KernelStore`` on disk and attached to the samples;
  the training step builds none (the "cold" epoch is the one that fills the store);
- ``one mesh, precomputed``: the same pipeline on one mesh.

The target: ``many meshes, precomputed`` within 10% of ``one mesh``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt, machine, write_results  # noqa: E402

SHAPE, BATCH, HIDDEN = (60, 30), 8, 32


class MeshSamples:
    """Two samples per mesh (torch Dataset protocol), optionally transformed."""

    def __init__(self, meshes, transform=None):
        self.meshes, self.transform = meshes, transform

    def __len__(self):
        return 2 * len(self.meshes)

    def __getitem__(self, index):
        import torch

        sample = self.meshes[index // 2].clone()
        x, y = sample.pos.T
        phase = 0.1 * index
        sample.x = torch.stack([torch.sin(3 * x + phase) * y, torch.cos(2 * y - phase)], 1)
        sample.y = torch.stack([torch.cos(3 * x) * sample.x[:, 0], sample.x[:, 1] ** 2], 1)
        return sample if self.transform is None else self.transform(sample)


def _meshes(count: int, distinct: bool):
    from geo_neuralop.geometry import jittered_rectangle_mesh

    domain = [(0.0, 2.0), (0.0, 1.0)]
    if distinct:
        return [jittered_rectangle_mesh(SHAPE, domain=domain, seed=s) for s in range(count)]
    return [jittered_rectangle_mesh(SHAPE, domain=domain, seed=0)] * count


def _model():
    import torch

    from geo_neuralop.models import MeshNO

    torch.manual_seed(0)
    return MeshNO(2, 2, latent_shape=(32, 16), hidden_channels=HIDDEN, n_layers=4,
                  mesh_layers=True, mesh_radius=0.1)


def run_variant(distinct: bool, precompute: bool, meshes: int, epochs: int,
                store_dir: str | None, workers: int = 1) -> dict:
    import torch
    from torch_geometric.loader import DataLoader

    torch.set_num_threads(1)
    model = _model()
    transform = None
    if precompute:
        from geo_neuralop.data import PrecomputeKernels

        transform = PrecomputeKernels(model.build_kernels, model.kernel_recipe(),
                                      store=store_dir)
    data = MeshSamples(_meshes(meshes, distinct), transform)
    loader = DataLoader(data, batch_size=BATCH, shuffle=True, num_workers=workers,
                        persistent_workers=True, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rates, losses = [], []
    for _ in range(epochs):
        start, seen = time.perf_counter(), 0
        for batch in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = (model(batch) - batch.y).square().mean()
            loss.backward()
            optimizer.step()
            seen += batch.num_graphs
            losses.append(float(loss))
        rates.append(seen / (time.perf_counter() - start))
    out = {"rates": rates, "samples_per_s": statistics.median(rates[1:]) if epochs > 1 else
           rates[0], "cold_samples_per_s": rates[0], "final_loss": losses[-1],
           "encoder_builds": model.encoder.kernels.builds}
    if precompute and store_dir is not None:
        store = transform.store
        out["store_bytes_per_mesh"] = store.nbytes() / max(len(store), 1)
        out["store_files"] = len(store)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meshes", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=3, help="the first one warms up")
    parser.add_argument("--quick", action="store_true", help="20 meshes, 2 epochs")
    parser.add_argument("--old", action="store_true",
                        help="only the variants an earlier revision has (no precompute)")
    parser.add_argument("--label", default="")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers")
    args = parser.parse_args()
    if args.quick:
        args.meshes, args.epochs = 20, 2
    variants = [("one mesh", False, False), ("many meshes, model caches", True, False)]
    if not args.old:
        variants += [("many meshes, precomputed", True, True),
                     ("one mesh, precomputed", False, True)]
    results = {}
    for name, distinct, precompute in variants:
        with tempfile.TemporaryDirectory() as folder:
            results[name] = run_variant(distinct, precompute, args.meshes, args.epochs,
                                        folder if precompute else None, args.workers)
        print(name, results[name], flush=True)
    base = results["one mesh"]["samples_per_s"]
    md = ["# MeshNO training: many meshes vs one mesh", "",
          "Machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()) + ".", "",
          f"{args.meshes} meshes of {SHAPE[0] * SHAPE[1]} vertices (2 samples each) or one "
          f"mesh; MeshNO latent 32×16, {HIDDEN} channels, 4 FNO blocks, mesh layers; batch "
          f"{BATCH}; {args.workers} DataLoader worker(s), training on one thread; median "
          f"samples/s over "
          f"epochs 2..{args.epochs} (first epoch: cold caches).", "",
          "| variant | samples/s | vs one mesh | first (cold) epoch samples/s | kernel builds "
          "in the training step (encoder) | store size per mesh |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        size = r.get("store_bytes_per_mesh")
        md.append(f"| {name} | {fmt(r['samples_per_s'])} | {fmt(r['samples_per_s'] / base)} "
                  f"| {fmt(r['cold_samples_per_s'])} | {r['encoder_builds']} | "
                  f"{'-' if size is None else f'{size / 1024:.0f} KiB'} |")
    md.append("")
    write_results("many_meshes" + (f"_{args.label}" if args.label else "") + (
        "_quick" if args.quick else ""),
        {"machine": machine(), "meshes": args.meshes, "results": results}, "\n".join(md))


if __name__ == "__main__":
    main()
