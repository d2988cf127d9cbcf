"""Shape checks of the values handed to a distribution's ``log_prob`` (static, so free under jit).

NumPyro's ``validate_args`` checks a value's support, not its shape, and JAX
broadcasts, clamps out-of-range gathers and reshapes without complaint, so a
value of the wrong shape would otherwise come back as a number. The rule
checked here is NumPyro's: a value is ``sample_shape + batch + event_shape``,
whose ``batch`` part broadcasts against the distribution's ``batch_shape``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["check_value_shape", "describe_shape"]


def describe_shape(sizes: Sequence[int], names: Sequence[str] | None = None) -> str:
    """``(..., 5, 2)``, or with names ``(..., num_nodes, latent_dim) = (..., 5, 2)``.

    >>> describe_shape((5, 2), ("num_nodes", "latent_dim"))
    '(..., num_nodes, latent_dim) = (..., 5, 2)'
    >>> describe_shape(())
    '(...)'
    """
    numbers = "".join(f", {size}" for size in sizes)
    if names is None:
        return f"(...{numbers})"
    return f"(...{''.join(f', {name}' for name in names)}) = (...{numbers})"


def check_value_shape(
    what: str,
    value_shape: Sequence[int],
    batch_shape: Sequence[int],
    event_shape: Sequence[int],
    event_names: Sequence[str] | None = None,
) -> None:
    """Raises unless ``value_shape`` ends in ``event_shape`` after a batch part that broadcasts.

    Args:
        what: the caller, for messages (e.g. ``"ForestPrior.log_prob"``).
        value_shape: the value's shape.
        batch_shape, event_shape: the distribution's.
        event_names: what each event axis is, for messages (e.g.
            ``("num_nodes", "latent_dim")``).

    Raises:
        ValueError: the value has fewer axes than the event, its trailing axes
            are not ``event_shape``, or its leading axes do not broadcast
            against ``batch_shape``; the message names the value's shape and
            the expected one.

    >>> check_value_shape("log_prob", (4, 5, 2), (), (5, 2))
    >>> check_value_shape("log_prob", (3, 2), (), (5, 2), ("n", "d"))
    Traceback (most recent call last):
    ...
    ValueError: log_prob: value of shape (3, 2), expected shape (..., n, d) = (..., 5, 2)
    """
    value_shape, batch_shape = tuple(value_shape), tuple(batch_shape)
    event_shape = tuple(event_shape)
    expected = describe_shape(event_shape, event_names)
    start = len(value_shape) - len(event_shape)
    if start < 0 or value_shape[start:] != event_shape:
        raise ValueError(f"{what}: value of shape {value_shape}, expected shape {expected}")
    try:
        np.broadcast_shapes(value_shape[:start], batch_shape)
    except ValueError:
        event = f" followed by the event shape {expected}" if event_shape else ""
        raise ValueError(
            f"{what}: value of shape {value_shape} has leading axes {value_shape[:start]} "
            f"that do not broadcast against the batch shape {batch_shape}; expected "
            f"sample_shape + a shape that broadcasts against {batch_shape}{event}"
        ) from None
