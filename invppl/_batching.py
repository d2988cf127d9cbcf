"""A compiled function applied to many rows, a batch at a time (no model code here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["in_batches"]


def in_batches(function: Callable[[Any], Any], x: Any, size: int) -> np.ndarray:
    """``function`` (compiled once) on ``x`` ``(n, ...)``, ``size`` rows at a time.

    ``x`` may be a tuple of arrays with the same first axis: ``function`` then
    takes the tuple of their batches. The outputs are concatenated on axis 0.

    >>> in_batches(lambda a: a * 2, np.arange(5.0), 2).tolist()
    [0.0, 2.0, 4.0, 6.0, 8.0]
    >>> in_batches(lambda ab: ab[0] + ab[1], (np.ones(3), np.arange(3.0)), 2).tolist()
    [1.0, 2.0, 3.0]
    """
    compiled = jax.jit(function)
    n = len(x[0]) if isinstance(x, tuple) else len(x)

    def rows(i: int) -> Any:
        if isinstance(x, tuple):
            return tuple(jnp.asarray(part[i : i + size]) for part in x)
        return jnp.asarray(x[i : i + size])

    return np.concatenate([np.asarray(compiled(rows(i))) for i in range(0, n, size)])
