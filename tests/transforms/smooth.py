"""Smooth test images with known second derivatives, for interpolation bounds."""

import jax.numpy as jnp
import numpy as np
from jax import Array


def gaussian_blobs(size: int, centres: np.ndarray, width: float) -> Array:
    """``(batch, size, size, 1)`` images, one unit-height Gaussian blob each.

    A blob exp(-r²/(2 w²)) has |f_xx| + |f_yy| ≤ 2 / w² everywhere, so one
    bilinear interpolation errs by at most (1/8)(2 / w²) = 1 / (4 w²) (pixel units).
    """
    grid = np.arange(size, dtype=np.float64)
    rows, cols = np.meshgrid(grid, grid, indexing="ij")
    blobs = [np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * width**2)) for r, c in centres]
    return jnp.asarray(np.stack(blobs)[..., None], dtype=jnp.float32)


def bilinear_error_bound(width: float, max_stretch: float = 1.0) -> float:
    """Bound on one bilinear resampling of a blob seen through a map of norm ≤ max_stretch."""
    return max_stretch**2 / (4 * width**2)
