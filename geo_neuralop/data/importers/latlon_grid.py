"""Latitude-longitude grids of other tools: which quadrature rule their coordinates follow.

Climate files store a global grid as two 1-D coordinates in degrees, in any order and
longitude convention. :func:`detect_latlon_grid` recognizes the rule from the values
alone (never from metadata, which is often missing or wrong):

- ``equiangular``: latitudes ``90 - 180 k / (n - 1)``, both poles; Clenshaw-Curtis
  weights in ``cos(colatitude)``.
- ``legendre-gauss``: ``asin`` of the Gauss-Legendre nodes; Gauss-Legendre weights.
- ``fejer-second``: ``90 - 180 k / (n + 1)``, ``k = 1 .. n`` (equiangular with the pole
  rows left out); Fejer's second rule (the Clenshaw-Curtis nodes less the ends).
- ``fejer-first``: ``90 - 180 (k + 1/2) / n`` (rows half a spacing from the poles);
  Fejer's first rule.

Each rule with ``n`` rows integrates polynomials in ``cos(colatitude)`` of degree below
``n`` exactly (Gauss-Legendre: below ``2 n``). The first two are the sphere grids of
:class:`~geo_neuralop.geometry.SphereGridSpec` (and of torch-harmonics), which the
sphere models take; the Fejer grids import as sphere point clouds with their exact
weights. Longitudes must be ``nlon`` equal steps around the whole circle. The canonical
order of the samples is torch-harmonics': latitudes north to south, longitudes
increasing from the first one in ``[0, 360)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from geo_neuralop.geometry.quadrature import (
    SPHERE_GRIDS,
    clenshaw_curtis,
    fejer_first,
    fejer_second,
)

__all__ = ["LATITUDE_RULES", "LatLonGrid", "detect_latlon_grid", "latitude_rule", "points_latlon"]

#: Latitude rules that :func:`detect_latlon_grid` recognizes.
LATITUDE_RULES = ("equiangular", "legendre-gauss", "fejer-second", "fejer-first")


def latitude_rule(rule: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes (degrees, north to south) and weights in ``cos(colatitude)`` (sum 2).

    Parameters
    ----------
    rule : one of :data:`LATITUDE_RULES`
    n : int
        Number of rows.
    """
    if rule == "equiangular":
        if n < 2:
            raise ValueError(f"an equiangular grid with poles needs at least 2 rows, got {n}")
        x, w = clenshaw_curtis(n)
    elif rule == "legendre-gauss":
        x, w = np.polynomial.legendre.leggauss(n)
        x, w = x[::-1], w[::-1]
    elif rule == "fejer-second":
        x, w = fejer_second(n)
    elif rule == "fejer-first":
        x, w = fejer_first(n)
    else:
        raise ValueError(f"rule must be one of {LATITUDE_RULES}, got {rule!r}")
    lat = np.degrees(np.arcsin(np.clip(x, -1.0, 1.0)))
    if rule == "equiangular":  # exact nodes (arcsin of the cosines rounds)
        lat = 90.0 - 180.0 * np.arange(n) / (n - 1)
    return lat, np.asarray(w, dtype=np.float64)


@dataclass(frozen=True)
class LatLonGrid:
    """A global latitude-longitude grid recognized from its coordinates.

    Attributes
    ----------
    rule : one of :data:`LATITUDE_RULES`
    lat : np.ndarray, shape [nlat]
        Latitudes of the rule (degrees), north to south: the canonical order.
    lon : np.ndarray, shape [nlon]
        Longitudes (degrees, in ``[0, 360)``), increasing: the canonical order.
    lat_index, lon_index : np.ndarray of int
        Source positions of the canonical rows and columns: canonical row ``i`` is
        source row ``lat_index[i]``.
    lat_ascending : bool
        The source stores latitudes south to north.
    lon_signed : bool
        The source uses longitudes in ``[-180, 180)``.
    """

    rule: str
    lat: np.ndarray
    lon: np.ndarray
    lat_index: np.ndarray
    lon_index: np.ndarray
    lat_ascending: bool
    lon_signed: bool

    @property
    def nlat(self) -> int:
        return int(self.lat.shape[0])

    @property
    def nlon(self) -> int:
        return int(self.lon.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """``(nlat, nlon)``."""
        return self.nlat, self.nlon

    @property
    def sphere_grid(self) -> str | None:
        """The :data:`~geo_neuralop.geometry.SPHERE_GRIDS` name (None for Fejer grids)."""
        return self.rule if self.rule in SPHERE_GRIDS else None

    def weights(self) -> np.ndarray:
        """Solid angles ``[nlat, nlon]`` of the canonical grid (steradians, sum ``4 pi``)."""
        _, w = latitude_rule(self.rule, self.nlat)
        return np.repeat((w * 2.0 * math.pi / self.nlon)[:, None], self.nlon, axis=1)

    def unit_vectors(self) -> np.ndarray:
        """Points ``[nlat, nlon, 3]`` of the canonical grid (poles exact)."""
        lat, lon = np.radians(self.lat), np.radians(self.lon)
        cos_lat = np.cos(lat)
        cos_lat[np.abs(self.lat) == 90.0] = 0.0
        return np.stack([np.outer(cos_lat, np.cos(lon)), np.outer(cos_lat, np.sin(lon)),
                         np.outer(np.sin(lat), np.ones(self.nlon))], axis=-1)

    def to_canonical(self, values: np.ndarray) -> np.ndarray:
        """Source-ordered values ``[..., nlat, nlon]`` in the canonical order."""
        return values[..., self.lat_index, :][..., self.lon_index]

    def source_coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """Latitudes and longitudes in the source's order and longitude convention."""
        lat = self.lat[::-1] if self.lat_ascending else self.lat
        lon = np.empty(self.nlon)
        lon[self.lon_index] = self.lon
        if self.lon_signed:
            lon = np.where(lon >= 180.0, lon - 360.0, lon)
        return lat.copy(), lon

    def to_source(self, values: np.ndarray) -> np.ndarray:
        """Canonical values ``[..., nlat, nlon]`` in the source's order (inverse of
        :meth:`to_canonical`)."""
        out = np.empty_like(values)
        rows = np.argsort(self.lat_index)
        cols = np.argsort(self.lon_index)
        out[...] = values[..., rows, :][..., cols]
        return out


def _strictly_monotonic(values: np.ndarray, name: str, where: str) -> bool:
    """True when increasing, False when decreasing; raises otherwise."""
    if values.ndim != 1:
        raise ValueError(f"{where}coordinate {name!r} must be 1-D, got shape {values.shape} "
                         f"(curvilinear grids are not supported; regrid to a lat/lon grid)")
    if values.size and not np.isfinite(values).all():
        raise ValueError(f"{where}coordinate {name!r} has missing or non-finite values")
    if values.size < 2:
        raise ValueError(f"{where}coordinate {name!r} needs at least 2 values, got "
                         f"{values.size}")
    step = np.diff(values)
    if (step > 0).all():
        return True
    if (step < 0).all():
        return False
    bad = int(np.argmax(step <= 0) if step[0] > 0 else np.argmax(step >= 0))
    raise ValueError(f"{where}coordinate {name!r} is not monotonic: {values[bad]:g} is "
                     f"followed by {values[bad + 1]:g} at index {bad + 1}; sort it first "
                     f"(ds.sortby({name!r}))")


def _latitude_rule(lat: np.ndarray, name: str, where: str) -> tuple[str, np.ndarray]:
    n = lat.shape[0]
    spacing = 180.0 / n
    tol = max(2e-5, 1e-3 * spacing)  # float32 coordinates round at about 4e-6 degrees
    for rule in LATITUDE_RULES:
        if rule == "equiangular" and n < 2:
            continue
        nodes, _ = latitude_rule(rule, n)
        if np.abs(lat - nodes).max() <= tol:
            return rule, nodes
    top, bottom = float(lat[0]), float(lat[-1])
    if top < 90.0 - 1.01 * spacing or bottom > -90.0 + 1.01 * spacing:
        raise ValueError(
            f"{where}coordinate {name!r} spans {bottom:g} to {top:g} degrees: a regional "
            f"grid, not a global one (a global grid reaches the poles or ends within a "
            f"row spacing of them); sphere models need the whole sphere")
    raise ValueError(
        f"{where}the {n} latitudes of {name!r} follow none of the global rules "
        f"{list(LATITUDE_RULES)} (equiangular with or without pole rows, Gaussian), within "
        f"{tol:.2g} degrees; regrid to one of them")


def detect_latlon_grid(lat, lon, lat_name: str = "lat", lon_name: str = "lon",
                       where: str = "") -> LatLonGrid:
    """Recognize a global lat/lon grid from its 1-D coordinates (degrees).

    Parameters
    ----------
    lat, lon : array-like, shape [nlat] and [nlon]
        Latitudes (either order) and longitudes (``[0, 360)`` or ``[-180, 180)``),
        each strictly monotonic.
    lat_name, lon_name : str
        Names used in messages.
    where : str
        Prefix of messages, e.g. ``"data.nc: "``.

    Returns
    -------
    LatLonGrid

    Raises
    ------
    ValueError
        A coordinate that is not 1-D, has missing values, is not strictly monotonic,
        covers only part of the sphere (a regional grid), or follows no known rule;
        longitudes that are not equal steps around the whole circle or that repeat
        the first one at 360 degrees.

    Examples
    --------
    >>> import numpy as np
    >>> grid = detect_latlon_grid(np.linspace(-90, 90, 19), np.arange(-180, 180, 10.0))
    >>> grid.rule, grid.shape, grid.lat[:2].tolist(), grid.lon[:2].tolist()
    ('equiangular', (19, 36), [90.0, 80.0], [0.0, 10.0])
    >>> x, _ = np.polynomial.legendre.leggauss(16)
    >>> detect_latlon_grid(np.degrees(np.arcsin(x)), np.arange(0, 360, 11.25)).rule
    'legendre-gauss'
    >>> detect_latlon_grid(np.arange(89.5, -90, -1.0), np.arange(0, 360, 1.0)).rule
    'fejer-first'
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    ascending = _strictly_monotonic(lat, lat_name, where)
    lon_increasing = _strictly_monotonic(lon, lon_name, where)
    if np.abs(lat).max() > 90.0 + 1e-4:  # float32 coordinates round past the poles
        raise ValueError(f"{where}coordinate {lat_name!r} has values beyond +-90 degrees "
                         f"(max {np.abs(lat).max():g}); latitudes must be in degrees")
    lat = np.clip(lat, -90.0, 90.0)
    lat_index = np.arange(lat.shape[0])[::-1] if ascending else np.arange(lat.shape[0])
    rule, nodes = _latitude_rule(lat[lat_index], lat_name, where)

    nlon = lon.shape[0]
    span = abs(float(lon[-1] - lon[0]))
    step = 360.0 / nlon
    tol = max(1e-4, 1e-3 * step)
    if span > 360.0 - 0.5 * step:
        raise ValueError(f"{where}coordinate {lon_name!r} runs from {lon[0]:g} to {lon[-1]:g}: "
                         f"the last column repeats the first (360 degrees apart); drop it, "
                         f"e.g. ds.isel({lon_name}=slice(0, -1))")
    wrapped = np.mod(lon, 360.0)
    wrapped[np.abs(wrapped - 360.0) < tol] = 0.0
    lon_index = np.argsort(wrapped, kind="stable")
    ordered = wrapped[lon_index]
    gaps = np.diff(np.append(ordered, ordered[0] + 360.0))
    if np.abs(gaps - step).max() > tol:
        if np.abs(np.diff(lon) - np.diff(lon).mean()).max() <= tol:
            raise ValueError(
                f"{where}coordinate {lon_name!r} covers {span + abs(lon[1] - lon[0]):g} of "
                f"360 degrees: a regional grid, not a global one; sphere models need the "
                f"whole sphere")
        raise ValueError(f"{where}the {nlon} longitudes of {lon_name!r} are not equal steps "
                         f"of 360/{nlon} = {step:g} degrees around the circle")
    first = float(ordered[0])
    canonical_lon = first + step * np.arange(nlon)
    del lon_increasing  # either direction is accepted; the order is restored on export
    return LatLonGrid(rule=rule, lat=nodes, lon=canonical_lon, lat_index=lat_index,
                      lon_index=lon_index, lat_ascending=ascending,
                      lon_signed=bool(lon.min() < 0.0))


def points_latlon(pos: np.ndarray, shape: tuple[int, int] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Row latitudes and column longitudes (degrees) of unit vectors on a lat/lon grid.

    Parameters
    ----------
    pos : np.ndarray, shape [nlat * nlon, 3]
        Points in C order of ``(lat, lon)``.
    shape : (nlat, nlon), optional
        Default: ``nlat`` is the number of distinct latitudes.

    Returns
    -------
    lat [nlat], lon [nlon] : np.ndarray
        Longitudes in ``[0, 360)``, taken from a row away from the poles.

    Raises
    ------
    ValueError
        The points do not form a latitude-longitude grid in that order.
    """
    pos = np.asarray(pos, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"points must be unit vectors [N, 3] on the sphere, got shape "
                         f"{pos.shape}")
    lat = np.degrees(np.arcsin(np.clip(pos[:, 2], -1.0, 1.0)))
    lon = np.mod(np.degrees(np.arctan2(pos[:, 1], pos[:, 0])), 360.0)
    if shape is None:
        rows = np.unique(np.round(lat, 7))
        shape = (len(rows), pos.shape[0] // max(len(rows), 1))
    nlat, nlon = int(shape[0]), int(shape[1])
    if nlat * nlon != pos.shape[0]:
        raise ValueError(f"the {pos.shape[0]} points do not form a lat/lon grid")
    lat_grid = lat.reshape(nlat, nlon)
    if np.abs(lat_grid - lat_grid[:, :1]).max() > 1e-6:
        raise ValueError("the points do not form a lat/lon grid (latitude varies along a row)")
    return lat_grid[:, 0], lon.reshape(nlat, nlon)[nlat // 2]
