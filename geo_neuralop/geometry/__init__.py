"""Point clouds with quadrature weights: grids, meshes and sphere rules."""

from geo_neuralop.geometry.grids import grid_spacing, regular_grid
from geo_neuralop.geometry.mesh_conversion import from_mesh, lumped_vertex_weights, to_mesh
from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.geometry.sphere import (
    fibonacci_sphere,
    from_sphere_points,
    icosphere,
    sphere_grid,
)
from geo_neuralop.geometry.triangulation import jittered_rectangle_mesh, perforated_rectangle_mesh

__all__ = [
    "PointCloud",
    "fibonacci_sphere",
    "from_mesh",
    "from_sphere_points",
    "grid_spacing",
    "icosphere",
    "jittered_rectangle_mesh",
    "lumped_vertex_weights",
    "perforated_rectangle_mesh",
    "regular_grid",
    "sphere_grid",
    "to_mesh",
]
