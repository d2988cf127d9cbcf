"""Small asymmetric shapes for the alignment tests: an "L" and a "T", turned."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from invppl.transforms import Affine

SIZE = 16
ROTATION = Affine(("rotation",))


def letter(kind: str) -> np.ndarray:
    """``(SIZE, SIZE, 1)``: an asymmetric "L" or "T"."""
    image = np.zeros((SIZE, SIZE, 1), np.float32)
    if kind == "L":
        image[3:13, 6:9] = 1.0
        image[10:13, 9:13] = 1.0
    else:
        image[3:6, 3:13] = 1.0
        image[6:13, 7:10] = 1.0
    return image


def turned(kind: str, angles: np.ndarray) -> jnp.ndarray:
    """The letter turned by each of ``angles``: ``(len(angles), SIZE, SIZE, 1)``."""
    images = jnp.repeat(jnp.asarray(letter(kind))[None], len(angles), axis=0)
    return ROTATION.apply(images, jnp.asarray(angles, jnp.float32)[:, None])


def spread(values: np.ndarray) -> float:
    """Mean absolute circular deviation from the circular mean."""
    centre = np.angle(np.mean(np.exp(1j * values)))
    return float(np.mean(np.abs(np.angle(np.exp(1j * (values - centre))))))
