"""Rotated digits with known rotation angles, drawn from a chosen law per class.

Each image is turned about its centre by an angle θ, counter-clockwise
positive as displayed (row 0 at the top), with
``invppl.transforms.Affine(("rotation",))`` and bilinear interpolation; corners
that come from outside the original are filled with 0. The angles and the laws
that drew them are returned, so a learned p(η | x) can be checked against the
truth: e.g. ``UniformLaw(-π, π)`` for 0s against
``MixtureLaw((UniformLaw(-0.6, -0.4), UniformLaw(0.4, 0.6)), (0.5, 0.5))`` for 1s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from invppl.datasets._checks import (
    check_finite_scalar,
    check_images,
    check_int,
    check_labels,
    select_classes,
)
from invppl.datasets._checks import check_seed as _check_seed
from invppl.datasets.laws import DeltaLaw, LawLike, UniformLaw, laws_by_class, sample_by_class

__all__ = ["RotatedMNIST", "rotate_images", "rotated_mnist"]


@dataclass(frozen=True)
class RotatedMNIST:
    """Rotated images with their true angles.

    Attributes
    ----------
    images
        Shape ``(n, height, width, channels)``, float32 in [0, 1]: the
        selected input images, each rotated by its angle.
    labels
        Shape ``(n,)``, int32 classes of the selected images.
    angles
        Shape ``(n,)``, float32 rotation angles in radians, counter-clockwise
        positive, exactly as drawn from the laws (not wrapped).
    laws
        Mapping class → the law that drew that class's angles.
    indices
        Shape ``(n,)``, int64 positions of the selected images in the input.
    """

    images: np.ndarray
    labels: np.ndarray
    angles: np.ndarray
    laws: Mapping[int, LawLike]
    indices: np.ndarray


@cache
def _rotate_jit() -> Callable[[Any, Any], Any]:
    import jax

    from invppl.transforms import Affine

    family = Affine(("rotation",))
    return jax.jit(family.apply)


def rotate_images(images: np.ndarray, angles: np.ndarray, *, batch_size: int = 2048) -> np.ndarray:
    """Rotates each image about its centre by its angle (radians, counter-clockwise).

    Parameters
    ----------
    images
        Shape ``(n, height, width, channels)``, floating point.
    angles
        Shape ``(n,)`` angles in radians.
    batch_size
        Images rotated per call of the (jitted) warp, to bound memory.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, height, width, channels)``, float32. Pixels that come from
        outside the input are 0; bilinear interpolation never leaves the
        input's range.
    """
    import jax.numpy as jnp

    images = check_images(images)
    angles = np.asarray(angles, dtype=np.float32)
    if angles.shape != (images.shape[0],):
        raise ValueError(f"angles must have shape ({images.shape[0]},), got {angles.shape}")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    rotate = _rotate_jit()
    out = np.empty(images.shape, dtype=np.float32)
    for start in range(0, images.shape[0], batch_size):
        stop = min(start + batch_size, images.shape[0])
        chunk = jnp.asarray(images[start:stop], dtype=jnp.float32)
        eta = jnp.asarray(angles[start:stop, None])
        out[start:stop] = np.asarray(rotate(chunk, eta))
    return out


def _angle_law(
    max_angle: float | None, law: LawLike | Mapping[int, LawLike] | None
) -> LawLike | Mapping[int, LawLike]:
    """The law of :func:`rotated_mnist`'s angles: ``law``, or U(−max_angle, max_angle).

    Raises:
        ValueError: both or neither given; ``max_angle`` outside [0, π].
    """
    if (max_angle is None) == (law is None):
        raise ValueError(
            "give exactly one of max_angle (angles from U(-max_angle, max_angle)) and law "
            f"(a law or a mapping class -> law); got max_angle={max_angle!r}, law={law!r}"
        )
    if max_angle is None:
        assert law is not None
        return law
    max_angle = check_finite_scalar(max_angle, "max_angle")
    if not 0.0 <= max_angle <= math.pi:
        raise ValueError(f"max_angle must lie in [0, pi] radians, got {max_angle}")
    return DeltaLaw(0.0) if max_angle == 0.0 else UniformLaw(-max_angle, max_angle)


def rotated_mnist(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int,
    max_angle: float | None = None,
    law: LawLike | Mapping[int, LawLike] | None = None,
    classes: Sequence[int] | None = None,
) -> RotatedMNIST:
    """Rotates digits by random angles with a known law per class.

    Give exactly one of ``max_angle`` and ``law``.

    Parameters
    ----------
    images
        Shape ``(n, height, width, channels)``, floating point in [0, 1], e.g.
        ``load_mnist().images``.
    labels
        Shape ``(n,)`` integer classes.
    seed
        Seed of ``numpy.random.default_rng`` for the angles.
    max_angle
        Angles drawn from U(−max_angle, max_angle) for every class;
        ``0 ≤ max_angle ≤ π`` (π gives all orientations).
    law
        A law (:class:`~invppl.datasets.laws.UniformLaw`, ...) or a callable
        ``(rng, n) -> angles`` used for every class, or a mapping class → law
        covering every selected class.
    classes
        Keep only images of these classes (all if omitted).

    Returns
    -------
    RotatedMNIST
        Rotated ``images``, ``labels``, ``angles`` (radians), ``laws`` and the
        ``indices`` of the kept images.

    Raises
    ------
    ValueError
        For images that are not a finite floating ``(n, height, width,
        channels)`` batch, labels of the wrong shape, both or neither of
        ``max_angle`` and ``law``, ``max_angle`` outside [0, π], a class
        selection that keeps no image, or a mapping that misses a class.

    >>> import numpy as np
    >>> images = np.zeros((4, 8, 8, 1), dtype=np.float32)
    >>> data = rotated_mnist(images, np.array([0, 1, 0, 1]), seed=0, max_angle=np.pi)
    >>> data.images.shape, data.angles.dtype.name
    ((4, 8, 8, 1), 'float32')
    """
    images = check_images(images, unit_interval=True)
    labels = check_labels(labels, images.shape[0])
    seed = _check_seed(seed)
    law = _angle_law(max_angle, law)
    indices = select_classes(labels, classes)
    selected_labels = labels[indices]
    laws = laws_by_class(law, np.unique(selected_labels).tolist(), name="law")

    rng = np.random.default_rng(seed)
    angles = sample_by_class(laws, selected_labels, rng, name="law").astype(np.float32)
    rotated = rotate_images(images[indices], angles)
    np.clip(rotated, 0.0, 1.0, out=rotated)
    return RotatedMNIST(
        images=rotated,
        labels=selected_labels.astype(np.int32),
        angles=angles,
        laws=laws,
        indices=indices.astype(np.int64),
    )
