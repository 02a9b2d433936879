"""Discretization agnosticism: one set of random weights applied at several resolutions.

Run: ``.venv/bin/python benchmarks/resolution_transfer.py [--quick] [--threads 2]``.
Writes ``benchmarks/results/resolution_transfer.{json,md}`` (``_quick`` with ``--quick``).

A neural operator with fixed weights should give (nearly) the same output
function whatever grid or mesh the same input function is sampled on. Every
model below is built once (seeded), converted to float64, and applied without
training:

1. Periodic unit square, grids 64^2 (the "training" resolution that
   neuraloperator's LocalNO is built for: ``default_in_shape=(64, 64)``), 128^2 and
   256^2, whose points nest; a smooth input and a detailed band-limited one
   (frequencies up to 12). Relative L2 difference (uniform quadrature) of the
   outputs at the 64^2 points against the 64^2 output and against the 256^2
   output. (a) Whole models: our LocalNO and FNO, neuraloperator 2.0.0's LocalNO
   (DISCO radius its default one cell and 1/16 of the domain like ours; and
   without DISCO layers) and FNO, sizes as in ``benchmarks/models.py`` (32
   hidden channels, 4 blocks, 17 x 9 Fourier modes). (b) The DISCO,
   differential and spectral layers of block 0 alone.
2. Sphere, nested equiangular grids 33 x 64, 65 x 128 and 129 x 256 (poles
   included; 17 x 32 is too coarse for the default differential radius pi/16):
   LocalSFNO (and SFNO for reference), lmax 16, outputs compared at the shared
   points with the coarse grid's quadrature weights, against the finest (the
   129 x 256 kernels take about a minute and a few GB).
3. MeshNO (FNO and LocalNO processors) on unrelated jittered triangulations of
   [0, 2] x [0, 1] at 21 x 11, 41 x 21 and 81 x 41 vertices: outputs evaluated on
   one common query mesh and compared with its quadrature weights against the
   output for a 161 x 81 input mesh (the set-up of ``tests/models/test_mesh_no.py``).

neuraloperator's spectral layers compute in complex64 whatever the input dtype
(``out_fft`` is allocated as ``cfloat``), so their outputs carry ~1e-7 relative
round-off; the differences reported here are many orders larger.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt, machine, write_results  # noqa: E402

HIDDEN, LAYERS = 32, 4
TRAIN, GRIDS = 64, (64, 128, 256)
SPHERES = ((33, 64), (65, 128), (129, 256))
MESH_DOMAIN = ((0.0, 2.0), (0.0, 1.0))
MESHES, MESH_REFERENCE, MESH_QUERY = ((21, 11), (41, 21), (81, 41)), (161, 81), (81, 41)


# ----------------------------------------------------------------------------- helpers

def _double(model: torch.nn.Module) -> torch.nn.Module:
    """float64 parameters and buffers, complex ones to complex128 (``.double()`` skips them)."""
    model = model.double().eval()
    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            if tensor.is_complex():
                tensor.data = tensor.data.to(torch.complex128)
    return model


def rel_l2(a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor | None = None) -> float:
    """``||a - b|| / ||b||`` with optional quadrature ``weights`` broadcast over ``a``."""
    w = torch.ones_like(b) if weights is None else weights.expand_as(b)
    return float((((a - b) ** 2 * w).sum() / (b**2 * w).sum()).sqrt())


# ----------------------------------------------------------------------------- 1. grids

def smooth_input(n: int) -> torch.Tensor:
    """A smooth periodic field on the ``n x n`` grid ``x_i = i / n``: ``[1, 1, n, n]``."""
    t = torch.arange(n, dtype=torch.float64) / n
    x, y = torch.meshgrid(t, t, indexing="ij")
    f = (torch.sin(2 * math.pi * x) * torch.cos(2 * math.pi * y)
         + 0.5 * torch.sin(4 * math.pi * y + 1.0) + 0.3 * torch.cos(6 * math.pi * (x + y)))
    return f[None, None]


def detailed_input(n: int, kmax: int = 12) -> torch.Tensor:
    """A band-limited periodic field with every frequency ``0 < |k| <= kmax`` (seeded random
    amplitudes ``/ sqrt(1 + |k|^2)`` and phases), unit RMS: ``[1, 1, n, n]``. Its samples at
    shared points are identical on every grid with ``n > 2 kmax``."""
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(n, dtype=torch.float64) / n
    x, y = torch.meshgrid(t, t, indexing="ij")
    f = torch.zeros(n, n, dtype=torch.float64)
    for kx in range(-kmax, kmax + 1):
        for ky in range(0, kmax + 1):
            if kx * kx + ky * ky > kmax * kmax or (ky == 0 and kx <= 0):
                continue
            amp = torch.randn((), generator=gen, dtype=torch.float64)
            phase = 2 * math.pi * torch.rand((), generator=gen, dtype=torch.float64)
            f += amp / math.sqrt(1 + kx * kx + ky * ky) * torch.cos(
                2 * math.pi * (kx * x + ky * y) + phase)
    return (f / f.square().mean().sqrt())[None, None]  # the grid mean is exact: same scale


INPUTS = {"smooth": smooth_input, "detailed": detailed_input}
INPUT_NOTES = {
    "smooth": "sin(2πx)cos(2πy) + 0.5 sin(4πy + 1) + 0.3 cos(6π(x + y))",
    "detailed": "all frequencies 0 < |k| <= 12, random amplitudes / sqrt(1 + |k|²) and phases "
                "(about 5 points per shortest wavelength at 64²)",
}

GRID_MODELS = {
    "LocalNO (ours)": "DISCO r = 1/16 of the domain, rebuilt for each grid",
    "LocalNO (ours, no differential)": "diff_layers=False: spectral + DISCO",
    "FNO (ours)": "reference: spectral only; (x, y) embedding",
    "FNO (ours, no embedding)": "positional_embedding=None",
    "LocalNO (neuraloperator, default radius)": "DISCO stencil 3 × 3 cells, built for 64²",
    "LocalNO (neuraloperator, r = 1/16)": "DISCO stencil 9 × 9 cells, built for 64²",
    "LocalNO (neuraloperator, no DISCO)": "spectral + differential only",
    "FNO (neuraloperator)": "reference: spectral only; (x, y) embedding",
    "LocalNO (ours), spectral zeroed": "spectral weights set to 0: local + skip paths only",
    "LocalNO (neuraloperator, default radius), spectral zeroed": "the same",
    "LocalNO (neuraloperator, r = 1/16), spectral zeroed": "the same",
}


def grid_model(name: str) -> torch.nn.Module:
    """The model of row ``name`` (seeded, float64, eval mode)."""
    if name.endswith(", spectral zeroed"):
        model = grid_model(name.removesuffix(", spectral zeroed"))
        blocks = getattr(model, "blocks", None) or model.local_no_blocks.convs
        with torch.no_grad():
            for block in blocks:
                conv = getattr(block, "conv", block)
                weight = conv.weight
                (getattr(weight, "tensor", weight)).zero_()
        return model
    torch.manual_seed(0)
    if name.startswith("LocalNO (ours"):
        from geo_neuralop.models import LocalNO

        return _double(LocalNO(1, 1, n_modes=(16, 16), hidden_channels=HIDDEN, n_layers=LAYERS,
                               diff_layers="no differential" not in name))
    if name.startswith("FNO (ours"):
        from geo_neuralop.models import FNO

        embedding = None if "no embedding" in name else "grid"
        return _double(FNO(1, 1, n_modes=(16, 16), hidden_channels=HIDDEN, n_layers=LAYERS,
                           positional_embedding=embedding))
    import neuralop.models as nop

    if name == "FNO (neuraloperator)":
        return _double(nop.FNO(n_modes=(17, 16), in_channels=1, out_channels=1,
                               hidden_channels=HIDDEN, n_layers=LAYERS))
    radius = 2.0 / 16 if "1/16" in name else None  # its domain is [-1, 1]^2
    return _double(nop.LocalNO(n_modes=(17, 16), in_channels=1, out_channels=1,
                               hidden_channels=HIDDEN, n_layers=LAYERS,
                               default_in_shape=(TRAIN, TRAIN), use_channel_mlp=True,
                               radius_cutoff=radius, disco_layers="no DISCO" not in name))


def compare(outs: dict) -> dict:
    """Relative differences at the ``TRAIN``-grid points: every grid against the training
    grid, and the coarser grids against the finest."""
    fine = GRIDS[-1]

    def at_train(n):
        return outs[n][..., :: n // TRAIN, :: n // TRAIN]

    return {"vs_train": {n: rel_l2(at_train(n), outs[TRAIN]) for n in GRIDS if n != TRAIN},
            "vs_finest": {n: rel_l2(at_train(n), at_train(fine)) for n in GRIDS if n != fine}}


def grid_study() -> dict:
    rows = {}
    for name in GRID_MODELS:
        model = grid_model(name)
        rows[name] = {}
        for label, make in INPUTS.items():
            with torch.no_grad():
                rows[name][label] = compare({n: model(make(n)) for n in GRIDS})
        print(name, rows[name], flush=True)
    return rows


LAYERS_ALONE = {
    "DISCO (ours)": "FFT DISCO of LocalNO block 0, r = 1/16, stencil rebuilt per grid",
    "DISCO (neuraloperator, default radius)": "EquidistantDiscreteContinuousConv2d, 3 × 3",
    "DISCO (neuraloperator, r = 1/16)": "EquidistantDiscreteContinuousConv2d, 9 × 9",
    "differential (ours)": "GridDifferentialConv / physical grid width",
    "differential (neuraloperator)": "FiniteDifferenceConvolution / relative grid width",
    "spectral (ours)": "SpectralConv, reference",
}


def layer_study() -> dict:
    """The local layers of block 0 alone, on a 32-channel input (channel c = the input
    times ``0.5 + c / 31``): the mechanism behind the model-level figures."""
    ours = grid_model("LocalNO (ours)")
    nop_default = grid_model("LocalNO (neuraloperator, default radius)")
    nop_wide = grid_model("LocalNO (neuraloperator, r = 1/16)")
    our_disco, our_diff = ours.blocks[0].local

    layers = {
        "DISCO (ours)": our_disco,
        "DISCO (neuraloperator, default radius)": nop_default.local_no_blocks.local_convs[0],
        "DISCO (neuraloperator, r = 1/16)": nop_wide.local_no_blocks.local_convs[0],
        "differential (ours)": our_diff,
        # LocalNOBlocks passes grid_width = default_in_shape / n (a relative width)
        "differential (neuraloperator)": lambda x: nop_default.local_no_blocks.differential[0](
            x, TRAIN / x.shape[-1]),
        "spectral (ours)": lambda x: ours.blocks[0].conv(x),
    }
    scale = torch.linspace(0.5, 1.5, HIDDEN, dtype=torch.float64)[None, :, None, None]
    rows = {}
    for name, layer in layers.items():
        rows[name] = {}
        for label, make in INPUTS.items():
            with torch.no_grad():
                rows[name][label] = compare({n: layer(make(n) * scale) for n in GRIDS})
        print(name, rows[name], flush=True)
    return rows


# ----------------------------------------------------------------------------- 2. sphere

def sphere_input(nlat: int, nlon: int):
    from geo_neuralop.geometry import sphere_grid

    cloud = sphere_grid(nlat, nlon, "equiangular", dtype=torch.float64)
    x, y, z = cloud.pos.T
    f = torch.exp(x) * torch.sin(2 * y) + z**2 + 0.5 * x * y * z
    return f.reshape(1, 1, nlat, nlon), cloud.weights.reshape(nlat, nlon)


def sphere_study(levels) -> dict:
    from geo_neuralop.models import SFNO, LocalSFNO

    rows = {}
    for name, cls in (("LocalSFNO (ours)", LocalSFNO), ("SFNO (ours)", SFNO)):
        torch.manual_seed(0)
        model = _double(cls(1, 1, lmax=16, hidden_channels=HIDDEN, n_layers=LAYERS))
        outs, weights = {}, {}
        start = time.perf_counter()
        for nlat, nlon in levels:
            x, weights[nlat] = sphere_input(nlat, nlon)
            with torch.no_grad():
                outs[nlat] = model(x)
        fine_lat = levels[-1][0]
        rows[name] = {"seconds": time.perf_counter() - start, "vs_finest": {}}
        for nlat, nlon in levels[:-1]:
            step = (fine_lat - 1) // (nlat - 1)
            ref = outs[fine_lat][..., ::step, ::step]
            rows[name]["vs_finest"][f"{nlat}x{nlon}"] = rel_l2(outs[nlat], ref, weights[nlat])
        if len(levels) > 2:  # consecutive levels, for the trend
            (a, _), (b, _) = levels[-3], levels[-2]
            step = (b - 1) // (a - 1)
            rows[name]["coarsest_vs_middle"] = rel_l2(outs[a], outs[b][..., ::step, ::step],
                                                      weights[a])
        print(name, rows[name], flush=True)
    return rows


# ----------------------------------------------------------------------------- 3. meshes

def mesh_field(cloud) -> torch.Tensor:
    x, y = cloud.pos.T
    return (torch.sin(3 * x) * torch.cos(4 * y) + 0.5 * x * y)[:, None]


def mesh_study(meshes, reference) -> dict:
    from geo_neuralop.geometry import jittered_rectangle_mesh
    from geo_neuralop.models import MeshNO

    query = jittered_rectangle_mesh(MESH_QUERY, domain=MESH_DOMAIN, seed=9, dtype=torch.float64)
    w = query.weights[:, None]
    rows = {}
    for processor in ("fno", "local_no"):
        torch.manual_seed(0)
        model = _double(MeshNO(1, 1, latent_shape=(32, 16), hidden_channels=HIDDEN,
                               n_layers=LAYERS, processor=processor))
        ref_mesh = jittered_rectangle_mesh(reference, domain=MESH_DOMAIN, seed=2,
                                           dtype=torch.float64)
        with torch.no_grad():
            ref = model(ref_mesh, mesh_field(ref_mesh), query=query)
            diffs = {}
            for shape in meshes:
                mesh = jittered_rectangle_mesh(shape, domain=MESH_DOMAIN, seed=1,
                                               dtype=torch.float64)
                diffs[f"{shape[0]}x{shape[1]}"] = rel_l2(
                    model(mesh, mesh_field(mesh), query=query), ref, w)
        rows[f"MeshNO ({processor})"] = {"vs_reference": diffs}
        print(processor, diffs, flush=True)
    return rows


# ----------------------------------------------------------------------------- report

def _plain(rows: dict) -> dict:
    """JSON keys: grid sizes as strings."""
    return {name: {label: {kind: {str(n): v for n, v in d.items()} for kind, d in r.items()}
                   for label, r in by_input.items()} for name, by_input in rows.items()}


def _grid_table(rows: dict, notes: dict) -> list[str]:
    head = "| | notes |"
    rule = "|---|---|"
    for label in INPUTS:
        head += f" {label}: 128² vs 64² | {label}: 256² vs 64² | {label}: 128² vs 256² |"
        rule += "---|---|---|"
    out = [head, rule]
    for name, note in notes.items():
        row = f"| {name} | {note} |"
        for label in INPUTS:
            r = rows[name][label]
            row += (f" {fmt(r['vs_train'][GRIDS[1]])} | {fmt(r['vs_train'][GRIDS[2]])} | "
                    f"{fmt(r['vs_finest'][GRIDS[1]])} |")
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="sphere up to 65 x 128, meshes up to 41 x 21 (reference 81 x 41)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    import neuralop

    start = time.perf_counter()
    spheres = SPHERES[:2] if args.quick else SPHERES
    meshes = MESHES[:2] if args.quick else MESHES
    mesh_ref = MESHES[2] if args.quick else MESH_REFERENCE
    grids = grid_study()
    layers = layer_study()
    sphere = sphere_study(spheres)
    mesh = mesh_study(meshes, mesh_ref)
    total = time.perf_counter() - start

    md = ["# Resolution transfer: fixed random weights, one input, several grids", "",
          "Machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()) +
          f"; neuraloperator {neuralop.__version__}. float64, no training, "
          f"{HIDDEN} hidden channels, {LAYERS} blocks. Relative L2 differences of the outputs "
          f"at the shared points (quadrature-weighted). Total {total:.0f} s.", "",
          f"## 1. Periodic unit square, grids {', '.join(f'{n}²' for n in GRIDS)} "
          f"(neuraloperator's LocalNO is built for {TRAIN}²)", "",
          f"Compared at the {TRAIN}² points. Inputs: *smooth* = {INPUT_NOTES['smooth']}; "
          f"*detailed* = {INPUT_NOTES['detailed']}. Columns 'a vs b': relative L2 of the "
          "output on grid a against the output on grid b.", "",
          "### 1a. Whole models", ""]
    md += _grid_table(grids, GRID_MODELS)
    md += ["", "### 1b. The local layers alone (block 0 of the same models, 32-channel input)",
           "", "This isolates what the model-level figures dilute: at random initialization the "
           "spectral and skip paths carry most of a block's output.", ""]
    md += _grid_table(layers, LAYERS_ALONE)
    levels = [f"{a}×{b}" for a, b in spheres]
    md += ["", f"## 2. Sphere, nested equiangular grids {', '.join(levels)}, lmax 16", "",
           "Input: exp(x) sin(2y) + z² + 0.5xyz on the unit sphere; LocalSFNO defaults "
           "(DISCO and differential basis (3, 4), radius π/16). Compared with the coarse "
           f"grid's quadrature weights against the {levels[-1]} output.", "",
           "| model | " + " | ".join(f"{lv} vs {levels[-1]}" for lv in levels[:-1]) +
           (f" | {levels[0]} vs {levels[1]}" if len(levels) > 2 else "") + " | seconds |",
           "|---|" + "---|" * (len(levels) - 1 + (len(levels) > 2)) + "---|"]
    for name, r in sphere.items():
        cells = [fmt(v) for v in r["vs_finest"].values()]
        if "coarsest_vs_middle" in r:
            cells.append(fmt(r["coarsest_vs_middle"]))
        md.append(f"| {name} | " + " | ".join(cells) + f" | {r['seconds']:.1f} |")
    md += ["", "## 3. MeshNO on unrelated jittered triangulations of [0, 2] × [0, 1]", "",
           f"Input sin(3x)cos(4y) + 0.5xy on meshes of {', '.join(f'{a}×{b}' for a, b in meshes)}"
           f" vertices (seed 1); outputs on one {MESH_QUERY[0]}×{MESH_QUERY[1]} query mesh "
           f"(seed 9), compared with its quadrature weights against the output for a "
           f"{mesh_ref[0]}×{mesh_ref[1]} input mesh (seed 2). Latent grid 32 × 16.", "",
           "| model | " + " | ".join(f"{a}×{b}" for a, b in meshes) + " |",
           "|---|" + "---|" * len(meshes)]
    for name, r in mesh.items():
        md.append(f"| {name} | " + " | ".join(fmt(v) for v in r["vs_reference"].values()) + " |")
    md.append("")
    payload = {"machine": machine(), "hidden": HIDDEN, "layers": LAYERS, "seconds": total,
               "grid_models": _plain(grids), "grid_layers": _plain(layers),
               "sphere": sphere, "mesh": mesh}
    write_results("resolution_transfer" + ("_quick" if args.quick else ""), payload,
                  "\n".join(md))


if __name__ == "__main__":
    main()
