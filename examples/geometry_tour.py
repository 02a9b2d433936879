"""A tour of geo_neuralop's point clouds: quadrature on grids, meshes and spheres, batching.

Run: ``.venv/bin/python examples/geometry_tour.py``
"""

import math

import torch
from torch_geometric.data import Batch

from geo_neuralop.geometry import (
    fibonacci_sphere,
    icosphere,
    jittered_rectangle_mesh,
    regular_grid,
    sphere_grid,
    to_mesh,
)

torch.set_default_dtype(torch.float64)

# A 64x64 grid of the unit square and an irregular triangle mesh of the same square.
grid = regular_grid((64, 64))
mesh = jittered_rectangle_mesh((64, 64), jitter=0.3, seed=0)
for name, cloud in [("grid", grid), ("mesh", mesh)]:
    x, y = cloud.pos.T
    value = cloud.integrate(torch.sin(math.pi * x) * torch.sin(math.pi * y))
    print(f"{name}: int sin(pi x) sin(pi y) = {value:.6f} (exact {4 / math.pi**2:.6f})")

# Four quadrature rules on the unit sphere; weights are solid angles summing to 4 pi.
for name, cloud in [
    ("equiangular 32x64", sphere_grid(32, 64, "equiangular")),
    ("legendre-gauss 32x64", sphere_grid(32, 64, "legendre-gauss")),
    ("icosphere(4)", icosphere(4)),
    ("fibonacci(3000)", fibonacci_sphere(3000)),
]:
    value = cloud.integrate(torch.exp(cloud.pos[:, 2]))
    print(f"{name:>22}: {cloud.num_nodes:6d} points, int exp(z) = {value:.8f} "
          f"(exact {4 * math.pi * math.sinh(1):.8f})")

# Clouds of different sizes batch with PyG; faces are offset per sample.
batch = Batch.from_data_list([mesh, jittered_rectangle_mesh((20, 30), seed=1)])
print(batch)
print("per-sample areas:", torch.zeros(2).index_add_(0, batch.batch, batch.weights).tolist())

# Any cloud with fields exports to meshio / trimesh / pyvista (VTU for ParaView).
mesh.temperature = torch.exp(-10 * ((mesh.pos - 0.5) ** 2).sum(1))
print(to_mesh(mesh))
