"""``render_predictions``: every picture and file of a prediction file, for the CLI and the demo.

It takes an already loaded prediction (anything with the attributes of
:class:`geo_neuralop.data.Predictions`), so the pictures depend on the data
only through that object. Output names are built from the prediction's field
names after sanitizing them, and every path is checked to stay in the output
folder: a crafted prediction file cannot write elsewhere.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.viz.animation import animate_rollout
from geo_neuralop.viz.export import write_vtu_series, write_xdmf_series
from geo_neuralop.viz.render import render_mesh_comparison, render_sphere_comparison
from geo_neuralop.viz.sphere_map import plot_sphere_maps

__all__ = ["PredictionsLike", "render_predictions", "safe_name"]

ANIMATION_FORMATS = ("gif", "mp4")


class PredictionsLike(Protocol):
    """What :func:`render_predictions` reads (see :class:`geo_neuralop.data.Predictions`)."""

    cloud: PointCloud
    truth: np.ndarray
    prediction: np.ndarray
    field_names: list[str]
    times: np.ndarray

    def field(self, name: str) -> tuple[np.ndarray, np.ndarray]: ...


def safe_name(name: str) -> str:
    """``name`` with every run of characters other than letters, digits, ``_`` and ``-``
    replaced by ``_``, so it can be part of a file name in one folder.

    Examples
    --------
    >>> safe_name("../../etc/passwd"), safe_name("u x"), safe_name("height")
    ('_etc_passwd', 'u_x', 'height')
    """
    return (re.sub(r"[^A-Za-z0-9_-]+", "_", str(name)) or "_")[:120]


def _inside(folder: Path, name: str) -> Path:
    path = (folder / name).resolve()
    if path.parent != folder.resolve():
        raise ValueError(f"output name {name!r} leaves the output folder {folder}")
    return path


def render_predictions(
    predictions: PredictionsLike,
    output_dir: str | Path,
    stem: str,
    field: str | None = None,
    frame: int = -1,
    sphere_map: bool = False,
    animation: str | None = None,
    fps: int = 6,
    vtu: bool = False,
    xdmf: bool = False,
    show_edges: bool = False,
    show: bool = False,
    panel_size: int | None = None,
    width: int | None = None,
    on_written: Callable[[Path, float], None] | None = None,
) -> list[Path]:
    """Draw a prediction: truth, prediction and error of one field, and optional extras.

    Parameters
    ----------
    predictions : Predictions
        A loaded prediction file (:func:`geo_neuralop.data.load_predictions`).
    output_dir : path
        Folder of everything written (created).
    stem : str
        Start of every file name (sanitized).
    field : str, optional
        Field to draw (default the first).
    frame : int
        Frame of the pictures (negative counts from the end).
    sphere_map : bool
        Also Mollweide maps (sphere data only).
    animation : {"gif", "mp4"}, optional
        Also an animation of every frame, at ``fps`` frames per second.
    vtu, xdmf : bool
        Also a VTU + PVD series or an XDMF file of every field (truth, prediction, error).
    show_edges, show, panel_size, width
        Passed to the renderers (``panel_size`` for globes, ``width`` for meshes).
    on_written : callable, optional
        ``on_written(path, seconds)`` after each file.

    Returns
    -------
    list of Path
        The files written (a picture the renderer could not make is left out).

    Raises
    ------
    ValueError
        Unknown field, frame out of range, ``sphere_map`` on planar data, an unknown
        animation format or a non-positive ``fps``.
    """
    names = list(predictions.field_names)
    field = names[0] if field is None else field
    if field not in names:
        raise ValueError(f"unknown field {field!r}; the file has {names}")
    frames = predictions.truth.shape[0]
    if not -frames <= frame < frames:
        raise ValueError(f"frame {frame} is out of range for {frames} frames")
    frame = frame % frames
    sphere = predictions.cloud.manifold == "sphere"
    if sphere_map and not sphere:
        raise ValueError("sphere_map applies to sphere data only")
    if animation is not None and animation not in ANIMATION_FORMATS:
        raise ValueError(f"animation must be one of {ANIMATION_FORMATS}, got {animation!r}")
    if isinstance(fps, bool) or not isinstance(fps, int) or fps <= 0:
        raise ValueError(f"fps must be a positive int, got {fps!r}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = f"{safe_name(stem)}_{safe_name(field)}"
    truth, prediction = predictions.field(field)
    cloud = predictions.cloud
    written: list[Path] = []

    def record(path: Path | None, start: float) -> None:
        if path is None:
            return
        written.append(Path(path))
        if on_written is not None:
            on_written(Path(path), time.perf_counter() - start)

    start = time.perf_counter()
    picture = _inside(out, f"{base}_frame{frame:04d}.png")
    if sphere:
        extra = {} if panel_size is None else {"panel_size": panel_size}
        record(render_sphere_comparison(cloud, truth[frame], prediction[frame], picture,
                                        field=field, show_edges=show_edges, show=show,
                                        **extra), start)
    else:
        extra = {} if width is None else {"width": width}
        record(render_mesh_comparison(cloud, truth[frame], prediction[frame], picture,
                                      field=field, show_edges=show_edges, show=show, **extra),
               start)
    if sphere_map:
        start = time.perf_counter()
        record(plot_sphere_maps(cloud, truth[frame], prediction[frame],
                                _inside(out, f"{base}_map{frame:04d}.png"), field=field), start)
    if animation:
        start = time.perf_counter()
        record(animate_rollout(cloud, truth, prediction, _inside(out, f"{base}.{animation}"),
                               field=field, fps=fps, times=predictions.times), start)
    if vtu or xdmf:
        fields = _series_fields(predictions, names)
        if vtu:
            start = time.perf_counter()
            record(write_vtu_series(cloud, fields, _inside(out, f"{safe_name(stem)}_vtu"),
                                    safe_name(stem), predictions.times), start)
        if xdmf:
            start = time.perf_counter()
            record(write_xdmf_series(cloud, fields, _inside(out, f"{safe_name(stem)}.xdmf"),
                                     predictions.times), start)
    return written


def _series_fields(predictions: PredictionsLike,
                   names: Sequence[str]) -> dict[str, np.ndarray]:
    fields = {}
    for c, name in enumerate(names):
        key = safe_name(name)
        truth, prediction = predictions.truth[:, :, c], predictions.prediction[:, :, c]
        fields[f"{key}_truth"] = truth
        fields[f"{key}_prediction"] = prediction
        fields[f"{key}_error"] = np.abs(prediction - truth)
    return fields
