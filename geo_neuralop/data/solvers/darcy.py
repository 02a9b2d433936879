"""Darcy flow ``-div(a grad u) = f`` on the unit square (the FNO benchmark).

Permeability: a Gaussian random field ``psi ~ N(0, (-laplacian + tau^2 I)^{-alpha})``
with zero Neumann boundary conditions (a cosine series), thresholded to a
piecewise-constant field: ``a = 12`` where ``psi >= 0`` and ``a = 3`` elsewhere
(Li et al., "Fourier Neural Operator", ICLR 2021, with ``alpha = 2, tau = 3``).
Forcing ``f = 1``, ``u = 0`` on the boundary.

Discretization: the five-point finite-volume scheme on the node grid
``x_i = i / (n - 1)`` (``regular_grid(n)`` order: ``field[i, j]`` is the value at
``(x_i, y_j)``), with the harmonic mean of the two nodal permeabilities on each
face (exact flux continuity across a jump that lies between two nodes), and a
sparse direct solve (scipy/SuperLU). Second-order accurate for smooth ``a``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from geo_neuralop.utils.checks import is_int

#: Cosine modes per direction drawn for the permeability field, at every resolution.
PERMEABILITY_MODES = 64


def check_grid_size(n, name: str = "n") -> int:
    """``n`` as an int, checked to be a node count of at least 3 per side (NumPy ints too).

    Two nodes per side are both on the boundary, where ``u = 0``: no unknown is left.
    """
    if not is_int(n) or int(n) < 3:
        raise ValueError(f"{name} must be an int >= 3 (nodes per side, including the two "
                         f"boundary nodes), got {n!r}")
    return int(n)


def check_resolutions(resolution: int, solver_resolution: int) -> None:
    """The stored grid must be every ``k``-th node of the solver grid."""
    if solver_resolution < resolution or (solver_resolution - 1) % (resolution - 1):
        raise ValueError(f"solver_resolution - 1 must be a multiple of resolution - 1 = "
                         f"{resolution - 1} (every k-th solver node is stored), got "
                         f"solver_resolution={solver_resolution}")



def neumann_random_field(
    rng: np.random.Generator, n: int, alpha: float = 2.0, tau: float = 3.0,
    modes: int = PERMEABILITY_MODES,
) -> np.ndarray:
    """A zero-mean Gaussian random field with zero Neumann boundary conditions, ``[n, n]``.

    ``psi(x, y) = sum_{k, l < modes} xi_kl (pi^2 (k^2 + l^2) + tau^2)^(-alpha / 2)
    cos(pi k x) cos(pi l y)`` with ``xi_kl ~ N(0, 1)`` (drawn in a fixed order, so
    one ``rng`` state gives the same field at every resolution) and ``xi_00 = 0``.
    """
    n = check_grid_size(n)
    k = np.arange(modes, dtype=np.float64)
    xi = rng.standard_normal((modes, modes))
    coef = (np.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2) + tau**2) ** (-alpha / 2)
    coef[0, 0] = 0.0
    x = np.linspace(0.0, 1.0, n)
    basis = np.cos(np.pi * np.outer(k, x))  # [modes, n]
    return basis.T @ (xi * coef) @ basis


def threshold_permeability(psi: np.ndarray, high: float = 12.0, low: float = 3.0) -> np.ndarray:
    """``high`` where ``psi >= 0``, ``low`` elsewhere."""
    return np.where(psi >= 0.0, high, low)


def _face_coefficients(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic means on x-faces ``[n-1, n]`` and y-faces ``[n, n-1]``."""
    ax = 2.0 * a[1:, :] * a[:-1, :] / (a[1:, :] + a[:-1, :])
    ay = 2.0 * a[:, 1:] * a[:, :-1] / (a[:, 1:] + a[:, :-1])
    return ax, ay


def solve_darcy(
    a: np.ndarray,
    f: np.ndarray | float = 1.0,
    boundary: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Solve ``-div(a grad u) = f`` on the unit square with Dirichlet data.

    Parameters
    ----------
    a : np.ndarray, shape [n, n]
        Permeability at the nodes ``(i / (n - 1), j / (n - 1))``; positive and finite.
    f : np.ndarray [n, n] or float
        Source at the nodes (interior values are used).
    boundary : np.ndarray [n, n] or float
        Dirichlet values (only the boundary rows and columns are used).

    Returns
    -------
    np.ndarray, shape [n, n]
        ``u`` at the nodes, equal to ``boundary`` on the boundary.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(0, 1, 9)
    >>> u = solve_darcy(np.ones((9, 9)), 0.0, boundary=np.add.outer(x, 2 * x))
    >>> bool(np.allclose(u, np.add.outer(x, 2 * x)))  # linear functions are exact
    True
    """
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"a must be a square [n, n] array, got shape {a.shape}")
    n = check_grid_size(a.shape[0], "a.shape[0]")
    bad = ~(np.isfinite(a) & (a > 0))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"a must be positive and finite; a[{i}, {j}] = {a[i, j]}")
    f = np.broadcast_to(np.asarray(f, dtype=np.float64), (n, n))
    g = np.array(np.broadcast_to(np.asarray(boundary, dtype=np.float64), (n, n)))
    h2 = (1.0 / (n - 1)) ** 2
    ax, ay = _face_coefficients(a)
    m = n - 2
    idx = np.arange(m * m).reshape(m, m)
    # interior node (i, j) <-> index idx[i - 1, j - 1]
    east, west = ax[1:, 1:-1], ax[:-1, 1:-1]  # faces (i + 1/2, j) and (i - 1/2, j): [m, m]
    north, south = ay[1:-1, 1:], ay[1:-1, :-1]
    diag = (east + west + north + south) / h2
    rows, cols, vals = [idx.ravel()], [idx.ravel()], [diag.ravel()]
    rhs = f[1:-1, 1:-1].copy()
    for coef, di, dj in ((east, 1, 0), (west, -1, 0), (north, 0, 1), (south, 0, -1)):
        ii, jj = np.meshgrid(np.arange(1, n - 1) + di, np.arange(1, n - 1) + dj, indexing="ij")
        inner = (ii >= 1) & (ii <= n - 2) & (jj >= 1) & (jj <= n - 2)
        rows.append(idx[inner])
        cols.append(idx[ii[inner] - 1, jj[inner] - 1])
        vals.append(-coef[inner] / h2)
        rhs[~inner] += coef[~inner] / h2 * g[ii[~inner], jj[~inner]]
    matrix = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m * m, m * m))
    u = g.copy()
    u[1:-1, 1:-1] = spla.spsolve(matrix.tocsc(), rhs.ravel()).reshape(m, m)
    return u


@dataclass
class DarcySample:
    """One Darcy problem: ``permeability`` and ``pressure`` (the solution u), each ``[n, n]``."""

    permeability: np.ndarray
    pressure: np.ndarray
    params: dict = field(default_factory=dict)


def darcy_sample(
    rng: np.random.Generator,
    resolution: int = 64,
    solver_resolution: int | None = None,
    alpha: float = 2.0,
    tau: float = 3.0,
    high: float = 12.0,
    low: float = 3.0,
    forcing: float = 1.0,
) -> DarcySample:
    """One seeded FNO-style Darcy sample on a ``resolution x resolution`` node grid.

    The problem is solved on ``solver_resolution`` nodes per side (default
    ``resolution``; ``solver_resolution - 1`` must be a multiple of
    ``resolution - 1``) and every ``k``-th node stored.
    """
    resolution = check_grid_size(resolution, "resolution")
    solver_resolution = resolution if solver_resolution is None else solver_resolution
    solver_resolution = check_grid_size(solver_resolution, "solver_resolution")
    check_resolutions(resolution, solver_resolution)
    for name, value in (("high", high), ("low", low)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} permeability must be positive, got {value!r}")
    psi = neumann_random_field(rng, solver_resolution, alpha, tau)
    a = threshold_permeability(psi, high, low)
    u = solve_darcy(a, forcing, 0.0)
    k = (solver_resolution - 1) // (resolution - 1)
    return DarcySample(a[::k, ::k].copy(), u[::k, ::k].copy(),
                       {"high_fraction": float((a[::k, ::k] == high).mean())})
