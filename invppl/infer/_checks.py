"""Input validation shared by :mod:`invppl.infer`.

Every check raises before any work starts and names what was wrong and what
was expected, so a bad argument never surfaces as a shape error inside a
jitted step.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from invppl._checks import check_int

__all__ = ["check_data", "check_positive_int", "check_seed", "model_name", "num_examples"]


def check_positive_int(value: object, name: str) -> int:
    """Returns ``value`` as an ``int`` if it is an integer ≥ 1, else raises.

    >>> check_positive_int(3, "num_steps")
    3
    """
    return check_int(value, name, minimum=1, description="a positive integer (≥ 1)")


def check_seed(value: object) -> int:
    """Returns the seed as an ``int`` if it is an integer in [0, 2**32), else raises.

    >>> check_seed(0)
    0
    """
    return check_int(
        value, "seed", minimum=0, maximum=2**32 - 1, description="an integer in [0, 2**32)"
    )


def check_data(data: object, name: str = "data") -> dict[str, np.ndarray]:
    """Checks a mapping of arrays that share their leading (example) axis.

    Parameters
    ----------
    data
        A mapping ``{keyword: array}``; every array has shape ``(n, ...)`` with
        the same ``n ≥ 1``; floating-point arrays hold only finite values.
    name
        What to call the argument in error messages.

    Returns
    -------
    dict[str, numpy.ndarray]
        The same arrays as NumPy arrays, keys in the given order.

    Raises
    ------
    TypeError
        If ``data`` is not a mapping with string keys.
    ValueError
        If it is empty, an array is a scalar or has no examples, the leading
        axes differ (the message lists every key with its size), or a
        floating-point array holds NaN or infinite values (the message names
        the key).

    >>> arrays = check_data({"x": np.zeros((4, 2)), "y": np.ones(4)})
    >>> {key: value.shape for key, value in arrays.items()}
    {'x': (4, 2), 'y': (4,)}
    """
    if not isinstance(data, Mapping):
        raise TypeError(
            f"{name} must be a mapping {{keyword: array}} passed to the model as model(**batch), "
            f"got {type(data).__name__}"
        )
    if not data:
        raise ValueError(
            f"{name} is empty: expected at least one array, e.g. {{'x': images}} for model(x=...)"
        )
    arrays: dict[str, np.ndarray] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise TypeError(f"{name} keys must be strings (model keywords), got {key!r}")
        array = np.asarray(value)
        if array.ndim == 0:
            raise ValueError(
                f"{name}[{key!r}] is a scalar; expected an array with a leading example axis "
                "(n, ...); pass constants to the model through a closure or functools.partial"
            )
        arrays[key] = array
    sizes = {key: array.shape[0] for key, array in arrays.items()}
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{key!r}: {size}" for key, size in sizes.items())
        raise ValueError(
            f"{name} arrays must share their leading (example) axis, got sizes {{{listing}}}"
        )
    n = next(iter(sizes.values()))
    if n == 0:
        raise ValueError(f"{name} holds no examples: every array has leading axis 0")
    for key, array in arrays.items():
        if np.issubdtype(array.dtype, np.inexact) and not np.all(np.isfinite(array)):
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            raise ValueError(
                f"{name}[{key!r}] contains {bad} NaN or infinite value(s); expected finite values"
            )
    return arrays


def num_examples(arrays: Mapping[str, np.ndarray]) -> int:
    """The shared leading-axis size of checked arrays."""
    return int(next(iter(arrays.values())).shape[0])


def model_name(function: object) -> str:
    """A model's or guide's name for messages and checkpoint metadata.

    >>> def model(x): ...
    >>> model_name(model)
    'model'
    """
    name = getattr(function, "__name__", None)
    return name if isinstance(name, str) else type(function).__name__
