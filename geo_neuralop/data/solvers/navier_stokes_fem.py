"""Incompressible Navier-Stokes in a channel with a cylinder: P2-P1 Taylor-Hood FEM.

Taylor-Hood elements on the triangle mesh (scikit-fem bases, isoparametric along the
cylinder), parabolic inflow, no-slip walls, do-nothing outlet; the incremental
pressure-correction scheme of Guermond, Minev & Shen (BDF2 by default, Crank-Nicolson
as an option), with the momentum systems solved by GMRES preconditioned with a lagged
SuperLU factorisation, and drag and lift from John's volume-integral method. It
reproduces the DFG 2D-1 and 2D-2 benchmarks. The scheme, its variants and the
measurements behind the choices are in ``docs/design/cylinder_solver.md``.
"""

from __future__ import annotations

import math
import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.linalg import solve_triangular

from geo_neuralop.data.solvers.cylinder_mesh import CylinderMesh

SCHEMES = ("bdf2", "cn")

# Largest allowed Courant number dt * U_max / h_min (h_min: the shortest mesh edge), per
# scheme. Convection is implicit, so these are not CFL limits but guards measured here:
# BDF2 stayed stable at 5.7 but its linear solves slow down and lose accuracy past ~4;
# CN blew up at 2.9 (Re = 100 and 200 on the 2.2k mesh) and ran at 1.4-2.
MAX_COURANT = {"bdf2": 4.0, "cn": 1.5}

# SuperLU supernode settings: small relaxed supernodes and panels factorise these P2
# matrices faster than scipy's defaults (benchmarks/cylinder_solver.py); relax must not
# exceed panel_size, larger relax values corrupted memory in the scipy we tested.
_SUPERLU = {"relax": 1, "panel_size": 4}


class SolverDivergedError(FloatingPointError):
    """The solution became NaN/inf or unbounded; the message names the step."""


def _csr_pattern(rows: np.ndarray, cols: np.ndarray, n: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """CSR sparsity pattern of ``(rows, cols)`` and each entry's position in its data array."""
    keys = rows.astype(np.int64) * n + cols.astype(np.int64)
    unique = np.unique(keys)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.add.at(indptr, (unique // n) + 1, 1)
    indptr = np.cumsum(indptr)
    pattern = sp.csr_matrix((np.zeros(unique.size), (unique % n).astype(np.int32),
                             indptr.astype(np.int32)), shape=(n, n))
    return pattern, np.searchsorted(unique, keys)


def _sub_positions(pattern: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> sp.csr_matrix:
    """The submatrix ``pattern[rows][:, cols]`` whose data are positions in ``pattern.data``."""
    marked = pattern.copy()
    marked.data = np.arange(1, pattern.nnz + 1, dtype=np.float64)
    sub = marked[rows][:, cols].tocsr()
    sub.sort_indices()
    return sub


def gmres_lockstep(
    a: sp.spmatrix,
    precondition,
    b: np.ndarray,
    x0: np.ndarray,
    rtol: float,
    maxiter: int,
) -> tuple[np.ndarray, int, bool]:
    """Right-preconditioned GMRES on several right-hand sides at once (no restarts).

    Each column has its own Krylov space; the columns advance in lockstep so every
    iteration costs one sparse product and one preconditioner solve on the whole block.

    Parameters
    ----------
    a : sparse matrix
        ``[n, n]``.
    precondition : callable
        ``z [n, k] -> P^{-1} z [n, k]``.
    b, x0 : np.ndarray
        ``[n, k]`` right-hand sides and initial guesses.
    rtol : float
        Stop when every column's residual is at most ``rtol * |b_col|``.
    maxiter : int
        Largest Krylov dimension.

    Returns
    -------
    x : np.ndarray
        ``[n, k]`` solutions.
    iterations : int
    converged : bool
    """
    n, k = b.shape
    r = b - a @ x0
    beta = np.linalg.norm(r, axis=0)
    target = rtol * np.linalg.norm(b, axis=0)
    if np.all(beta <= target):
        return x0, 0, True
    basis = np.empty((maxiter + 1, n, k))
    preconditioned = np.empty((maxiter, n, k))  # P^{-1} basis[j]: no extra solve at the end
    basis[0] = r / np.where(beta > 0, beta, 1.0)
    upper = np.zeros((k, maxiter, maxiter))  # R of the QR of the Hessenberg matrix
    cos, sin = np.zeros((k, maxiter)), np.zeros((k, maxiter))
    g = np.zeros((k, maxiter + 1))
    g[:, 0] = beta
    converged = False
    j = 0
    for j in range(maxiter):
        preconditioned[j] = precondition(basis[j])
        w = a @ preconditioned[j]
        h = np.empty((k, j + 2))
        # classical Gram-Schmidt with one re-orthogonalisation (CGS2), all columns at once
        coef = np.einsum("jnk,nk->kj", basis[: j + 1], w)
        w -= np.einsum("jnk,kj->nk", basis[: j + 1], coef)
        again = np.einsum("jnk,nk->kj", basis[: j + 1], w)
        w -= np.einsum("jnk,kj->nk", basis[: j + 1], again)
        h[:, : j + 1] = coef + again
        h[:, j + 1] = np.sqrt(np.einsum("nk,nk->k", w, w))
        basis[j + 1] = w / np.where(h[:, j + 1] > 0, h[:, j + 1], 1.0)
        for i in range(j):  # previous Givens rotations
            top = cos[:, i] * h[:, i] + sin[:, i] * h[:, i + 1]
            h[:, i + 1] = -sin[:, i] * h[:, i] + cos[:, i] * h[:, i + 1]
            h[:, i] = top
        radius = np.hypot(h[:, j], h[:, j + 1])
        safe = np.where(radius > 0, radius, 1.0)
        cos[:, j] = np.where(radius > 0, h[:, j] / safe, 1.0)
        sin[:, j] = np.where(radius > 0, h[:, j + 1] / safe, 0.0)
        h[:, j] = radius
        upper[:, : j + 1, j] = h[:, : j + 1]
        g[:, j + 1] = -sin[:, j] * g[:, j]
        g[:, j] = cos[:, j] * g[:, j]
        if np.all((np.abs(g[:, j + 1]) <= target) | (beta <= target)):
            converged = True
            break
    m = j + 1
    y = np.zeros((k, m))
    for c in range(k):
        if beta[c] > target[c]:
            y[c] = solve_triangular(upper[c, :m, :m], g[c, :m])
    return x0 + np.einsum("jnk,kj->nk", preconditioned[:m], y), m, converged


class NavierStokesSolver:
    """Taylor-Hood (P2-P1) pressure-correction solver for the channel-with-cylinder flow.

    Parameters
    ----------
    mesh : CylinderMesh
        The triangle mesh and its boundaries (see ``cylinder_channel_mesh``).
    nu : float
        Kinematic viscosity (m^2/s), positive.
    u_max : float
        Peak inflow velocity (m/s), positive; the mean inflow is ``2 u_max / 3``.
    dt : float
        Time step (s), positive, with ``dt * u_max / h_min <= MAX_COURANT[scheme]``.
    ramp_time : float
        The inflow grows as ``sin(pi t / (2 ramp_time))`` for ``t < ramp_time``, then stays
        at ``u_max``; 0 switches the full inflow on at once.
    spin_perturbation : float
        Peak tangential speed, as a fraction of ``u_max``, of a short rotation of the
        cylinder (a ``sin^2`` pulse over the first ``ramp_time`` seconds, or 0.2 s if
        ``ramp_time`` is 0) that breaks the flow's symmetry so vortex shedding starts
        sooner. 0 (default): no perturbation.
    tol : float
        Relative residual tolerance of the momentum solves (per velocity component,
        relative to the right-hand side, which is dominated by ``M u / dt``). 1e-5
        changed the DFG 2D-2 peak forces by less than 1e-5 against 1e-6 and saves
        about 15% of the solve time.
    refactor_after : int
        The momentum matrix's LU preconditioner is recomputed at the next step when a
        GMRES solve needed more than this many iterations.
    curved : bool
        Isoparametric (quadratic) elements along the cylinder, whose P2 edge midpoints
        lie on the circle, so the body is not a polygon (a second-order geometry error
        that would otherwise lower the drag by a few tenths of a percent).
    scheme : {"bdf2", "cn"}
        Time discretisation of the momentum step (see the module docstring); BDF2 is
        robust, Crank-Nicolson only for Courant numbers up to ``MAX_COURANT["cn"]``.

    Attributes
    ----------
    t : float
        Current time (s).
    step_count : int
    u : np.ndarray
        ``[n_velocity_dofs, 2]`` P2 velocity coefficients (vertices first, then edge
        midpoints).
    p : np.ndarray
        ``[N]`` P1 pressure at the mesh vertices.
    """

    def __init__(
        self,
        mesh: CylinderMesh,
        nu: float,
        u_max: float,
        dt: float,
        ramp_time: float = 0.0,
        spin_perturbation: float = 0.0,
        tol: float = 1e-5,
        refactor_after: int = 4,
        curved: bool = True,
        scheme: str = "bdf2",
    ) -> None:
        if not isinstance(mesh, CylinderMesh):
            raise TypeError(f"mesh must be a CylinderMesh, got {type(mesh).__name__}")
        for name, value in (("nu", nu), ("u_max", u_max), ("dt", dt)):
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not (isinstance(ramp_time, int | float) and math.isfinite(ramp_time)
                and ramp_time >= 0):
            raise ValueError(f"ramp_time must be a finite number >= 0, got {ramp_time!r}")
        if not (isinstance(spin_perturbation, int | float) and math.isfinite(spin_perturbation)):
            raise ValueError(f"spin_perturbation must be a finite number, got "
                             f"{spin_perturbation!r}")
        if not 0 < tol < 1e-2:
            raise ValueError(f"tol must be in (0, 1e-2), got {tol}")
        if not isinstance(refactor_after, int) or refactor_after < 1:
            raise ValueError(f"refactor_after must be a positive int, got {refactor_after!r}")
        self.mesh = mesh
        self.nu, self.u_max, self.dt = float(nu), float(u_max), float(dt)
        self.ramp_time = float(ramp_time)
        self.spin_perturbation = float(spin_perturbation)
        self.tol = float(tol)
        self.curved = bool(curved)
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        self.scheme = scheme
        edges = np.concatenate([mesh.triangles[:, [0, 1]], mesh.triangles[:, [1, 2]],
                                mesh.triangles[:, [2, 0]]])
        lengths = np.linalg.norm(mesh.points[edges[:, 0]] - mesh.points[edges[:, 1]], axis=1)
        self.h_min = float(lengths.min())
        self.courant = self.dt * self.u_max / self.h_min
        limit = MAX_COURANT[scheme]
        if self.courant > limit:
            raise ValueError(
                f"dt={dt} is too large for this mesh: Courant number dt * u_max / h_min = "
                f"{dt} * {u_max} / {self.h_min:.4g} = {self.courant:.3g} exceeds {limit} "
                f"(scheme {scheme!r}); use dt <= {limit * self.h_min / self.u_max:.4g}"
            )
        start = time.perf_counter()
        self._assemble()
        self.setup_seconds = time.perf_counter() - start
        self.t = 0.0
        self.step_count = 0
        self.u = np.zeros((self.n_u, 2))
        self.u_prev = self.u.copy()
        self.p = np.zeros(self.n_p)
        self._set_dirichlet(self.u, 0.0)
        self.u_prev[:] = self.u
        self.lu_refreshes = 0
        self.krylov_iterations = 0
        self._history: list[np.ndarray] = []  # last u* (free dofs), newest first
        self._w_prev = None  # advecting velocity of the previous step
        self._mode = None  # (mass coefficient, implicit weight) the LU was made for
        self._base_cache: dict[tuple[float, float], np.ndarray] = {}
        self.u_prev2 = self.u.copy()
        self.max_krylov = 30
        self.refactor_after = refactor_after

    # ------------------------------------------------------------------ assembly
    def _assemble(self) -> None:
        from dataclasses import replace

        from skfem import Basis, BilinearForm, ElementTriP1, ElementTriP2, MeshTri, MeshTri2, asm
        from skfem.helpers import dot, grad

        mesh = self.mesh
        sk = MeshTri(np.ascontiguousarray(mesh.points.T), np.ascontiguousarray(mesh.triangles.T))
        self._skmesh = sk
        geometry = sk
        if self.curved:
            # quadratic (isoparametric) geometry: the cylinder's edge midpoints on the circle
            geometry = MeshTri2.from_mesh(sk)
            if not np.array_equal(geometry.facets, sk.facets):
                raise RuntimeError("skfem renumbered the facets of the quadratic mesh")
            cyl = np.unique(self._facets_of(sk, mesh.boundary_edges["cylinder"]))
            mid = sk.p.shape[1] + cyl
            doflocs = geometry.doflocs.copy()
            center = np.asarray(mesh.center)[:, None]
            rel = doflocs[:, mid] - center
            doflocs[:, mid] = center + mesh.radius * rel / np.linalg.norm(rel, axis=0)
            geometry = replace(geometry, doflocs=doflocs)
        bu = Basis(geometry, ElementTriP2(), intorder=5)
        bp = bu.with_element(ElementTriP1())
        self._bu, self._bp = bu, bp
        self.n_u, self.n_p = int(bu.N), int(bp.N)

        @BilinearForm
        def mass(u, v, w):
            return u * v

        @BilinearForm
        def laplace(u, v, w):
            return dot(grad(u), grad(v))

        @BilinearForm
        def div_x(u, q, w):
            return grad(u)[0] * q

        @BilinearForm
        def div_y(u, q, w):
            return grad(u)[1] * q

        self.M = asm(mass, bu).tocsr()
        self.K = asm(laplace, bu).tocsr()
        self.Kp = asm(laplace, bp).tocsr()
        self.Mp = asm(mass, bp).tocsr()
        self.Bx = asm(div_x, bu, bp).tocsr()  # [n_p, n_u]: (d/dx u, q)
        self.By = asm(div_y, bu, bp).tocsr()

        # Boundary dofs of each named boundary (P2: vertices + edge midpoints).
        self.boundary_dofs, self.boundary_facets = {}, {}
        for name, e in mesh.boundary_edges.items():
            facets = self._facets_of(sk, e)
            self.boundary_facets[name] = facets
            self.boundary_dofs[name] = np.unique(np.concatenate(
                [e.reshape(-1), bu.facet_dofs[0, facets]]))
        dirichlet = np.unique(np.concatenate([self.boundary_dofs[n] for n in
                                              ("inlet", "walls", "cylinder")]))
        self.dirichlet = dirichlet
        free = np.setdiff1d(np.arange(self.n_u), dirichlet)
        # Number the free dofs in a fill-reducing order (minimum degree on A + A^T) once,
        # so every later factorisation skips the ordering and no solve permutes vectors.
        probe = (self.M + self.dt * self.nu * self.K)[free][:, free].tocsc()
        perm = spla.splu(probe, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                         options={"SymmetricMode": True}, **_SUPERLU).perm_c
        self.free = free[np.argsort(perm)]
        self.p_dirichlet = np.unique(mesh.boundary_edges["outlet"])
        self.p_free = np.setdiff1d(np.arange(self.n_p), self.p_dirichlet)
        self.doflocs = bu.doflocs.T  # [n_u, 2]
        self.vertex_dofs = bu.nodal_dofs[0]

        # Convection: element arrays for C(w)_ij = (w . grad phi_j, phi_i).
        phi = np.stack([np.asarray(bu.basis[i][0]) for i in range(6)], axis=-1)  # [E, Q, 6]
        dphi = np.stack([bu.basis[i][0].grad for i in range(6)], axis=-1)  # [2, E, Q, 6]
        dx = bu.dx  # [E, Q]
        self._phi = phi[0]  # [Q, 6]: same on every (affine) element
        self._phi_dx = phi * dx[..., None]  # [E, Q, 6]
        self._dphi = dphi
        self._edofs = bu.element_dofs.T  # [E, 6]
        rows = np.repeat(self._edofs, 6, axis=1).reshape(-1)
        cols = np.tile(self._edofs, (1, 6)).reshape(-1)
        pattern, scatter = _csr_pattern(rows, cols, self.n_u)
        self._pattern = pattern
        # The convection matrix's values are linear in w: data = Q @ w.reshape(-1), with
        # Q[pos(i, j), 2 k + c] = sum over elements of (phi_k d_c phi_j, phi_i).
        trilinear = np.einsum("eqi,qk,ceqj->ekcij", self._phi_dx, self._phi, dphi)
        n_elem = self._edofs.shape[0]
        q_rows = np.broadcast_to(scatter.reshape(n_elem, 1, 1, 36), trilinear.shape[:3] + (36,))
        q_cols = np.broadcast_to((2 * self._edofs[:, :, None, None]
                                  + np.arange(2)[None, None, :, None]), q_rows.shape)
        self._convection_map = sp.csr_matrix(
            (trilinear.reshape(-1), (q_rows.reshape(-1), q_cols.reshape(-1))),
            shape=(pattern.nnz, 2 * self.n_u))
        self._mass_data = self._pattern_data(self.M)
        self._stiffness_data = self._pattern_data(self.K)
        # Submatrices of the momentum matrix: CSR objects whose data arrays are refilled
        # every step from the full-pattern values (positions precomputed once).
        self._sub = {}
        for name, cols in (("ii", self.free), ("id", dirichlet), ("if", np.arange(self.n_u))):
            sub = _sub_positions(pattern, self.free, cols)
            self._sub[name] = (sub, sub.data.astype(np.int64) - 1)
        # div of the interleaved velocity u.reshape(-1) -> P1 test functions, and its transpose
        self.B = sp.hstack([self.Bx, self.By]).tocsr()[
            :, np.arange(2 * self.n_u).reshape(2, -1).T.reshape(-1)].tocsr()
        self.BT = self.B.T.tocsr()

        # Factorisations of the constant matrices.
        self._lu_mass = spla.splu(self.M[self.free][:, self.free].tocsc(), permc_spec="NATURAL",
                                  diag_pivot_thresh=0.0, options={"SymmetricMode": True},
                                  **_SUPERLU)
        self._lu_pressure = spla.splu(self.Kp[self.p_free][:, self.p_free].tocsc(),
                                      permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                                      options={"SymmetricMode": True}, **_SUPERLU)
        self._lu_pmass = spla.splu(self.Mp.tocsc(), permc_spec="MMD_AT_PLUS_A",
                                   diag_pivot_thresh=0.0, options={"SymmetricMode": True},
                                   **_SUPERLU)
        self._lu_momentum = None
        self._lu_age = 0
        self._lu_interval = 1

        # Forces: psi = 1 at the cylinder's dofs.
        psi = np.zeros(self.n_u)
        psi[self.boundary_dofs["cylinder"]] = 1.0
        self._psi = psi
        self._m_psi = self.M @ psi
        self._k_psi = self.K @ psi
        self._bx_psi = self.Bx @ psi
        self._by_psi = self.By @ psi
        near = np.isin(self._edofs, self.boundary_dofs["cylinder"]).any(axis=1)
        self._force_elems = np.nonzero(near)[0]
        self.diameter = 2.0 * mesh.radius
        self.u_mean = 2.0 * self.u_max / 3.0

    @staticmethod
    def _facets_of(sk, edges: np.ndarray) -> np.ndarray:
        """skfem facet indices ``[E]`` of vertex pairs ``edges [E, 2]``."""
        f = sk.facets.T
        n = sk.p.shape[1]
        keys = np.minimum(f[:, 0], f[:, 1]) * n + np.maximum(f[:, 0], f[:, 1])
        order = np.argsort(keys)
        wanted = np.minimum(edges[:, 0], edges[:, 1]) * n + np.maximum(edges[:, 0], edges[:, 1])
        pos = np.clip(np.searchsorted(keys[order], wanted), 0, keys.size - 1)
        facets = order[pos]
        if not np.array_equal(keys[facets], wanted):
            raise ValueError("boundary edges that are not edges of the mesh")
        return facets

    def _pattern_data(self, matrix: sp.spmatrix) -> np.ndarray:
        """Values of ``matrix`` (whose pattern is within the P2 pattern) on the P2 pattern."""
        m = sp.csr_matrix(matrix)
        m.sum_duplicates()
        coo = m.tocoo()
        keys = coo.row.astype(np.int64) * self.n_u + coo.col
        p = self._pattern
        prow = np.repeat(np.arange(self.n_u), np.diff(p.indptr))
        pkeys = prow.astype(np.int64) * self.n_u + p.indices
        pos = np.searchsorted(pkeys, keys)
        if np.any(pos >= pkeys.size) or not np.array_equal(pkeys[pos], keys):
            raise RuntimeError("matrix pattern is not within the P2 pattern")
        data = np.zeros(p.nnz)
        np.add.at(data, pos, coo.data)
        return data

    def _convection_elements(self, w: np.ndarray, elems: slice | np.ndarray = slice(None)):
        """Element matrices ``[E, 6, 6]`` of ``(w . grad phi_j, phi_i)`` for P2 ``w [n_u, 2]``."""
        edofs = self._edofs[elems]
        wx, wy = w[edofs, 0], w[edofs, 1]  # [E, 6]
        dx, dy = self._dphi[0][elems], self._dphi[1][elems]  # [E, Q, 6]
        adv = (wx @ self._phi.T)[..., None] * dx + (wy @ self._phi.T)[..., None] * dy
        return np.matmul(self._phi_dx[elems].transpose(0, 2, 1), adv)  # [E, 6(i), 6(j)]

    def convection_matrix(self, w: np.ndarray) -> sp.csr_matrix:
        """``[n_u, n_u]`` CSR convection matrix ``C(w)_ij = (w . grad phi_j, phi_i)``.

        The convective form. (The skew-symmetric variant, which adds ``(div(w) phi_j,
        phi_i) / 2``, made the extrapolated scheme oscillate from step to step near the
        cylinder at Re = 200 here: ``div w`` of the projected, extrapolated velocity is
        not small there.)
        """
        data = self._convection_map @ np.ascontiguousarray(w).reshape(-1)
        return sp.csr_matrix((data, self._pattern.indices, self._pattern.indptr),
                             shape=self._pattern.shape)

    # ------------------------------------------------------------------ boundary data
    def inflow_scale(self, t: float) -> float:
        """Inflow factor in ``[0, 1]`` at time ``t`` (the sine ramp)."""
        if self.ramp_time <= 0 or t >= self.ramp_time:
            return 1.0
        return math.sin(0.5 * math.pi * t / self.ramp_time)

    def _spin(self, t: float) -> float:
        if self.spin_perturbation == 0.0:
            return 0.0
        duration = self.ramp_time if self.ramp_time > 0 else 0.2
        if t >= duration:
            return 0.0
        return self.spin_perturbation * self.u_max * math.sin(math.pi * t / duration) ** 2

    def _set_dirichlet(self, u: np.ndarray, t: float) -> None:
        height = self.mesh.height
        u[self.dirichlet] = 0.0
        inlet = self.boundary_dofs["inlet"]
        y = self.doflocs[inlet, 1]
        u[inlet, 0] = 4.0 * self.u_max * self.inflow_scale(t) * y * (height - y) / height**2
        spin = self._spin(t)
        if spin:
            cyl = self.boundary_dofs["cylinder"]
            cx, cy = self.mesh.center
            rel = self.doflocs[cyl] - np.array([cx, cy])
            rel /= np.linalg.norm(rel, axis=1, keepdims=True)
            u[cyl, 0] = -spin * rel[:, 1]
            u[cyl, 1] = spin * rel[:, 0]

    # ------------------------------------------------------------------ time step
    def _submatrix(self, name: str, data: np.ndarray) -> sp.csr_matrix:
        """The submatrix ``name`` (rows: free dofs) filled with full-pattern values ``data``."""
        matrix, positions = self._sub[name]
        np.take(data, positions, out=matrix.data)
        return matrix

    def _momentum_solve(self, data: np.ndarray, rhs: np.ndarray, guess: np.ndarray,
                        predicted: np.ndarray) -> np.ndarray:
        """Solve ``A_II x = rhs [n_free, 2]`` by GMRES, preconditioned with a lagged LU.

        ``data`` holds the momentum matrix's values on the full pattern; ``predicted`` the
        values extrapolated half a refactorisation interval ahead, which are factorised
        when the preconditioner is refreshed (so it is centred on the steps it serves).
        """
        a = self._submatrix("ii", data)
        if self._lu_momentum is None:
            self._refresh_lu(predicted)
        x, iterations, converged = gmres_lockstep(
            a, self._lu_solve, rhs, guess, rtol=self.tol, maxiter=self.max_krylov)
        if not converged:  # the preconditioner is too stale: refactor and solve again
            self._refresh_lu(data)
            x, iterations, converged = gmres_lockstep(
                a, self._lu_solve, rhs, x, rtol=self.tol, maxiter=self.max_krylov)
            if not converged:
                raise SolverDivergedError(
                    f"momentum solve did not converge at step {self.step_count + 1} "
                    f"(t = {self.t + self.dt:.4g} s) even with a fresh factorisation"
                )
        self.krylov_iterations += iterations
        self._lu_age += 1
        if iterations > self.refactor_after:
            self._lu_momentum = None  # refactor at the next step
            self._lu_interval = self._lu_age
        return x

    def _lu_solve(self, b: np.ndarray) -> np.ndarray:
        return self._lu_momentum.solve(b, trans="T")

    def _refresh_lu(self, data: np.ndarray) -> None:
        """Factorise the momentum matrix A_II (values on the full pattern) for preconditioning.

        SuperLU wants CSC: the CSR arrays of A are the CSC arrays of A^T, so A^T is
        factorised (free dofs already in fill-reducing order) and solved with ``trans="T"``.
        """
        sub, positions = self._sub["ii"]  # (not refilled: it may hold the current matrix)
        at = sp.csc_matrix((data[positions], sub.indices, sub.indptr), shape=sub.shape[::-1])
        self._lu_momentum = spla.splu(at, permc_spec="NATURAL", diag_pivot_thresh=0.01,
                                      options={"SymmetricMode": True}, **_SUPERLU)
        self.lu_refreshes += 1
        self._lu_age = 0

    def _guess(self, u_n: np.ndarray) -> np.ndarray:
        """Initial guess for u*: quadratic extrapolation of the last three u* when known."""
        h = self._history
        if len(h) == 3:
            return 3.0 * h[0] - 3.0 * h[1] + h[2]
        if len(h) == 2:
            return 2.0 * h[0] - h[1]
        return u_n[self.free]

    def step(self) -> None:
        """Advance one time step ``t -> t + dt``.

        Raises
        ------
        SolverDivergedError
            If the velocity or pressure becomes NaN/inf or exceeds 100 ``u_max``.
        """
        dt = self.dt
        t_new = self.t + dt
        u_n, u_old = self.u, self.u_prev
        first = self.step_count == 0
        if self.scheme == "cn":
            # (u* - u^n)/dt + [nu K + C(w)] (u* + u^n)/2 - (p^n, div v) = 0,  w at t^{n+1/2}
            a0, theta, tau = 1.0, 0.5, dt
            w = u_n if first else 1.5 * u_n - 0.5 * u_old
        elif first:  # BDF2 starts with one backward-Euler step
            a0, theta, tau = 1.0, 1.0, dt
            w = u_n
        else:
            # (3 u* - 4 u^n + u^{n-1})/(2 dt) + [nu K + C(w)] u* - (p^n, div v) = 0, w at t^{n+1}
            a0, theta, tau = 1.5, 1.0, 2.0 * dt / 3.0
            w = 2.0 * u_n - u_old
        if (a0, theta) != self._mode:
            self._mode = (a0, theta)
            self._lu_momentum = None
            self._w_prev = None
        key = (a0, theta)
        if key not in self._base_cache:
            self._base_cache[key] = (a0 / dt) * self._mass_data + theta * self.nu * \
                self._stiffness_data
        base = self._base_cache[key]
        conv = self._convection_map @ np.ascontiguousarray(w).reshape(-1)
        a_data = base + theta * conv
        predicted = a_data
        if self._lu_momentum is None and self._w_prev is not None:
            lead = 0.5 * (self._lu_interval - 1)
            w_ahead = w + lead * (w - self._w_prev)
            predicted = base + theta * (
                self._convection_map @ np.ascontiguousarray(w_ahead).reshape(-1))
        self._w_prev = w

        # right-hand side on the free rows, Dirichlet values of u* moved over
        u_star = np.empty_like(u_n)
        self._set_dirichlet(u_star, t_new)
        if self.scheme == "cn":
            explicit = self._submatrix("if", self._mass_data / dt - 0.5 * (
                self.nu * self._stiffness_data + conv))
            rhs_free = explicit @ u_n
        elif first:
            rhs_free = self._submatrix("if", self._mass_data / dt) @ u_n
        else:
            rhs_free = self._submatrix("if", self._mass_data / dt) @ (2.0 * u_n - 0.5 * u_old)
        rhs_free += (self.BT @ self.p).reshape(-1, 2)[self.free]
        rhs_free -= self._submatrix("id", a_data) @ u_star[self.dirichlet]
        if not np.isfinite(rhs_free).all():
            raise SolverDivergedError(
                f"non-finite momentum right-hand side at step {self.step_count + 1} "
                f"(t = {t_new:.4g} s): the state from step {self.step_count} holds NaN or inf"
            )
        u_star[self.free] = self._momentum_solve(a_data, rhs_free, self._guess(u_n), predicted)
        self._history = [u_star[self.free], *self._history[:2]]

        # pressure increment: Kp phi = -(1/tau) (div u*, q), phi = 0 at the outlet
        div = self.B @ u_star.reshape(-1)
        phi = np.zeros(self.n_p)
        phi[self.p_free] = self._lu_pressure.solve(-div[self.p_free] / tau)
        # velocity projection (Dirichlet values kept): M u = M u* - tau (grad phi, v), and
        # (grad phi, v) = -(phi, div v) for the free test functions (phi = 0 at the outlet)
        u_new = u_star.copy()
        g = (self.BT @ phi).reshape(-1, 2)[self.free]
        u_new[self.free] += tau * self._lu_mass.solve(g)
        p_new = self.p + phi

        self.u_prev2 = u_old
        self.u_prev = u_n
        self.u, self.p = u_new, p_new
        self.t = t_new
        self.step_count += 1
        bound = 100.0 * self.u_max
        if not (np.isfinite(u_new).all() and np.isfinite(p_new).all()) or \
                np.abs(u_new).max() > bound:
            raise SolverDivergedError(
                f"solution diverged at step {self.step_count} (t = {t_new:.4g} s): "
                f"max |u| = {np.nanmax(np.abs(u_new)):.3g} (NaN: {bool(np.isnan(u_new).any())}); "
                f"reduce dt (Courant number {self.courant:.3g}) or refine the mesh"
            )

    # ------------------------------------------------------------------ outputs
    def forces(self) -> tuple[float, float]:
        """Drag and lift coefficients ``(C_D, C_L)`` at the current time.

        Volume-integral method with the discrete momentum residual at ``t^{n+1}``
        (see the module docstring). Coefficients use ``Ubar = 2 u_max / 3`` and
        ``D = 2 radius`` (not the ramped inflow).
        """
        if self.scheme == "bdf2" and self.step_count >= 2:
            dudt = (1.5 * self.u - 2.0 * self.u_prev + 0.5 * self.u_prev2) / self.dt
        else:
            dudt = (self.u - self.u_prev) / self.dt
        elems = self._force_elems
        ce = self._convection_elements(self.u, elems)  # [E, 6, 6]
        edofs = self._edofs[elems]
        psi = self._psi[edofs]  # [E, 6]
        conv = np.einsum("ei,eij,ejc->c", psi, ce, self.u[edofs])
        force = -(self._m_psi @ dudt + conv + self.nu * (self._k_psi @ self.u)
                  - np.array([self._bx_psi @ self.p, self._by_psi @ self.p]))
        scale = 2.0 / (self.u_mean**2 * self.diameter)
        return float(scale * force[0]), float(scale * force[1])

    def vertex_velocity(self) -> np.ndarray:
        """``[N, 2]`` velocity at the mesh vertices (m/s)."""
        return self.u[self.vertex_dofs].copy()

    def vertex_pressure(self) -> np.ndarray:
        """``[N]`` kinematic pressure at the mesh vertices (m^2/s^2)."""
        return self.p.copy()

    def boundary_flux(self, name: str) -> float:
        """Outward volume flux ``int u . n ds`` through a named boundary (m^2/s).

        Exact for the P2 velocity (Simpson's rule on each straight edge).
        """
        if name not in self.boundary_facets:
            raise ValueError(f"unknown boundary {name!r}; expected one of "
                             f"{sorted(self.boundary_facets)}")
        facets = self.boundary_facets[name]
        sk = self._skmesh
        a, b = sk.facets[0, facets], sk.facets[1, facets]
        mid = self._bu.facet_dofs[0, facets]
        tangent = sk.p[:, b].T - sk.p[:, a].T  # [F, 2], length included
        normal = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
        # orient outward: away from the triangle that owns the facet
        owner = sk.f2t[0, facets]
        centroid = sk.p[:, sk.t[:, owner]].mean(axis=1).T
        outward = np.sign(np.einsum("fi,fi->f", normal, sk.p[:, a].T - centroid))
        normal *= outward[:, None]
        un = (self.u[a] + 4.0 * self.u[mid] + self.u[b]) / 6.0
        return float(np.einsum("fi,fi->", un, normal))

    def divergence_l2(self) -> float:
        """L2 norm of the P1 projection of ``div u`` (1/s times m), a mass-conservation measure."""
        div = self.B @ self.u.reshape(-1)
        proj = self._lu_pmass.solve(div)
        return float(math.sqrt(max(proj @ (self.Mp @ proj), 0.0)))
