"""Input validation shared by the dataset builders.

Every check raises before any work starts and names what was wrong and what
was expected, so a bad argument never surfaces as a shape error deep inside a
renderer or a resampler.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from invppl._checks import check_int

__all__ = [
    "check_finite_scalar",
    "check_images",
    "check_int",
    "check_labels",
    "check_seed",
    "select_classes",
]


def check_images(
    images: object,
    *,
    name: str = "images",
    channels: int | Sequence[int] | None = None,
    unit_interval: bool = False,
) -> np.ndarray:
    """Checks a batch of images and returns it as a NumPy array.

    Parameters
    ----------
    images
        Array-like of shape ``(n, height, width, channels)``, floating point.
    name
        What to call the argument in error messages.
    channels
        The allowed channel count(s); ``None`` allows any.
    unit_interval
        Also require every value to lie in [0, 1].

    Returns
    -------
    numpy.ndarray
        The same values, shape ``(n, height, width, channels)``, dtype unchanged.

    Raises
    ------
    ValueError
        If the batch is not rank 4, not floating point, empty, has the wrong
        number of channels, contains NaN or infinite values, or (with
        ``unit_interval``) has values outside [0, 1].
    """
    array = np.asarray(images)
    if array.ndim != 4:
        raise ValueError(
            f"{name} must have rank 4 with layout (n, height, width, channels), "
            f"got rank {array.ndim} with shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"{name} must be floating point (e.g. float32 in [0, 1]), got dtype {array.dtype}"
        )
    if array.size == 0:
        raise ValueError(f"{name} is empty: got shape {array.shape}, expected no zero-length axis")
    if channels is not None:
        allowed = (channels,) if isinstance(channels, int) else tuple(channels)
        if array.shape[-1] not in allowed:
            raise ValueError(
                f"{name} must have {' or '.join(map(str, allowed))} channel(s) in the last axis "
                f"(layout (n, height, width, channels)), got shape {array.shape}"
            )
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); expected finite values")
    if unit_interval and (array.min() < 0.0 or array.max() > 1.0):
        raise ValueError(
            f"{name} must lie in [0, 1], got values in [{array.min()}, {array.max()}] "
            "(divide 8-bit images by 255)"
        )
    return array


def check_labels(labels: object, n: int, *, name: str = "labels") -> np.ndarray:
    """Checks integer class labels matching a batch of ``n`` items.

    Parameters
    ----------
    labels
        Array-like of shape ``(n,)`` with integer dtype.
    n
        The expected number of labels.
    name
        What to call the argument in error messages.

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)``, dtype ``int64``.

    Raises
    ------
    ValueError
        If the labels are not one-dimensional integers of length ``n``.
    """
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"{name} must have shape (n,), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must have an integer dtype, got dtype {array.dtype}")
    if array.shape[0] != n:
        raise ValueError(f"{name} has {array.shape[0]} entries but there are {n} images")
    return array.astype(np.int64)


def check_seed(seed: object) -> int:
    """Checks an explicit, non-negative integer seed for ``numpy.random.default_rng``."""
    return check_int(seed, "seed", minimum=0)


def check_finite_scalar(value: object, name: str) -> float:
    """Checks that ``value`` is a finite real number and returns it as a float.

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If ``value`` is NaN or infinite.
    """
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {result}")
    return result


def select_classes(labels: np.ndarray, classes: Sequence[int] | None) -> np.ndarray:
    """Indices of the examples whose label is in ``classes`` (all of them for None).

    Raises ``ValueError`` when the selection is empty, naming the classes present.
    """
    if classes is None:
        return np.arange(labels.shape[0])
    wanted = np.asarray([check_int(c, "class") for c in classes], dtype=np.int64)
    indices = np.flatnonzero(np.isin(labels, wanted))
    if indices.size == 0:
        raise ValueError(
            f"classes {sorted(wanted.tolist())} select no images; "
            f"the labels hold classes {np.unique(labels).tolist()}"
        )
    return indices
