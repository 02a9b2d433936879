"""Graded unstructured triangle meshes of a channel with a circular cylinder (the DFG geometry).

The mesh is made by Shewchuk's Triangle (the ``triangle`` package): the boundary
is discretised first, with vertex spacing given by a mesh-size function, then the
interior is filled with quality triangles (minimum angle 30 degrees) and refined
until every triangle is no larger than the size function allows. The size
function is small on the cylinder, grows linearly with the distance from it, is
bounded in a wake strip behind the cylinder, and is largest in the far field; a
single scale factor is found by a secant search so that the mesh has about
``target_vertices`` vertices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

BOUNDARY_NAMES = ("inlet", "outlet", "walls", "cylinder")

# Mesh-size function in units of the cylinder diameter D (before the global scale):
# (chosen so that the default 2.2k-vertex mesh reproduces the DFG 2D-2 forces: about 78
# vertices on the cylinder; coarser cylinder resolutions overestimated the peak lift)
_H_CYLINDER = 0.03  # size on the cylinder surface
_GROWTH = 0.3  # size increase per unit distance from the cylinder surface
_H_WAKE = 0.2  # bound inside the wake strip
_WAKE_WIDTH = 1.0  # half-width of the wake strip
_WAKE_GROWTH = 0.1  # growth of the wake bound with the distance from the strip
_H_FAR = 0.45  # far-field size
_MIN_ANGLE = 30.0  # Triangle's minimum angle (degrees)


@dataclass
class CylinderMesh:
    """A triangle mesh of the channel ``[0, length] x [0, height]`` minus a disc.

    Attributes
    ----------
    points : np.ndarray
        ``[N, 2]`` float64 vertex coordinates (physical units).
    triangles : np.ndarray
        ``[T, 3]`` int64 vertex indices, counter-clockwise.
    boundary_edges : dict of str to np.ndarray
        ``name -> [E, 2]`` int64 vertex pairs of the boundary edges, for the names
        ``"inlet"`` (x = 0), ``"outlet"`` (x = length), ``"walls"`` (y = 0 and
        y = height) and ``"cylinder"``.
    center : (float, float)
    radius : float
    length : float
    height : float
    params : dict
        The arguments that made the mesh and the size scale found (plain values).
    """

    points: np.ndarray
    triangles: np.ndarray
    boundary_edges: dict[str, np.ndarray]
    center: tuple[float, float]
    radius: float
    length: float
    height: float
    params: dict = field(default_factory=dict)

    @property
    def n_vertices(self) -> int:
        return int(self.points.shape[0])

    def boundary_vertices(self, name: str) -> np.ndarray:
        """Sorted vertex indices ``[B]`` of a named boundary (corners belong to both sides)."""
        if name not in self.boundary_edges:
            raise ValueError(f"unknown boundary {name!r}; expected one of {BOUNDARY_NAMES}")
        return np.unique(self.boundary_edges[name])

    def vertex_markers(self) -> np.ndarray:
        """``[N]`` int64: 0 interior, 1 inlet, 2 outlet, 3 walls, 4 cylinder.

        A corner shared by a wall and the inlet or outlet is marked as a wall.
        """
        markers = np.zeros(self.n_vertices, dtype=np.int64)
        for code, name in ((1, "inlet"), (2, "outlet"), (3, "walls"), (4, "cylinder")):
            markers[self.boundary_vertices(name)] = code
        return markers

    def size_function(self, xy: np.ndarray) -> np.ndarray:
        """The target edge length ``[M]`` at points ``xy [M, 2]`` (physical units)."""
        return _size(xy, self.center, self.radius, self.params["size_scale"])


def _check_geometry(center, radius, length, height, min_gap) -> tuple[float, float]:
    try:
        cx, cy = (float(c) for c in center)
    except (TypeError, ValueError) as error:
        raise TypeError(f"center must be a pair of numbers, got {center!r}") from error
    for name, value in (("radius", radius), ("length", length), ("height", height)):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise TypeError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be positive and finite, got {value}")
    if not all(math.isfinite(c) for c in (cx, cy)):
        raise ValueError(f"center must be finite, got {center!r}")
    gap = min_gap * radius
    if cy - radius < gap or cy + radius > height - gap:
        raise ValueError(
            f"cylinder (center y = {cy}, radius = {radius}) must keep a gap of at least "
            f"{gap:.4g} ({min_gap} radii) to the walls y = 0 and y = {height}"
        )
    if cx - radius < gap or cx + radius > length - gap:
        raise ValueError(
            f"cylinder (center x = {cx}, radius = {radius}) must keep a gap of at least "
            f"{gap:.4g} ({min_gap} radii) to the inlet x = 0 and the outlet x = {length}"
        )
    return cx, cy


def _size(xy: np.ndarray, center, radius: float, scale: float) -> np.ndarray:
    """Target edge length at ``xy [M, 2]``: graded towards the cylinder and its wake."""
    d = 2.0 * radius
    cx, cy = center
    dist = np.maximum(np.hypot(xy[:, 0] - cx, xy[:, 1] - cy) - radius, 0.0)
    h = _H_CYLINDER * d + _GROWTH * dist
    # wake strip behind the cylinder: |y - cy| < width, x > cx
    dx = np.maximum(cx - xy[:, 0], 0.0)
    dy = np.maximum(np.abs(xy[:, 1] - cy) - _WAKE_WIDTH * d, 0.0)
    wake = _H_WAKE * d + _WAKE_GROWTH * np.hypot(dx, dy)
    h = np.minimum(np.minimum(h, wake), _H_FAR * d)
    return scale * h


def _edge_points(a: np.ndarray, b: np.ndarray, size, rng: np.random.Generator) -> np.ndarray:
    """Points on the segment ``a -> b`` (``a`` included, ``b`` excluded) spaced by ``size``.

    The spacing follows the size function (integrated along the segment); the
    seed shifts the interior points by up to a quarter of a spacing.
    """
    length = float(np.linalg.norm(b - a))
    s = np.linspace(0.0, 1.0, 401)
    xy = a[None] + s[:, None] * (b - a)[None]
    density = 1.0 / size(xy)
    cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]))])
    cumulative *= length / 400.0
    n = max(2, int(math.ceil(cumulative[-1])))
    targets = (np.arange(n) + np.r_[0.0, rng.uniform(-0.25, 0.25, n - 1)]) / n * cumulative[-1]
    t = np.interp(targets, cumulative, s)
    return a[None] + t[:, None] * (b - a)[None]


def _triangulate(center, radius, length, height, scale, rng_seed, lower_half, min_angle):
    """One graded mesh at a given size scale: (points, triangles, edges by name)."""
    import triangle

    rng = np.random.default_rng(rng_seed)
    cx, cy = center

    def size(xy):
        return _size(xy, center, radius, scale)

    ytop = cy if lower_half else height
    corners = [np.array(c, dtype=np.float64) for c in
               ((0.0, 0.0), (length, 0.0), (length, ytop), (0.0, ytop))]
    sides = []  # (points of the side, name); each side runs a -> b with a included
    names = ("walls", "outlet", "symmetry" if lower_half else "walls", "inlet")
    if lower_half:
        # bottom wall, outlet, symmetry line (outlet -> cylinder, cylinder -> inlet), inlet
        sides.append((_edge_points(corners[0], corners[1], size, rng), "walls"))
        sides.append((_edge_points(corners[1], corners[2], size, rng), "outlet"))
        sides.append((_edge_points(corners[2], np.array([cx + radius, cy]), size, rng),
                      "symmetry"))
        h_cyl = float(size(np.array([[cx + radius, cy]]))[0])
        m = max(4, int(math.ceil(math.pi * radius / h_cyl)))
        angle = -np.pi * np.arange(m) / m  # from angle 0 clockwise to angle -pi (excluded)
        sides.append((np.stack([cx + radius * np.cos(angle), cy + radius * np.sin(angle)], 1),
                      "cylinder"))
        sides.append((_edge_points(np.array([cx - radius, cy]), corners[3], size, rng),
                      "symmetry"))
        sides.append((_edge_points(corners[3], corners[0], size, rng), "inlet"))
        outer = sides
        circle = None
    else:
        for i in range(4):
            sides.append((_edge_points(corners[i], corners[(i + 1) % 4], size, rng), names[i]))
        outer = sides
        h_cyl = float(size(np.array([[cx + radius, cy]]))[0])
        m = max(8, int(math.ceil(2 * math.pi * radius / h_cyl)))
        phase = rng.uniform(0.0, 2 * math.pi / m)
        angle = phase + 2 * math.pi * np.arange(m) / m
        circle = np.stack([cx + radius * np.cos(angle), cy + radius * np.sin(angle)], 1)

    vertices, segments, seg_names = [], [], []
    offset = 0
    loop = np.concatenate([p for p, _ in outer])
    n_loop = loop.shape[0]
    for pts, name in outer:
        for k in range(pts.shape[0]):
            i = offset + k
            segments.append((i, (i + 1) % n_loop))
            seg_names.append(name)
        offset += pts.shape[0]
    vertices.append(loop)
    holes = []
    if circle is not None:
        idx = n_loop + np.arange(circle.shape[0])
        segments += list(zip(idx.tolist(), np.roll(idx, -1).tolist(), strict=True))
        seg_names += ["cylinder"] * circle.shape[0]
        vertices.append(circle)
        holes.append((cx, cy))
    vertices = np.concatenate(vertices)
    n_boundary = vertices.shape[0]
    segments = np.asarray(segments, dtype=np.int32)

    pslg = {"vertices": vertices, "segments": segments}
    if holes:
        pslg["holes"] = np.asarray(holes)
    area0 = float(np.sqrt(3.0) / 4.0 * size(vertices).max() ** 2)
    opts = f"pq{min_angle:g}YQ"
    mesh = triangle.triangulate(pslg, opts + f"a{area0:.12g}")
    for _ in range(30):
        pts, tri = mesh["vertices"], mesh["triangles"]
        h = size(pts[tri].mean(axis=1))
        target = np.sqrt(3.0) / 4.0 * h**2
        area = _areas(pts, tri)
        if np.all(area <= 1.2 * target):
            break
        mesh = triangle.triangulate(
            {"vertices": pts, "segments": segments, "triangles": tri,
             "triangle_max_area": target, **({"holes": pslg["holes"]} if holes else {})},
            opts + "ra",
        )
    points = np.asarray(mesh["vertices"], dtype=np.float64)
    tri = np.asarray(mesh["triangles"], dtype=np.int64)
    if not np.array_equal(points[:n_boundary], vertices):
        raise RuntimeError("Triangle moved boundary vertices; cannot recover boundary markers")
    edges = {name: segments[np.array([s == name for s in seg_names])].astype(np.int64)
             for name in set(seg_names)}
    return points, tri, edges


def _areas(points: np.ndarray, tri: np.ndarray) -> np.ndarray:
    a, b, c = points[tri[:, 0]], points[tri[:, 1]], points[tri[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1])
                  - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def _mirror(points, tri, edges, cy):
    """Reflect a lower-half mesh across ``y = cy``, sharing the vertices on the line."""
    on_line = np.unique(edges.pop("symmetry"))
    n = points.shape[0]
    off = np.setdiff1d(np.arange(n), on_line)
    new_index = np.arange(n)
    new_index[off] = n + np.arange(off.size)
    mirrored = points[off].copy()
    mirrored[:, 1] = 2.0 * cy - mirrored[:, 1]
    points = np.concatenate([points, mirrored])
    tri2 = new_index[tri][:, [0, 2, 1]]  # reflection flips orientation
    out_edges = {name: np.concatenate([e, new_index[e]]) for name, e in edges.items()}
    return points, np.concatenate([tri, tri2]), out_edges


def cylinder_channel_mesh(
    center: tuple[float, float] = (0.2, 0.2),
    radius: float = 0.05,
    length: float = 2.2,
    height: float = 0.41,
    target_vertices: int = 2200,
    seed: int = 0,
    mirror_symmetric: bool = False,
    min_gap: float = 0.5,
    tolerance: float = 0.05,
) -> CylinderMesh:
    """A triangle mesh of the channel ``[0, length] x [0, height]`` minus a disc, graded.

    Parameters
    ----------
    center : (float, float)
        Cylinder centre (physical units). Default: the DFG benchmark's (0.2, 0.2).
    radius : float
        Cylinder radius, positive (DFG: 0.05).
    length, height : float
        Channel size (DFG: 2.2 x 0.41).
    target_vertices : int
        Wanted number of vertices; the mesh has it within ``tolerance`` (relative),
        at least 200.
    seed : int
        Seed of the boundary discretisation: the angular phase of the cylinder's
        vertices and small shifts of the channel-side vertices. Different seeds give
        different meshes of the same domain; a seed always gives the same mesh.
    mirror_symmetric : bool
        Mesh the half below ``y = center[1]`` and reflect it, so the mesh is exactly
        symmetric (needs ``center[1] == height / 2``). Used to test symmetric flows.
    min_gap : float
        Smallest allowed distance from the cylinder to any side, in radii.
    tolerance : float
        Relative tolerance on the vertex count, in ``(0, 0.5)``.

    Returns
    -------
    CylinderMesh
        ``points [N, 2]`` float64, ``triangles [T, 3]`` int64 and the boundary edges
        ``"inlet"``, ``"outlet"``, ``"walls"``, ``"cylinder"``.
    """
    if not isinstance(target_vertices, int | np.integer) or isinstance(target_vertices, bool):
        raise TypeError(f"target_vertices must be an int, got {target_vertices!r}")
    if target_vertices < 200:
        raise ValueError(f"target_vertices must be at least 200, got {target_vertices}")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if not 0.0 < tolerance < 0.5:
        raise ValueError(f"tolerance must be in (0, 0.5), got {tolerance}")
    if not min_gap > 0:
        raise ValueError(f"min_gap must be positive, got {min_gap}")
    cx, cy = _check_geometry(center, radius, length, height, min_gap)
    if mirror_symmetric and not math.isclose(cy, height / 2.0, rel_tol=1e-12, abs_tol=1e-14):
        raise ValueError(
            f"mirror_symmetric needs the cylinder on the mid-line y = {height / 2}, got center "
            f"y = {cy}"
        )

    def build(scale):
        pts, tri, edges = _triangulate((cx, cy), float(radius), float(length), float(height),
                                       scale, int(seed), mirror_symmetric, _MIN_ANGLE)
        if mirror_symmetric:
            pts, tri, edges = _mirror(pts, tri, edges, cy)
        return pts, tri, edges

    # Secant search on log(count) = a - 2 log(scale) (about: count ~ scale^-2).
    d = 2.0 * float(radius)
    area = length * height - math.pi * radius**2
    scale = math.sqrt(area / (0.5 * target_vertices * (0.25 * d) ** 2))
    best = None
    history = []
    for _ in range(12):
        pts, tri, edges = build(scale)
        n = pts.shape[0]
        history.append((scale, n))
        if best is None or abs(n - target_vertices) < abs(best[0].shape[0] - target_vertices):
            best = (pts, tri, edges, scale)
        if abs(n - target_vertices) <= tolerance * target_vertices:
            break
        if len(history) >= 2 and history[-1][1] != history[-2][1]:
            (s0, n0), (s1, n1) = history[-2], history[-1]
            slope = (math.log(n1) - math.log(n0)) / (math.log(s1) - math.log(s0))
            slope = min(max(slope, -3.0), -1.0)
        else:
            slope = -2.0
        scale = scale * math.exp((math.log(target_vertices) - math.log(n)) / slope)
    pts, tri, edges, scale = best
    if abs(pts.shape[0] - target_vertices) > tolerance * target_vertices:
        raise RuntimeError(
            f"could not reach target_vertices={target_vertices} within {tolerance:.0%}: "
            f"tried (scale, vertices) = {history}"
        )
    params = {"center": [cx, cy], "radius": float(radius), "length": float(length),
              "height": float(height), "target_vertices": int(target_vertices),
              "seed": int(seed), "mirror_symmetric": bool(mirror_symmetric),
              "min_gap": float(min_gap), "size_scale": float(scale)}
    return CylinderMesh(points=pts, triangles=tri, boundary_edges=edges, center=(cx, cy),
                        radius=float(radius), length=float(length), height=float(height),
                        params=params)
