"""Argument checks shared by the metrics (adversaries, graph evaluation, Wasserstein).

Each raises ``ValueError`` before any work starts and names the argument,
what it got and what was expected.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["as_float", "code_matrix", "finite_codes", "finite_float64", "is_real"]


def as_float(value: object, name: str, wanted: str) -> float:
    """``value`` as a Python float; a bool, or anything ``float()`` rejects, is an error.

    ``wanted`` says what was expected in the message ("{name} must be {wanted}, got ...").

    >>> as_float(0.25, "test_fraction", "a number in (0, 1)")
    0.25
    >>> as_float(True, "period", "a positive finite number")
    Traceback (most recent call last):
    ...
    ValueError: period must be a positive finite number, got the bool True
    """
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be {wanted}, got the bool {value!r}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {wanted}, got {type(value).__name__} {value!r}") from None


def finite_float64(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` (any shape) as float64, checked to hold no NaN or infinite value.

    >>> finite_float64(np.array([1, 2]), "x").dtype
    dtype('float64')
    >>> finite_float64(np.array([1.0, np.nan, np.inf]), "x")
    Traceback (most recent call last):
    ...
    ValueError: x contains 2 NaN or infinite value(s); expected finite values
    """
    array = array.astype(np.float64)
    finite = np.isfinite(array)
    if not np.all(finite):
        bad = int(array.size - np.count_nonzero(finite))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); expected finite values")
    return array


def is_real(array: np.ndarray, *, allow_bool: bool = False) -> bool:
    """Whether ``array`` holds real numbers: a numeric, non-complex dtype (or bool if allowed)."""
    numeric = np.issubdtype(array.dtype, np.number) or (allow_bool and array.dtype == np.bool_)
    return bool(numeric) and not np.iscomplexobj(array)


def code_matrix(
    codes: ArrayLike, name: str, *, rows: str, hint: str = "", allow_bool: bool = False
) -> np.ndarray:
    """``codes`` as an array, checked to be a ``(rows, latent_dim)`` matrix of real numbers.

    ``rows`` names the first axis in the message (e.g. ``"num_nodes"``) and
    ``hint``, if given, is appended to the shape error. The number of rows and
    the values are not checked: see :func:`finite_codes`.
    """
    array = np.asarray(codes)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must have shape ({rows}, latent_dim), got ndim {array.ndim} with shape "
            f"{array.shape}{hint}"
        )
    if not is_real(array, allow_bool=allow_bool):
        raise ValueError(f"{name} must be real numbers, got dtype {array.dtype}")
    return array


def finite_codes(array: np.ndarray, name: str) -> np.ndarray:
    """An ``(n, latent_dim)`` code matrix as float64, checked: latent_dim ≥ 1, finite values."""
    if array.shape[1] == 0:
        raise ValueError(f"{name} has latent_dim 0 (shape {array.shape}); need at least one")
    return finite_float64(array, name)
