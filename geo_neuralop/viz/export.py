"""Time series of fields as files ParaView opens: VTU frames with a PVD collection, or XDMF."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from geo_neuralop.geometry.mesh_conversion import to_mesh
from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.utils import atomic_path


def _frames(cloud: PointCloud, fields: Mapping[str, object]) -> tuple[int, dict]:
    if not fields:
        raise ValueError("fields is empty: give {name: array [T, N] or [T, N, C]}")
    arrays, count = {}, None
    for name, value in fields.items():
        arr = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        if arr.ndim < 2 or arr.shape[1] != cloud.num_nodes:
            raise ValueError(f"field {name!r} has shape {arr.shape}; expected [T, "
                             f"{cloud.num_nodes}, ...] (frames, points, components)")
        if count is not None and arr.shape[0] != count:
            raise ValueError(f"field {name!r} has {arr.shape[0]} frames, others have {count}")
        count = arr.shape[0]
        arrays[name] = arr
    return count, arrays


def write_vtu_series(
    cloud: PointCloud,
    fields: Mapping[str, object],
    directory: str | Path,
    name: str = "frames",
    times: Sequence[float] | None = None,
) -> Path:
    """One VTU file per frame and a ``.pvd`` collection that ParaView opens as a time series.

    Parameters
    ----------
    cloud : PointCloud
        Geometry (its faces are the cells; vertex cells without faces).
    fields : mapping of name -> array [T, N] or [T, N, C]
        e.g. ``{"truth": ..., "prediction": ..., "error": ...}``.
    directory : folder for ``<name>_0000.vtu``... and ``<name>.pvd``
    times : physical times of the frames (default 0, 1, ...)

    Returns
    -------
    Path of the ``.pvd`` file. Each file is written atomically, the collection last.
    """
    count, arrays = _frames(cloud, fields)
    times = list(range(count)) if times is None else [float(t) for t in times]
    if len(times) != count:
        raise ValueError(f"times has {len(times)} entries for {count} frames")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for k in range(count):
        file = f"{name}_{k:04d}.vtu"
        mesh = to_mesh(cloud, {n: a[k] for n, a in arrays.items()})
        with atomic_path(directory / file) as tmp:
            mesh.write(tmp, file_format="vtu")
        entries.append(f'    <DataSet timestep="{times[k]!r}" part="0" file={quoteattr(file)}/>')
    pvd = "\n".join(['<?xml version="1.0"?>',
                     '<VTKFile type="Collection" version="0.1" byte_order="LittleEndian">',
                     "  <Collection>", *entries, "  </Collection>", "</VTKFile>", ""])
    with atomic_path(directory / f"{name}.pvd") as tmp:
        tmp.write_text(pvd)
    return directory / f"{name}.pvd"


def write_xdmf_series(
    cloud: PointCloud,
    fields: Mapping[str, object],
    path: str | Path,
    times: Sequence[float] | None = None,
) -> Path:
    """An XDMF time series (``path``) with its HDF5 data beside it (same stem, ``.h5``).

    Both files are written in a temporary folder next to the target and moved
    into place when complete.
    """
    import meshio

    count, arrays = _frames(cloud, fields)
    times = list(range(count)) if times is None else [float(t) for t in times]
    if len(times) != count:
        raise ValueError(f"times has {len(times)} entries for {count} frames")
    path = Path(path)
    if path.suffix != ".xdmf":
        raise ValueError(f"path must end in .xdmf, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    mesh = to_mesh(cloud, {})
    staging = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", dir=path.parent))
    try:
        cwd = os.getcwd()
        os.chdir(staging)  # meshio names the .h5 file relative to the working folder
        try:
            with meshio.xdmf.TimeSeriesWriter(path.name) as writer:
                writer.write_points_cells(mesh.points, mesh.cells)
                for k in range(count):
                    writer.write_data(times[k], point_data={n: a[k] for n, a in arrays.items()})
        finally:
            os.chdir(cwd)
        os.replace(staging / path.with_suffix(".h5").name, path.with_suffix(".h5"))
        os.replace(staging / path.name, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path
