"""The solvers behind our datasets: flow past a cylinder (P2-P1 finite elements on graded
meshes), shallow water on the rotating sphere (torch-harmonics), Darcy flow and forced 2D
Navier-Stokes (spectral)."""
