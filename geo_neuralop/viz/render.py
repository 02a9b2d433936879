"""Truth | prediction | error pictures with PyVista, for meshes and for the sphere.

Truth and prediction share one colour range (so they can be compared by eye);
the absolute error has its own range and colour map. NaN values are drawn in a
distinct colour and reported with a warning. Rendering is off-screen when there
is no display (see :mod:`geo_neuralop.viz.offscreen`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.utils import atomic_path
from geo_neuralop.viz.offscreen import configure_offscreen, has_display
from geo_neuralop.viz.surfaces import as_numpy, cloud_surface, warn_nan

NAN_COLOR = "magenta"


def _ranges(truth: np.ndarray, prediction: np.ndarray) -> tuple[tuple, tuple, np.ndarray]:
    both = np.concatenate([truth, prediction])
    finite = both[np.isfinite(both)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    error = np.abs(prediction - truth)
    finite_err = error[np.isfinite(error)]
    emax = float(finite_err.max()) if finite_err.size else 1.0
    return (lo, hi), (0.0, emax if emax > 0 else 1e-12), error


def _plotter(shape: tuple[int, int], window_size: tuple[int, int], off_screen: bool | None):
    import pyvista as pv

    if off_screen is None:
        off_screen = configure_offscreen()
    elif off_screen:
        configure_offscreen()
    plotter = pv.Plotter(shape=shape, window_size=window_size, off_screen=off_screen,
                         border=False)
    plotter.set_background("white")
    return plotter


def _add_panel(plotter, surface, scalars, name, clim, cmap, title, show_edges, bar_title,
               font_size=11, n_labels=5, smooth_shading=False):
    mesh = surface.copy(deep=False)
    mesh.point_data[name] = scalars
    plotter.add_mesh(
        mesh, scalars=name, clim=clim, cmap=cmap, nan_color=NAN_COLOR, show_edges=show_edges,
        edge_color="gray", line_width=0.5, lighting=True, smooth_shading=smooth_shading,
        scalar_bar_args={"title": bar_title, "vertical": False, "position_x": 0.2,
                         "position_y": 0.02, "width": 0.6, "height": 0.08,
                         "color": "black", "title_font_size": font_size + 2,
                         "label_font_size": font_size, "fmt": "%.3g",
                         "n_labels": n_labels},
    )
    plotter.add_text(title, position="upper_edge", font_size=font_size, color="black")
    return mesh


def _finish(plotter, path: Path | None, show: bool) -> Path | None:
    if path is not None:
        path = Path(path)
        with atomic_path(path) as tmp:
            plotter.screenshot(str(tmp))
    if show and has_display():
        plotter.show()
    plotter.close()
    return path


def render_mesh_comparison(
    cloud: PointCloud,
    truth,
    prediction,
    path: str | Path | None,
    field: str = "field",
    show_edges: bool = False,
    cmap: str = "viridis",
    error_cmap: str = "magma",
    layout: str = "auto",
    width: int = 1500,
    off_screen: bool | None = None,
    show: bool = False,
) -> Path | None:
    """Truth, prediction and absolute error of one field on a planar mesh.

    Parameters
    ----------
    cloud : PointCloud
        A planar (2D) cloud; triangles are used if present. The mesh boundary
        (channel walls, the cylinder) is outlined in black.
    truth, prediction : array, shape [N]
    path : str or Path or None
        PNG to write (atomically); None to only show.
    field : str
        Name shown in titles and colour bars.
    show_edges : bool
        Draw the triangle edges.
    layout : {"auto", "row", "column"}
        Panels side by side ("row"), stacked ("column"), or "column" for
        domains more than 1.6 times wider than tall.
    width : int
        Picture width in pixels.

    Returns
    -------
    Path or None
    """
    n = cloud.num_nodes
    truth = as_numpy(truth, f"{field} (truth)", n)
    prediction = as_numpy(prediction, f"{field} (prediction)", n)
    warn_nan(truth, f"{field} (truth)", NAN_COLOR)
    warn_nan(prediction, f"{field} (prediction)", NAN_COLOR)
    if layout not in ("auto", "row", "column"):
        raise ValueError(f"layout must be 'auto', 'row' or 'column', got {layout!r}")
    pos = cloud.pos.detach().cpu().numpy()
    extent = pos.max(0) - pos.min(0)
    aspect = float(extent[0] / extent[1]) if extent.shape[0] > 1 and extent[1] > 0 else 1.0
    if layout == "auto":
        layout = "column" if aspect > 1.6 else "row"
    title_px, bar_px, margin = 40, 90, 0.94
    panel_w = width // 3 if layout == "row" else width
    domain_px = (panel_w * margin, panel_w * margin / aspect)  # the domain's size on screen
    panel_h = int(math.ceil(domain_px[1] / margin)) + title_px + bar_px
    shape = (1, 3) if layout == "row" else (3, 1)
    window = (panel_w * 3, panel_h) if layout == "row" else (panel_w, panel_h * 3)
    world_per_px = float(extent[0]) / domain_px[0]
    centre = (pos.min(0) + pos.max(0)) / 2
    focal = (float(centre[0]), float(centre[1]) - (bar_px - title_px) / 2 * world_per_px, 0.0)
    surface = cloud_surface(cloud)
    outline = surface.extract_feature_edges(boundary_edges=True, feature_edges=False,
                                            manifold_edges=False, non_manifold_edges=False)
    value_range, error_range, error = _ranges(truth, prediction)
    plotter = _plotter(shape, window, off_screen)
    panels = [(truth, "truth", value_range, cmap, f"{field} (truth)"),
              (prediction, "prediction", value_range, cmap, f"{field} (prediction)"),
              (error, "absolute error", error_range, error_cmap, f"abs. error {field}")]
    for k, (values, title, clim, cm, bar) in enumerate(panels):
        plotter.subplot(*((0, k) if layout == "row" else (k, 0)))
        _add_panel(plotter, surface, values, f"panel{k}", clim, cm, title, show_edges, bar)
        if outline.n_points:
            plotter.add_mesh(outline, color="black", line_width=2)
        plotter.enable_parallel_projection()
        plotter.camera.focal_point = focal
        plotter.camera.position = (focal[0], focal[1], focal[2] + 10.0 * float(extent.max()))
        plotter.camera.up = (0.0, 1.0, 0.0)
        plotter.camera.parallel_scale = panel_h / 2 * world_per_px
    return _finish(plotter, path, show)


DEFAULT_VIEWS = ((0.0, 20.0), (180.0, 20.0))


def globe_camera(lon_deg: float, lat_deg: float, distance: float = 4.2):
    lon, lat = math.radians(lon_deg), math.radians(lat_deg)
    direction = (math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat))
    return [tuple(distance * d for d in direction), (0.0, 0.0, 0.0), (0.0, 0.0, 1.0)]


def render_sphere_comparison(
    cloud: PointCloud,
    truth,
    prediction,
    path: str | Path | None,
    field: str = "field",
    views: Sequence[tuple[float, float]] = DEFAULT_VIEWS,
    cmap: str = "RdBu_r",
    error_cmap: str = "magma",
    panel_size: int = 420,
    show_edges: bool = False,
    off_screen: bool | None = None,
    show: bool = False,
) -> Path | None:
    """Truth, prediction and error of one field on globes, one row per view.

    Parameters
    ----------
    cloud : PointCloud
        A sphere cloud: a lat/lon grid (triangulated by its cells), a mesh with
        faces, or scattered points (triangulated by their convex hull).
    truth, prediction : array, shape [N]
    path : str or Path or None
    views : sequence of (longitude, latitude) in degrees
        Directions from which each row looks at the globe (default: two
        opposite hemispheres, slightly from the north).
    panel_size : int
        Pixels per panel side.

    Returns
    -------
    Path or None
    """
    if cloud.manifold != "sphere":
        raise ValueError(f"render_sphere_comparison needs a sphere cloud, got {cloud.manifold!r}")
    n = cloud.num_nodes
    truth = as_numpy(truth, f"{field} (truth)", n)
    prediction = as_numpy(prediction, f"{field} (prediction)", n)
    warn_nan(truth, f"{field} (truth)", NAN_COLOR)
    warn_nan(prediction, f"{field} (prediction)", NAN_COLOR)
    if not views:
        raise ValueError("views must hold at least one (longitude, latitude) pair")
    surface = cloud_surface(cloud)
    value_range, error_range, error = _ranges(truth, prediction)
    rows = len(views)
    plotter = _plotter((rows, 3), (3 * panel_size, rows * panel_size), off_screen)
    panels = [(truth, "truth", value_range, cmap, f"{field} (truth)"),
              (prediction, "prediction", value_range, cmap, f"{field} (prediction)"),
              (error, "absolute error", error_range, error_cmap, f"abs. error {field}")]
    font_size = max(8, min(12, panel_size // 30))
    for r, (lon, lat) in enumerate(views):
        for k, (values, title, clim, cm, bar) in enumerate(panels):
            plotter.subplot(r, k)
            _add_panel(plotter, surface, values, f"panel{r}_{k}", clim, cm, title, show_edges,
                       bar + " " * r,  # pyvista merges colour bars of equal title
                       font_size=font_size, n_labels=3, smooth_shading=True)
            if k == 0 and rows > 1:
                plotter.add_text(f"view {lon:.0f}°E {lat:.0f}°N", position="upper_left",
                                 font_size=font_size - 2, color="gray")
            plotter.camera_position = globe_camera(lon, lat, distance=5.2)
            plotter.camera.focal_point = (0.0, 0.0, -0.12)  # room for the colour bar below
    return _finish(plotter, path, show)


def timed(fn, *args, **kwargs) -> tuple[object, float]:
    """Call ``fn`` and return (result, seconds)."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start
