"""Rollout animations, truth beside prediction over time: GIF (Pillow) or MP4 (imageio-ffmpeg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.utils import atomic_path
from geo_neuralop.viz.offscreen import configure_offscreen
from geo_neuralop.viz.render import DEFAULT_VIEWS, NAN_COLOR, globe_camera
from geo_neuralop.viz.surfaces import cloud_surface, warn_nan


def _frames_array(values, name: str, n: int) -> np.ndarray:
    arr = values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != n:
        raise ValueError(f"{name} must have shape [T, {n}] (frames, points), got {arr.shape}")
    return arr


def animate_rollout(
    cloud: PointCloud,
    truth,
    prediction,
    path: str | Path,
    field: str = "field",
    fps: int = 6,
    cmap: str | None = None,
    panel_size: tuple[int, int] | None = None,
    times=None,
) -> Path:
    """Animate truth beside prediction over a rollout.

    Parameters
    ----------
    cloud : PointCloud
        Planar mesh or sphere cloud.
    truth, prediction : array, shape [T, N]
    path : str or Path
        ``.gif`` (Pillow) or ``.mp4`` (needs the ``imageio-ffmpeg`` package).
    fps : int
        Frames per second.
    times : sequence of float, optional
        Shown in the title of each frame.

    Returns
    -------
    Path
    """
    import pyvista as pv

    path = Path(path)
    if path.suffix not in (".gif", ".mp4"):
        raise ValueError(f"path must end in .gif or .mp4, got {path.name}")
    if path.suffix == ".mp4":
        try:
            import imageio_ffmpeg
        except ImportError as error:
            raise ImportError("MP4 output needs the imageio-ffmpeg package "
                              "(pip install imageio-ffmpeg); use a .gif path otherwise") from error
    n = cloud.num_nodes
    truth = _frames_array(truth, f"{field} (truth)", n)
    prediction = _frames_array(prediction, f"{field} (prediction)", n)
    if truth.shape != prediction.shape:
        raise ValueError(f"truth {truth.shape} and prediction {prediction.shape} differ")
    warn_nan(truth, f"{field} (truth)", NAN_COLOR)
    warn_nan(prediction, f"{field} (prediction)", NAN_COLOR)
    sphere = cloud.manifold == "sphere"
    cmap = cmap or ("RdBu_r" if sphere else "viridis")
    finite = np.concatenate([truth, prediction])
    finite = finite[np.isfinite(finite)]
    clim = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    surface = cloud_surface(cloud)
    if panel_size is None:
        if sphere:
            panel_size = (400, 400)
        else:
            extent = np.ptp(cloud.pos.detach().cpu().numpy(), axis=0)
            panel_size = (800, int(800 * extent[1] / extent[0]) + 100)
    # even sizes (multiples of 16 for MP4 encoders)
    panel_size = tuple(int(16 * round(s / 16)) for s in panel_size)
    layout = (1, 2) if sphere else (2, 1)
    window = (panel_size[0] * layout[1], panel_size[1] * layout[0])
    plotter = pv.Plotter(shape=layout, window_size=window, off_screen=True, border=False)
    configure_offscreen()
    plotter.set_background("white")
    meshes = []
    for k, (title, values) in enumerate((("truth", truth), ("prediction", prediction))):
        plotter.subplot(*((0, k) if sphere else (k, 0)))
        mesh = surface.copy()
        mesh.point_data["v"] = values[0]
        plotter.add_mesh(mesh, scalars="v", clim=clim, cmap=cmap, nan_color=NAN_COLOR,
                         scalar_bar_args={"title": f"{field} " + " " * k, "color": "black",
                                          "vertical": False, "position_x": 0.2,
                                          "position_y": 0.02, "width": 0.6, "height": 0.08})
        plotter.add_text(title, position="upper_edge", font_size=11, color="black",
                         name=f"title{k}")
        if sphere:
            plotter.camera_position = globe_camera(*DEFAULT_VIEWS[0])
        else:
            plotter.view_xy()
            plotter.enable_parallel_projection()
            plotter.reset_camera(bounds=surface.bounds)
            plotter.camera.zoom(1.3)
        meshes.append(mesh)
    images = []
    for t in range(truth.shape[0]):
        for k, values in enumerate((truth, prediction)):
            meshes[k].point_data["v"] = values[t]
            label = f"{('truth', 'prediction')[k]}  t = {times[t]:.3g}" if times is not None \
                else f"{('truth', 'prediction')[k]}  frame {t}"
            plotter.subplot(*((0, k) if sphere else (k, 0)))
            plotter.add_text(label, position="upper_edge", font_size=11, color="black",
                             name=f"title{k}")
        plotter.render()
        images.append(plotter.screenshot(return_img=True))
    plotter.close()
    with atomic_path(path) as tmp:
        if path.suffix == ".gif":
            from PIL import Image

            frames = [Image.fromarray(img) for img in images]
            frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                           duration=int(1000 / fps), loop=0)
        else:
            height, width = images[0].shape[:2]
            writer = imageio_ffmpeg.write_frames(str(tmp), (width, height), fps=fps,
                                                 macro_block_size=16)
            writer.send(None)
            for img in images:
                writer.send(np.ascontiguousarray(img))
            writer.close()
    return path
