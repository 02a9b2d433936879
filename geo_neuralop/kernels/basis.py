"""Basis functions of compact support on the unit disk, for DISCO kernels.

A DISCO kernel is ``kappa(x_i, x_j) = sum_k theta_k psi_k(r_ij / radius, phi_ij)``
where ``(r_ij, phi_ij)`` are the polar coordinates of ``x_j`` in the local frame
of ``x_i``. The bases here follow torch-harmonics' conventions (the same number
of functions, ordering and values), so a kernel built here can be compared
with ``torch_harmonics.DiscreteContinuousConvS2`` value by value:

- :class:`PiecewiseLinearBasis`: radial hats times angular hats;
- :class:`MorletBasis`: a Hann window times products of sines and cosines;
- :class:`ZernikeBasis`: Zernike polynomials.

Every basis is evaluated on normalized radii ``rho = r / radius`` in [0, 1] and
angles ``phi`` in [0, 2 pi) (radians), and returns a dense ``[E, K]`` tensor.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch


def _circle_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = torch.abs(a - b)
    return torch.minimum(d, 2.0 * math.pi - d)


def _hat(t: torch.Tensor, width: float) -> torch.Tensor:
    return torch.clamp(1.0 - torch.abs(t) / width, min=0.0)


def _positive_shape(kernel_shape, length: int | tuple[int, ...], name: str) -> tuple[int, ...]:
    if isinstance(kernel_shape, bool):
        raise TypeError(f"kernel_shape must be an int or a tuple of ints, got {kernel_shape!r}")
    if isinstance(kernel_shape, int):
        kernel_shape = (kernel_shape,)
    if not isinstance(kernel_shape, (tuple, list)):
        raise TypeError(f"kernel_shape entries must be ints, got {kernel_shape!r}")
    kernel_shape = tuple(kernel_shape)
    allowed = (length,) if isinstance(length, int) else length
    if len(kernel_shape) not in allowed:
        raise ValueError(f"{name} expects kernel_shape of length {allowed}, got {kernel_shape}")
    for n in kernel_shape:
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"kernel_shape entries must be ints, got {kernel_shape}")
        if n < 1:
            raise ValueError(
                f"kernel_shape {kernel_shape} has zero basis functions along one axis; "
                "every entry must be at least 1"
            )
    return kernel_shape


class FilterBasis(ABC):
    """A finite set of ``kernel_size`` functions on the unit disk."""

    name: str = "basis"

    def __init__(self, kernel_shape: tuple[int, ...]) -> None:
        self.kernel_shape = kernel_shape

    @property
    @abstractmethod
    def kernel_size(self) -> int:
        """Number of basis functions K."""

    @abstractmethod
    def __call__(self, rho: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        """Basis values at local polar coordinates.

        Parameters
        ----------
        rho : torch.Tensor, shape [E]
            Distance divided by the kernel radius, in [0, 1].
        phi : torch.Tensor, shape [E]
            Angle in the local frame, radians in [0, 2 pi).

        Returns
        -------
        torch.Tensor, shape [E, K]
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kernel_shape={self.kernel_shape})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.kernel_shape == other.kernel_shape

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.kernel_shape))


class PiecewiseLinearBasis(FilterBasis):
    """Radial hats times angular hats on the disk (torch-harmonics' "piecewise linear").

    Parameters
    ----------
    kernel_shape : int or (int, int)
        ``(nr, nphi)``: radial and angular resolution. ``nr`` rings of hats
        with spacing ``dr = 2 / (nr + 1)`` (normalized radius); an odd ``nr``
        has an isotropic hat at the centre. ``kernel_size = (nr // 2) * nphi +
        nr % 2``. An int means ``(nr, 1)``: isotropic rings.

    Notes
    -----
    For even ``nr`` with ``nphi > 1`` the innermost hats are direction-dependent
    at the centre; the value at a coincident point (``rho = 0``) is defined as
    the angular mean ``1 / nphi`` (for rho < 1e-12). torch-harmonics evaluates the hat at the
    angle of a rounding-level offset there, so the two differ only at output
    points that coincide with input points.
    """

    name = "piecewise_linear"

    def __init__(self, kernel_shape: int | tuple[int, ...]) -> None:
        shape = _positive_shape(kernel_shape, (1, 2), "PiecewiseLinearBasis")
        if len(shape) == 1:
            shape = (shape[0], 1)
        super().__init__(shape)

    @property
    def kernel_size(self) -> int:
        nr, nphi = self.kernel_shape
        return (nr // 2) * nphi + nr % 2

    def __call__(self, rho: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        # Factorized: radial hats of each ring times angular hats of each direction, combined
        # by an outer product (fewer elementwise passes than evaluating K functions apart).
        nr, nphi = self.kernel_shape
        dr = 2.0 / (nr + 1)
        dphi = 2.0 * math.pi / nphi
        n_rings = nr // 2 + nr % 2
        offset = 0.0 if nr % 2 == 1 else 0.5
        rings = (torch.arange(n_rings, dtype=rho.dtype, device=rho.device) + offset) * dr
        radial = _hat(rho[:, None] - rings, dr)  # [E, n_rings]
        if nphi == 1:  # isotropic rings, no reflection (as torch-harmonics)
            return radial
        centers = torch.arange(nphi, dtype=rho.dtype, device=rho.device) * dphi - math.pi
        angular = _hat(_circle_distance(phi[:, None], centers), dphi)  # [E, nphi]
        n = rho.shape[0]
        if nr % 2 == 1:  # an isotropic hat at the centre, then rings 1.. times directions
            outer = (radial[:, 1:, None] * angular[:, None, :]).reshape(n, -1)
            return torch.cat([radial[:, :1], outer], dim=1)
        # Even nr: the innermost ring's hat reaches through the centre to the opposite side.
        opposite = torch.where(phi >= math.pi, phi - math.pi, phi + math.pi)
        angular_opposite = _hat(_circle_distance(opposite[:, None], centers), dphi)
        radial_opposite = _hat(-rho[:, None] - rings[:1], dr)  # only ring 0 reaches across
        values = (radial[:, :, None] * angular[:, None, :]).reshape(n, -1)
        values[:, :nphi] += radial_opposite * angular_opposite
        # At rho = 0 the angle is undefined and the limit depends on the direction of
        # approach; use the angular mean, 1 / nphi for the innermost ring (torch-harmonics
        # takes whatever angle atan2 returns for a rounding-level offset there).
        at_center = rho < 1e-12
        if at_center.any():
            values[at_center, :nphi] = 1.0 / nphi
            values[at_center, nphi:] = 0.0
        return values


class MorletBasis(FilterBasis):
    """Hann window times Fourier modes in the local x and y directions (torch-harmonics' "morlet").

    Parameters
    ----------
    kernel_shape : int or (int, int)
        ``(m, n)``: modes along the two local axes; ``kernel_size = m * n``.
        Function ``k`` uses ``n_k = k % n`` along ``x = rho sin(phi)`` and
        ``m_k = k // n`` along ``y = rho cos(phi)``: odd indices are sines and
        even ones cosines of frequency ``ceil(i / 2) * pi``. An int means
        ``(m, m)``.
    """

    name = "morlet"

    def __init__(self, kernel_shape: int | tuple[int, ...]) -> None:
        shape = _positive_shape(kernel_shape, (1, 2), "MorletBasis")
        if len(shape) == 1:
            shape = (shape[0], shape[0])
        super().__init__(shape)

    @property
    def kernel_size(self) -> int:
        return self.kernel_shape[0] * self.kernel_shape[1]

    def __call__(self, rho: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        k = torch.arange(self.kernel_size, device=rho.device)
        n = k % self.kernel_shape[1]
        m = k // self.kernel_shape[1]
        x = (rho * torch.sin(phi))[:, None]
        y = (rho * torch.cos(phi))[:, None]
        fn = torch.ceil(n / 2).to(rho.dtype) * math.pi
        fm = torch.ceil(m / 2).to(rho.dtype) * math.pi
        hx = torch.where(n % 2 == 1, torch.sin(fn * x), torch.cos(fn * x))
        hy = torch.where(m % 2 == 1, torch.sin(fm * y), torch.cos(fm * y))
        window = torch.cos(0.5 * math.pi * rho)[:, None] ** 2
        return window * hx * hy


class ZernikeBasis(FilterBasis):
    """Zernike polynomials on the unit disk, radial degree below ``kernel_shape``.

    Parameters
    ----------
    kernel_shape : int
        Maximal radial degree plus one, ``N``; ``kernel_size = N (N + 1) / 2``.
        Function ``k`` is ``Z_n^m`` with ``n`` the row of ``k`` in the
        triangle ``0, 1 2, 3 4 5, ...``, ``m = 2 l - n`` for the position ``l``
        in that row (cosine for ``m >= 0``, sine for ``m < 0``).
    """

    name = "zernike"

    def __init__(self, kernel_shape: int | tuple[int]) -> None:
        shape = _positive_shape(kernel_shape, 1, "ZernikeBasis")
        super().__init__(shape)

    @property
    def kernel_size(self) -> int:
        n = self.kernel_shape[0]
        return n * (n + 1) // 2

    def _indices(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = torch.cat([torch.full((i + 1,), i) for i in range(self.kernel_shape[0])])
        first = n * (n + 1) // 2
        m = 2 * (torch.arange(n.shape[0]) - first) - n
        return n, m

    def __call__(self, rho: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        n, m = self._indices()  # [K] radial degree and azimuthal order of every function
        am = m.abs()
        radial = torch.zeros(rho.shape[0], n.shape[0], dtype=rho.dtype, device=rho.device)
        # R_n^m(rho) = sum_s (-1)^s (n - s)! / (s! ((n + m)/2 - s)! ((n - m)/2 - s)!) rho^(n - 2s);
        # the loop runs over the polynomial's terms s, all K functions at once.
        for term in range(int(n.max()) // 2 + 1):
            valid = term <= (n - am) // 2
            lg = (torch.lgamma((n - term + 1).double()) - math.lgamma(term + 1)
                  - torch.lgamma(((n + am) // 2 - term + 1).clamp(min=1).double())
                  - torch.lgamma(((n - am) // 2 - term + 1).clamp(min=1).double()))
            coef = torch.where(valid, (-1.0) ** term * torch.exp(lg), 0.0).round()
            power = (n - 2 * term).clamp(min=0).to(rho.dtype)
            radial += coef.to(rho.dtype) * rho[:, None] ** power
        angle = m.to(rho.dtype) * phi[:, None]
        return radial * torch.where(m < 0, torch.sin(angle), torch.cos(angle))


BASES: dict[str, type[FilterBasis]] = {
    "piecewise_linear": PiecewiseLinearBasis,
    "piecewise linear": PiecewiseLinearBasis,
    "morlet": MorletBasis,
    "zernike": ZernikeBasis,
}


def get_basis(basis: str | FilterBasis, kernel_shape=None) -> FilterBasis:
    """A basis instance from a name (``"piecewise_linear"``, ``"morlet"``, ``"zernike"``)."""
    if isinstance(basis, FilterBasis):
        if kernel_shape is not None:
            expected = type(basis)(kernel_shape).kernel_shape
            if expected != basis.kernel_shape:
                raise ValueError(
                    f"kernel_shape {kernel_shape} does not match the basis instance's "
                    f"{basis.kernel_shape}"
                )
        return basis
    if not isinstance(basis, str):
        raise TypeError(f"basis must be a name or a FilterBasis, got {type(basis).__name__}")
    if basis not in BASES:
        raise ValueError(f"unknown basis {basis!r}; choose one of {sorted(set(BASES))}")
    if kernel_shape is None:
        raise ValueError("kernel_shape is required when basis is given by name")
    return BASES[basis](kernel_shape)
