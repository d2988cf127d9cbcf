"""Scalar argument checks shared by every layer (the bottom of the import graph).

Each raises before any work starts and names the argument, what it got and
what was expected.
"""

from __future__ import annotations

import operator

import numpy as np

__all__ = ["check_int"]


def check_int(
    value: object,
    name: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    description: str | None = None,
) -> int:
    """Returns ``value`` as an ``int`` if it is an integer (not a bool) within bounds.

    Args:
        value: the argument to check.
        name: what to call it in messages.
        minimum, maximum: inclusive bounds, if any.
        description: how to describe the expected value in messages (e.g.
            ``"a positive integer"``); by default "an integer" and "at least ...".

    Raises:
        TypeError: ``value`` is a bool or not an integer.
        ValueError: ``value`` is outside the bounds.

    >>> check_int(3, "num_steps", minimum=1)
    3
    """
    wanted = description or "an integer"
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be {wanted}, got the bool {value!r}")
    try:
        result = int(operator.index(value))  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be {wanted}, got {type(value).__name__} {value!r}") from None
    if minimum is not None and result < minimum:
        bound = description or f"at least {minimum}"
        raise ValueError(f"{name} must be {bound}, got {result}")
    if maximum is not None and result > maximum:
        bound = description or f"at most {maximum}"
        raise ValueError(f"{name} must be {bound}, got {result}")
    return result
