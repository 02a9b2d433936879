"""Point clouds with quadrature weights: grids, meshes and sphere rules, grid descriptions."""

from geo_neuralop.geometry.grid_spec import GridSpec, SphereGridSpec
from geo_neuralop.geometry.grids import grid_spacing, regular_grid
from geo_neuralop.geometry.integration import (
    GridQuadrature,
    PointQuadrature,
    Quadrature,
    SphereQuadrature,
    as_quadrature,
)
from geo_neuralop.geometry.mesh_conversion import from_mesh, to_mesh
from geo_neuralop.geometry.point_cloud import PointCloud
from geo_neuralop.geometry.quadrature import SPHERE_GRIDS, lumped_vertex_weights
from geo_neuralop.geometry.sphere import (
    fibonacci_sphere,
    from_sphere_points,
    icosphere,
    sphere_grid,
)
from geo_neuralop.geometry.triangulation import jittered_rectangle_mesh, perforated_rectangle_mesh

__all__ = [
    "SPHERE_GRIDS",
    "GridQuadrature",
    "GridSpec",
    "PointCloud",
    "PointQuadrature",
    "Quadrature",
    "SphereGridSpec",
    "SphereQuadrature",
    "as_quadrature",
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
