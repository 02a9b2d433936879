"""Weight tensors stored in factorized form: CP, Tucker and tensor-train (the TFNO weights).

Kossaifi et al. ("Multi-Grid Tensorized Fourier Neural Operator for High-Resolution
PDEs", TMLR 2024) store the spectral weight ``W [C_in, C_out, m_1, ..., m_d]`` of an
FNO layer as a low-rank tensor, which cuts its parameters by orders of magnitude
and acts as a regularizer. Each class here holds the factors as parameters
(complex tensors as real ``[..., 2]`` pairs, so optimizers and DDP see real
tensors) and rebuilds the dense tensor with :meth:`FactorizedTensor.to_tensor`
(``torch.einsum``; no tensorly needed):

- ``"cp"``: ``W = sum_r lambda_r U_1[:, r] o ... o U_N[:, r]`` (rank ``R``);
- ``"tucker"``: ``W = G x_1 U_1 ... x_N U_N``, core ``G [r_1, ..., r_N]``;
- ``"tt"``: ``W[i_1, ..., i_N] = G_1[:, i_1, :] ... G_N[:, i_N, :]``, cores
  ``G_n [r_{n-1}, n_n, r_n]`` with ``r_0 = r_N = 1``;
- ``"dense"``: one plain tensor.

Ranks (:func:`resolve_rank`): an int, per-mode ints (Tucker: ``N`` values; TT: ``N - 1``
inner ranks or ``N + 1`` with the two outer ones equal to 1), or a float in ``(0, 1]``: the
fraction of the dense tensor's parameter count to keep (CP as tensorly rounds it;
Tucker and TT with one scale for all modes, at most that fraction). The layout of the
factors is tensorly-torch's (``tltorch``), so neuraloperator's TFNO factors copy over
directly (tests/layers/test_factorized_tensors.py does so).

Initialization draws the factors so that the entries of the rebuilt tensor have
standard deviation ``init_std`` (tensorly-torch's rule: factor std
``(std / sqrt(prod ranks)) ** (1 / number of factors)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from geo_neuralop.utils.checks import is_int, is_number

__all__ = [
    "FACTORIZATIONS",
    "CPTensor",
    "DenseTensor",
    "FactorizedTensor",
    "TTTensor",
    "TuckerTensor",
    "factorized_tensor",
    "resolve_rank",
]

FACTORIZATIONS = ("dense", "cp", "tucker", "tt")

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _param(shape: Sequence[int], complex_valued: bool, std: float) -> nn.Parameter:
    """A parameter of normal entries with ``E|w|^2 = std^2`` (complex: a real ``[..., 2]`` pair)."""
    if complex_valued:
        return nn.Parameter(torch.randn(*shape, 2) * (std / math.sqrt(2.0)))
    return nn.Parameter(torch.randn(*shape) * std)


def _value(p: torch.Tensor, complex_valued: bool) -> torch.Tensor:
    return torch.view_as_complex(p) if complex_valued else p


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    out = tuple(shape)
    if len(out) < 2 or not all(is_int(n) and n >= 1 for n in out):
        raise ValueError(f"shape must hold at least two positive sizes, got {shape!r}")
    return tuple(int(n) for n in out)


def _check_fraction(rank: float) -> float:
    if not 0.0 < float(rank) <= 1.0:
        raise ValueError(f"rank given as a float is the fraction of the dense parameter count "
                         f"to keep and must be in (0, 1], got {rank!r}")
    return float(rank)


def _bisect_scale(count: Any, target: float) -> float:
    """Largest ``a`` in (0, 1] with ``count(a) <= target`` (``count`` non-decreasing)."""
    lo, hi = 0.0, 1.0
    if count(hi) <= target:
        return hi
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if count(mid) <= target:
            lo = mid
        else:
            hi = mid
    return lo


def _tt_bounds(shape: tuple[int, ...]) -> list[int]:
    """Largest useful inner TT ranks: ``min(prod(n_1..n_k), prod(n_{k+1}..n_N))``."""
    return [min(math.prod(shape[:k]), math.prod(shape[k:])) for k in range(1, len(shape))]


def _tt_count(shape: tuple[int, ...], inner: Sequence[int]) -> int:
    ranks = [1, *inner, 1]
    return sum(ranks[k] * n * ranks[k + 1] for k, n in enumerate(shape))


def resolve_rank(shape: Sequence[int], factorization: str, rank: Any) -> int | tuple[int, ...]:
    """The integer rank(s) of a factorization of a tensor of ``shape``.

    Parameters
    ----------
    shape : sequence of int
    factorization : {"cp", "tucker", "tt", "dense"}
    rank : int, float or sequence of int
        See the module docstring.

    Returns
    -------
    int (CP), tuple of N ints (Tucker), tuple of N + 1 ints starting and ending with 1
    (TT), or 0 for "dense".

    Raises
    ------
    ValueError
        Naming ``rank`` for a value the factorization cannot use.
    """
    shape = _check_shape(shape)
    if factorization not in FACTORIZATIONS:
        raise ValueError(f"factorization must be one of {FACTORIZATIONS}, got {factorization!r}")
    if factorization == "dense":
        return 0
    n_dense = math.prod(shape)
    if isinstance(rank, bool) or not (is_number(rank) or isinstance(rank, (list, tuple))):
        raise ValueError(f"rank must be an int, a float fraction in (0, 1] or a sequence of "
                         f"ints, got {rank!r}")
    if factorization == "cp":
        if is_int(rank):
            if int(rank) < 1:
                raise ValueError(f"rank (CP) must be at least 1, got {rank!r}")
            return int(rank)
        if isinstance(rank, (list, tuple)):
            raise ValueError(f"rank of a CP factorization is one int (or a float fraction), "
                             f"got {rank!r}")
        return max(1, round(_check_fraction(rank) * n_dense / sum(shape)))
    if factorization == "tucker":
        if isinstance(rank, (list, tuple)):
            if len(rank) != len(shape) or not all(is_int(r) and r >= 1 for r in rank):
                raise ValueError(f"rank (Tucker) must hold {len(shape)} positive ints, one per "
                                 f"mode of the shape {shape}, got {rank!r}")
            return tuple(min(int(r), n) for r, n in zip(rank, shape, strict=True))
        if is_int(rank):
            if int(rank) < 1:
                raise ValueError(f"rank (Tucker) must be at least 1, got {rank!r}")
            return tuple(min(int(rank), n) for n in shape)
        fraction = _check_fraction(rank)

        def tucker_ranks(a: float) -> tuple[int, ...]:
            return tuple(max(1, min(n, round(n * a))) for n in shape)

        def tucker_count(a: float) -> int:
            r = tucker_ranks(a)
            return math.prod(r) + sum(n * k for n, k in zip(shape, r, strict=True))

        return tucker_ranks(_bisect_scale(tucker_count, fraction * n_dense))
    # tensor train
    bounds = _tt_bounds(shape)
    if isinstance(rank, (list, tuple)):
        inner = list(rank)
        if len(inner) == len(shape) + 1:
            if inner[0] != 1 or inner[-1] != 1:
                raise ValueError(f"rank (TT) with {len(shape) + 1} entries must start and end "
                                 f"with 1, got {rank!r}")
            inner = inner[1:-1]
        if len(inner) != len(shape) - 1 or not all(is_int(r) and r >= 1 for r in inner):
            raise ValueError(f"rank (TT) must hold {len(shape) - 1} positive inner ranks (or "
                             f"{len(shape) + 1} with outer ones of 1), got {rank!r}")
        return (1, *(int(r) for r in inner), 1)  # as given, even beyond the unfolding ranks
    if is_int(rank):
        if int(rank) < 1:
            raise ValueError(f"rank (TT) must be at least 1, got {rank!r}")
        return (1, *(min(int(rank), b) for b in bounds), 1)
    fraction = _check_fraction(rank)
    best = 1
    for r in range(1, max(bounds) + 1):
        if _tt_count(shape, [min(r, b) for b in bounds]) <= fraction * n_dense:
            best = r
        else:
            break
    return (1, *(min(best, b) for b in bounds), 1)


class FactorizedTensor(nn.Module):
    """Base class: a tensor of ``shape`` held as factors; :meth:`to_tensor` rebuilds it.

    Attributes
    ----------
    shape : tuple of int
    complex_valued : bool
    factorization : str
    rank : int or tuple of int
        The resolved rank(s) (see :func:`resolve_rank`).
    """

    factorization = "dense"

    def __init__(self, shape: Sequence[int], complex_valued: bool) -> None:
        super().__init__()
        self.shape = _check_shape(shape)
        self.complex_valued = bool(complex_valued)

    @property
    def order(self) -> int:
        return len(self.shape)

    def to_tensor(self) -> torch.Tensor:
        """The dense tensor ``[*shape]`` (complex if ``complex_valued``)."""
        raise NotImplementedError

    def count_dense(self) -> int:
        """Real scalars the dense tensor would hold."""
        return math.prod(self.shape) * (2 if self.complex_valued else 1)

    def extra_repr(self) -> str:
        return (f"shape={self.shape}, factorization={self.factorization!r}, rank={self.rank}, "
                f"complex={self.complex_valued}")


class DenseTensor(FactorizedTensor):
    """A plain tensor (the ``"dense"`` factorization); parameter ``tensor``."""

    factorization = "dense"

    def __init__(self, shape: Sequence[int], complex_valued: bool = True,
                 init_std: float = 1.0) -> None:
        super().__init__(shape, complex_valued)
        self.rank = 0
        self.tensor = _param(self.shape, self.complex_valued, init_std)

    def to_tensor(self) -> torch.Tensor:
        return _value(self.tensor, self.complex_valued)


class CPTensor(FactorizedTensor):
    """CP (canonical polyadic) tensor: ``weights [R]`` and ``factors[n] [shape[n], R]``."""

    factorization = "cp"

    def __init__(self, shape: Sequence[int], rank: Any, complex_valued: bool = True,
                 init_std: float = 1.0) -> None:
        super().__init__(shape, complex_valued)
        self.rank = int(resolve_rank(self.shape, "cp", rank))
        std = (init_std / math.sqrt(self.rank)) ** (1.0 / self.order)
        weights = torch.ones(self.rank, 2) * torch.tensor([1.0, 0.0]) if complex_valued \
            else torch.ones(self.rank)
        self.weights = nn.Parameter(weights)
        self.factors = nn.ParameterList(
            [_param((n, self.rank), self.complex_valued, std) for n in self.shape])

    def to_tensor(self) -> torch.Tensor:
        letters = _LETTERS[: self.order]
        eq = "z," + ",".join(f"{c}z" for c in letters) + "->" + letters
        factors = [_value(f, self.complex_valued) for f in self.factors]
        return torch.einsum(eq, _value(self.weights, self.complex_valued), *factors)


class TuckerTensor(FactorizedTensor):
    """Tucker tensor: ``core [r_1, ..., r_N]`` and ``factors[n] [shape[n], r_n]``."""

    factorization = "tucker"

    def __init__(self, shape: Sequence[int], rank: Any, complex_valued: bool = True,
                 init_std: float = 1.0) -> None:
        super().__init__(shape, complex_valued)
        self.rank = tuple(resolve_rank(self.shape, "tucker", rank))  # type: ignore[arg-type]
        std = (init_std / math.sqrt(math.prod(self.rank))) ** (1.0 / (self.order + 1))
        self.core = _param(self.rank, self.complex_valued, std)
        self.factors = nn.ParameterList(
            [_param((n, r), self.complex_valued, std)
             for n, r in zip(self.shape, self.rank, strict=True)])

    def to_tensor(self) -> torch.Tensor:
        core_letters = _LETTERS[self.order: 2 * self.order]
        out_letters = _LETTERS[: self.order]
        eq = (core_letters + "," + ",".join(f"{o}{c}" for o, c in
                                            zip(out_letters, core_letters, strict=True))
              + "->" + out_letters)
        factors = [_value(f, self.complex_valued) for f in self.factors]
        return torch.einsum(eq, _value(self.core, self.complex_valued), *factors)


class TTTensor(FactorizedTensor):
    """Tensor train: ``factors[n] [r_n, shape[n], r_{n+1}]`` with ``r_0 = r_N = 1``."""

    factorization = "tt"

    def __init__(self, shape: Sequence[int], rank: Any, complex_valued: bool = True,
                 init_std: float = 1.0) -> None:
        super().__init__(shape, complex_valued)
        self.rank = tuple(resolve_rank(self.shape, "tt", rank))  # type: ignore[arg-type]
        std = (init_std / math.sqrt(math.prod(self.rank))) ** (1.0 / self.order)
        self.factors = nn.ParameterList(
            [_param((self.rank[k], n, self.rank[k + 1]), self.complex_valued, std)
             for k, n in enumerate(self.shape)])

    def to_tensor(self) -> torch.Tensor:
        factors = [_value(f, self.complex_valued) for f in self.factors]
        out = factors[0].reshape(self.shape[0], -1)  # [n_1, r_1]
        for k in range(1, self.order):
            out = out @ factors[k].reshape(self.rank[k], -1)  # [n_1 ... n_k, n_{k+1} r_{k+1}]
            out = out.reshape(-1, self.rank[k + 1])
        return out.reshape(self.shape)


def factorized_tensor(shape: Sequence[int], factorization: str | None = "dense",
                      rank: Any = 1.0, complex_valued: bool = True,
                      init_std: float = 1.0) -> FactorizedTensor:
    """A :class:`FactorizedTensor` of ``shape`` by name.

    Parameters
    ----------
    shape : sequence of int
    factorization : {"dense", "cp", "tucker", "tt"} or None
        None means "dense".
    rank : int, float or sequence of int
        Ignored for "dense"; see :func:`resolve_rank`.
    complex_valued : bool
    init_std : float
        Standard deviation of the rebuilt tensor's entries (``E|w|^2 = init_std^2``).

    Examples
    --------
    >>> w = factorized_tensor((8, 8, 9, 5), "tucker", rank=0.1)
    >>> w.rank, w.to_tensor().shape, w.to_tensor().dtype
    ((4, 4, 4, 2), torch.Size([8, 8, 9, 5]), torch.complex64)
    >>> sum(p.numel() for p in w.parameters()) / w.count_dense() <= 0.1
    True
    """
    factorization = "dense" if factorization is None else factorization
    if factorization not in FACTORIZATIONS:
        raise ValueError(f"factorization must be one of {FACTORIZATIONS} or None, got "
                         f"{factorization!r}")
    if not is_number(init_std) or not init_std > 0:
        raise ValueError(f"init_std must be a positive number, got {init_std!r}")
    if factorization == "dense":
        return DenseTensor(shape, complex_valued, init_std)
    cls = {"cp": CPTensor, "tucker": TuckerTensor, "tt": TTTensor}[factorization]
    return cls(shape, rank, complex_valued, init_std)
