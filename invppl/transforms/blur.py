"""Gaussian blur of image batches with a traced width (for annealed objectives)."""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from invppl._checks import check_int
from invppl.transforms.interpolation import check_images

__all__ = ["gaussian_blur"]


def gaussian_blur(images: Array, sigma: ArrayLike, *, radius: int) -> Array:
    """Blurs ``(batch, height, width, channels)`` images by a Gaussian of width ``sigma`` pixels.

    A separable kernel over offsets ``-radius..radius`` (zero padding),
    normalised to sum to 1. ``sigma`` may be a traced scalar, so a width annealed
    during training does not recompile; ``sigma = 0`` leaves the images unchanged.
    Choose ``radius >= 3 * sigma`` for the largest ``sigma`` used. ``sigma`` is
    not checked (it may be traced): a negative width acts as 0.

    >>> import jax.numpy as jnp
    >>> point = jnp.zeros((1, 9, 9, 1)).at[0, 4, 4, 0].set(1.0)
    >>> blurred = gaussian_blur(point, 1.0, radius=4)
    >>> round(float(blurred.sum()), 4), bool(blurred[0, 4, 4, 0] < 0.2)
    (1.0, True)
    >>> bool(jnp.array_equal(gaussian_blur(point, 0.0, radius=4), point))
    True
    """
    images = check_images(images)
    radius = check_int(radius, "radius", minimum=0)
    sigma = jnp.asarray(sigma, images.dtype)
    if sigma.ndim != 0:
        raise ValueError(f"sigma must be a scalar, got shape {sigma.shape}")
    offsets = jnp.arange(-radius, radius + 1, dtype=images.dtype)
    safe = jnp.maximum(sigma, jnp.asarray(1e-6, images.dtype))
    weights = jnp.exp(-0.5 * (offsets / safe) ** 2)
    weights = weights / weights.sum()
    height, width = images.shape[1:3]
    padded = jnp.pad(images, ((0, 0), (radius, radius), (0, 0), (0, 0)))
    rows = sum(weights[i] * padded[:, i : i + height] for i in range(2 * radius + 1))
    padded = jnp.pad(rows, ((0, 0), (0, 0), (radius, radius), (0, 0)))
    return sum(weights[i] * padded[:, :, i : i + width] for i in range(2 * radius + 1))  # type: ignore[return-value]
