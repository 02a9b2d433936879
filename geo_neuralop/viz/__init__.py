"""Pictures, animations and ParaView files of fields on meshes and spheres.

Rendering uses PyVista off-screen when there is no display (EGL through the vtk
wheel); :func:`rendering_available` checks that it works without risking a crash.
"""

from geo_neuralop.viz.animation import animate_rollout
from geo_neuralop.viz.export import write_vtu_series, write_xdmf_series
from geo_neuralop.viz.offscreen import configure_offscreen, rendering_available
from geo_neuralop.viz.plots import plot_error_vs_horizon, plot_training_curves, read_metrics
from geo_neuralop.viz.prediction_pictures import render_predictions
from geo_neuralop.viz.render import render_mesh_comparison, render_sphere_comparison
from geo_neuralop.viz.sphere_map import plot_sphere_maps

__all__ = [
    "animate_rollout",
    "configure_offscreen",
    "plot_error_vs_horizon",
    "plot_sphere_maps",
    "plot_training_curves",
    "read_metrics",
    "render_mesh_comparison",
    "render_predictions",
    "render_sphere_comparison",
    "rendering_available",
    "write_vtu_series",
    "write_xdmf_series",
]
