"""How invariant a prototype function is to a family of transformations.

A symmetry-aware generative model maps an image x to a prototype x̂ that
should not depend on the pose: for every transformation η, the prototype of
T_η(x) should equal the prototype of x. :func:`prototype_invariance` measures
the failure, relative to the spread of the data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from jax import Array

from invppl.transforms import CyclicRotation, Flip, TransformFamily

__all__ = ["InvarianceReport", "prototype_invariance"]


@dataclass(frozen=True, eq=False)
class InvarianceReport:
    """The result of :func:`prototype_invariance`.

    Attributes:
        mean_squared_difference: mean over examples and pixels of
            (prototype(x) − prototype(T_η(x)))².
        data_variance: variance of the images over all examples and pixels.
        relative: ``mean_squared_difference / data_variance``; 0 for a
            perfectly invariant prototype.
        identity_baseline: mean((x − T_η(x))²) / data_variance, the value of
            ``relative`` for the prototype "identity": how much the data itself
            changes under η, the scale to read ``relative`` against.
        per_example: ``(batch,)`` relative values, per image (mean over its
            pixels divided by ``data_variance``); their mean is ``relative``.
    """

    mean_squared_difference: float
    data_variance: float
    relative: float
    identity_baseline: float
    per_example: np.ndarray

    def to_dict(self) -> dict[str, float | list[float]]:
        """The report as plain Python floats (``per_example`` as a list), e.g. for JSON.

        >>> report = InvarianceReport(0.0, 1.0, 0.0, 0.5, np.zeros(2))
        >>> report.to_dict()["per_example"]
        [0.0, 0.0]
        """
        return {
            "mean_squared_difference": self.mean_squared_difference,
            "data_variance": self.data_variance,
            "relative": self.relative,
            "identity_baseline": self.identity_baseline,
            "per_example": [float(v) for v in self.per_example],
        }


def _check_images(images: Array) -> Array:
    array = jnp.asarray(images)
    if array.ndim != 4:
        raise ValueError(
            f"images must have rank 4 (batch, height, width, channels), got shape {array.shape}"
        )
    if not jnp.issubdtype(array.dtype, jnp.floating):
        raise ValueError(
            f"images must be floating point (e.g. float32 in [0, 1]), got dtype {array.dtype}"
        )
    if array.size == 0:
        raise ValueError(f"images is empty: got shape {array.shape}")
    if not bool(jnp.all(jnp.isfinite(array))):
        raise ValueError("images contain NaN or infinite values")
    return array


def _check_eta(eta: Array, batch: int, names: tuple[str, ...]) -> Array:
    array = jnp.asarray(eta)
    if array.ndim != 2:
        raise ValueError(
            f"eta must have shape (batch, {len(names)}) = ({batch}, {len(names)}), one row per "
            f"image and one column per parameter {names}, got shape {array.shape}"
        )
    if array.shape[0] != batch:
        raise ValueError(
            f"eta has {array.shape[0]} row(s) but images has {batch}: give one transformation "
            "per image"
        )
    if array.shape[1] != len(names):
        raise ValueError(
            f"eta has {array.shape[1]} column(s) but the family has {len(names)} parameter(s) "
            f"{names}"
        )
    if jnp.issubdtype(array.dtype, jnp.inexact) and not bool(jnp.all(jnp.isfinite(array))):
        raise ValueError("eta contains NaN or infinite values")
    return array


def _apply(family: TransformFamily, images: Array, eta: Array) -> Array:
    # The discrete groups take one integer index per image, shape (batch,).
    if isinstance(family, CyclicRotation | Flip):
        return family.apply(images, eta[:, 0])
    return family.apply(images, eta)


def _data_variance(images: Array, dtype: jnp.dtype) -> float:
    """The variance of ``(batch, height, width, channels)`` images over every value, > 0."""
    data_variance = float(jnp.var(images.astype(dtype)))
    if not data_variance > 0:
        raise ValueError(
            "images have zero variance (every pixel equal): the relative difference is undefined"
        )
    return data_variance


def _transformed(family: TransformFamily, images: Array, eta: Array) -> Array:
    """``(batch, height, width, channels)`` images moved by ``eta``, checked to keep their shape."""
    moved = _apply(family, images, eta)
    if moved.shape != images.shape:
        raise ValueError(
            f"family.apply returned shape {moved.shape} for images of shape {images.shape}"
        )
    return moved


def _checked_prototype(
    prototype: Callable[[Array], Array], batch: Array, shape: tuple[int, ...], which: str
) -> Array:
    """``prototype(batch)``, checked to be finite and of the images' ``shape``.

    ``which`` names the batch in the messages (``"images"``, ``"transformed images"``).
    """
    result = jnp.asarray(prototype(batch))
    if result.shape != shape:
        raise ValueError(
            f"prototype must return the shape of its input {shape}, got "
            f"{result.shape} for the {which}"
        )
    if not bool(jnp.all(jnp.isfinite(result))):
        raise ValueError(f"prototype returned NaN or infinite values for the {which}")
    return result


def prototype_invariance(
    prototype: Callable[[Array], Array],
    images: Array,
    family: TransformFamily,
    eta: Array,
) -> InvarianceReport:
    """Measures how much a prototype function changes when its input is transformed.

    With p0 = prototype(x) and p1 = prototype(T_η(x)), reports
    mean((p0 − p1)²) and the same divided by the variance of the images. A
    perfectly invariant prototype gives 0. The baseline "prototype =
    identity" gives ``identity_baseline`` = mean((x − T_η(x))²) / var(x), the
    data's own change under η: a useful prototype function scores well below
    it. (Transformations that move content out of the frame, or interpolation,
    can keep even an ideal prototype slightly above 0.)

    Args:
        prototype: maps images ``(batch, height, width, channels)`` to
            prototypes of the same shape, e.g. an SGM's x ↦ x̂.
        images: ``(batch, height, width, channels)`` finite, floating point.
        family: an invppl transformation family, with ``.apply(images, eta)``
            and ``.names`` (e.g. from :func:`invppl.transforms.transform_family`,
            or :class:`~invppl.transforms.CyclicRotation` with integer η).
        eta: ``(batch, len(family.names))``, the transformation applied to
            each image.

    Returns:
        An :class:`InvarianceReport`.

    Raises:
        ValueError: ``images`` is not a non-empty, finite, floating-point rank-4
            batch or has zero variance; ``eta`` has the wrong shape or
            non-finite values; the prototype returns a different shape or
            non-finite values.

    >>> import jax.numpy as jnp
    >>> from invppl.transforms import transform_family
    >>> images = jnp.arange(32.0).reshape(2, 4, 4, 1)
    >>> family = transform_family(["tx"])
    >>> eta = jnp.array([[0.5], [-0.5]])
    >>> report = prototype_invariance(lambda x: jnp.zeros_like(x), images, family, eta)
    >>> report.relative, report.identity_baseline > 0
    (0.0, True)
    """
    images = _check_images(images)
    eta = _check_eta(eta, images.shape[0], tuple(family.names))
    dtype = jnp.promote_types(images.dtype, jnp.float32)
    data_variance = _data_variance(images, dtype)
    moved = _transformed(family, images, eta)
    first = _checked_prototype(prototype, images, images.shape, "images").astype(dtype)
    second = _checked_prototype(prototype, moved, images.shape, "transformed images").astype(dtype)
    per_pixel_axes = (1, 2, 3)
    squared = jnp.mean((first - second) ** 2, axis=per_pixel_axes)
    baseline = jnp.mean((images.astype(dtype) - moved.astype(dtype)) ** 2)
    mean_squared_difference = float(jnp.mean(squared))
    return InvarianceReport(
        mean_squared_difference=mean_squared_difference,
        data_variance=data_variance,
        relative=mean_squared_difference / data_variance,
        identity_baseline=float(baseline) / data_variance,
        per_example=np.asarray(squared, dtype=np.float64) / data_variance,
    )
