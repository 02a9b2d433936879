"""Orthonormal associated Legendre functions on a latitude grid, built without float64 tables.

The spherical harmonic transforms of :class:`~geo_neuralop.layers.SphericalSpectralConv`
need the table ``P[m, l, k] = P_l^m(cos theta_k)`` of orthonormal associated Legendre
functions with the Condon-Shortley phase (the convention of torch-harmonics'
``norm="ortho", csphase=True``: ``Y_l^m = P_l^m(cos theta) e^{i m phi}`` is orthonormal on
the unit sphere). torch-harmonics computes the whole ``max(M, L)^2 x nlat`` table in
float64 and keeps it in a memo (751 MB for a 721-latitude grid at 361 degrees, twice per
transform pair); here the same three-term recurrence runs one degree at a time over all
orders at once, in float64 on ``[M, nlat]`` rows, and only the result is stored, in the
caller's dtype. A test compares the table with torch-harmonics' own.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from geo_neuralop.geometry.quadrature import colatitude_nodes_and_weights

__all__ = ["associated_legendre_table", "sphere_grid_legendre"]


def associated_legendre_table(mmax: int, lmax: int, colatitudes: np.ndarray | torch.Tensor,
                              dtype: torch.dtype = torch.float32,
                              device: torch.device | str | None = None) -> torch.Tensor:
    """Orthonormal associated Legendre functions ``P_l^m(cos theta)``, ``m < mmax, l < lmax``.

    Parameters
    ----------
    mmax, lmax : int
        Orders ``m = 0 .. mmax - 1`` and degrees ``l = 0 .. lmax - 1`` (positive).
    colatitudes : array of float, shape [K]
        Colatitudes ``theta`` in radians (0 at the north pole).
    dtype : torch.dtype
        Dtype of the returned table (the recurrence itself runs in float64).
    device : torch.device or str, optional
        Device of the returned table.

    Returns
    -------
    torch.Tensor, shape [mmax, lmax, K]
        ``P[m, l, k]``, zero where ``m > l``; ``sum_k P[m, l, k] P[m, l', k] w_k 2 pi
        = delta_{l l'}`` for an exact quadrature ``w`` in ``cos theta``. Condon-Shortley
        phase ``(-1)^m`` included.

    Raises
    ------
    ValueError
        When ``mmax`` or ``lmax`` is not a positive int, or ``colatitudes`` is not 1-D.
    """
    for name, value in (("mmax", mmax), ("lmax", lmax)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    theta = torch.as_tensor(np.asarray(colatitudes, dtype=np.float64))
    if theta.dim() != 1:
        raise ValueError(f"colatitudes must be 1-D, got shape {tuple(theta.shape)}")
    x = torch.cos(theta)
    sin = torch.sqrt((1.0 + x) * (1.0 - x))
    table = torch.zeros(mmax, lmax, theta.numel(), dtype=dtype, device=device)
    # rows of the recurrence: P[:, l - 1] and P[:, l - 2] for the orders m < mmax
    prev = torch.zeros(mmax, theta.numel(), dtype=torch.float64)
    prev2 = torch.zeros_like(prev)
    diagonal = torch.full_like(x, 1.0 / math.sqrt(4.0 * math.pi))  # P_l^l
    for degree in range(lmax):
        row = torch.zeros_like(prev)
        if degree == 0:
            row[0] = diagonal
        else:
            general = min(degree - 1, mmax)  # orders m <= l - 2
            if general > 0:
                m = torch.arange(general, dtype=torch.float64)[:, None]
                ll = float(degree)
                a = torch.sqrt((2 * ll - 1) / (ll - m) * (2 * ll + 1) / (ll + m))
                b = torch.sqrt((ll + m - 1) / (ll - m) * (2 * ll + 1) / (2 * ll - 3)
                               * (ll - m - 1) / (ll + m))
                row[:general] = x * a * prev[:general] - b * prev2[:general]
            if degree - 1 < mmax:  # m = l - 1
                row[degree - 1] = math.sqrt(2 * degree + 1) * x * prev[degree - 1]
            if degree < mmax:  # m = l
                diagonal = math.sqrt((2 * degree + 1) / (2 * degree)) * sin * diagonal
                row[degree] = diagonal
        table[:, degree] = row.to(device=table.device, dtype=dtype)
        prev2, prev = prev, row
    table[1::2] *= -1.0  # Condon-Shortley phase
    return table


def sphere_grid_legendre(nlat: int, grid: str, mmax: int, lmax: int,
                         dtype: torch.dtype = torch.float32,
                         device: torch.device | str | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """The Legendre table of a latitude grid and its quadrature weights.

    Parameters
    ----------
    nlat : int
        Latitudes of the grid (north pole first, as torch-harmonics orders them).
    grid : {"equiangular", "legendre-gauss"}
    mmax, lmax : int
    dtype, device
        Of the returned tensors.

    Returns
    -------
    table : torch.Tensor, shape [mmax, lmax, nlat]
        :func:`associated_legendre_table` at the grid's colatitudes (the synthesis
        operator of the inverse transform).
    weights : torch.Tensor, shape [nlat]
        The quadrature weights in ``cos theta`` times ``2 pi``: the forward transform of
        longitude-FFT coefficients ``f_m(theta_k)`` (normalized by ``nlon``) is
        ``sum_k table[m, l, k] weights[k] f_m(theta_k)``.
    """
    theta, w = colatitude_nodes_and_weights(nlat, grid)
    table = associated_legendre_table(mmax, lmax, theta, dtype=dtype, device=device)
    weights = torch.as_tensor(w * (2.0 * math.pi), dtype=dtype, device=device)
    return table, weights
