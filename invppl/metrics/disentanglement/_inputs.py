"""Argument checks and the train/test split shared by the disentanglement metrics.

Each check raises ``ValueError`` (``TypeError`` for a wrong type) before any
work starts and names the argument, what it got and what was expected.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from invppl._checks import check_int
from invppl.metrics._checks import as_float, code_matrix, finite_codes, finite_float64, is_real

__all__ = [
    "check_codes",
    "check_factors",
    "check_num_bins",
    "check_test_fraction",
    "check_varying",
    "split_indices",
]

_DISCRETE_HINT = (
    "; the metric needs discrete factor values (class indices): discretise continuous "
    "factors first, e.g. with histogram_discretize(factors, num_bins)"
)


def check_codes(
    codes: ArrayLike, *, minimum_rows: int = 2, minimum_dims: int = 1, name: str = "codes"
) -> np.ndarray:
    """``codes`` checked to be a finite ``(n, d)`` real matrix; returned as float64."""
    hint = " (reshape one-dimensional codes to (n, 1))"
    array = code_matrix(codes, name, rows="n", hint=hint, allow_bool=True)
    if array.shape[0] < minimum_rows:
        raise ValueError(
            f"{name} has {array.shape[0]} row(s) (shape {array.shape}); need at least "
            f"{minimum_rows} examples"
        )
    array = finite_codes(array, name)
    if array.shape[1] < minimum_dims:
        raise ValueError(
            f"{name} has {array.shape[1]} dimension(s) (shape {array.shape}); this metric "
            f"compares the best code dimension with the second best, so it needs at least "
            f"{minimum_dims}"
        )
    return array


def check_factors(
    factors: ArrayLike,
    num_rows: int | None,
    *,
    discrete: bool = True,
    minimum_factors: int = 1,
    name: str = "factors",
    other: str = "codes",
) -> np.ndarray:
    """``factors`` checked to be an ``(n, f)`` matrix with ``n == num_rows`` (any n for None).

    Discrete factors must be integers (or bools) and are returned as int64;
    otherwise any finite reals, returned as float64. ``other`` names the
    array whose rows they must match.
    """
    array = np.asarray(factors)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must have shape (n, num_factors), got ndim {array.ndim} with shape "
            f"{array.shape} (reshape a single column to (n, 1))"
        )
    if num_rows is not None and array.shape[0] != num_rows:
        raise ValueError(
            f"{name} has {array.shape[0]} rows but {other} has {num_rows}: give the true "
            "factors of every coded example, in the same order"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); need at least one example")
    if array.shape[1] < minimum_factors:
        raise ValueError(
            f"{name} has {array.shape[1]} column(s); this metric needs at least "
            f"{minimum_factors} factor(s)"
        )
    if not is_real(array, allow_bool=True):
        raise ValueError(f"{name} must be real numbers, got dtype {array.dtype}")
    if not discrete:
        return finite_float64(array, name)
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        raise ValueError(f"{name} must have an integer dtype, got {array.dtype}{_DISCRETE_HINT}")
    return array.astype(np.int64)


def check_varying(values: np.ndarray, what: str, *, discrete: bool) -> None:
    """Raises if a column of ``values`` (``(n, f)``) is constant (one class, or zero variance)."""
    for column in range(values.shape[1]):
        if discrete:
            if np.unique(values[:, column]).size < 2:
                raise ValueError(
                    f"factor {column} takes a single value in the {what}; every factor must "
                    "vary (drop constant factors, or draw more examples)"
                )
        elif np.std(values[:, column]) == 0.0:
            raise ValueError(
                f"factor {column} is constant in the {what}; every factor must vary (drop "
                "constant factors, or draw more examples)"
            )


def check_num_bins(num_bins: object) -> int:
    """The number of histogram bins, an integer ≥ 2."""
    return check_int(num_bins, "num_bins", minimum=2)


def check_test_fraction(value: object) -> float:
    """A held-out fraction strictly between 0 and 1."""
    fraction = as_float(value, "test_fraction", "a number in (0, 1)")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {fraction}")
    return fraction


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random split of ``range(n)`` into training and held-out indices.

    ``round(test_fraction · n)`` indices are held out, chosen by
    ``numpy.random.default_rng(seed)``; both parts must be non-empty.

    >>> train, test = split_indices(6, 1 / 3, seed=0)
    >>> sorted(np.concatenate([train, test]).tolist()), test.size
    ([0, 1, 2, 3, 4, 5], 2)
    """
    num_test = round(test_fraction * n)
    if num_test < 1 or num_test > n - 2:
        raise ValueError(
            f"too few examples to split: {n} example(s) with test_fraction {test_fraction} "
            f"hold out {num_test}; need at least 1 held out and 2 for training"
        )
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[num_test:]), np.sort(order[:num_test])
