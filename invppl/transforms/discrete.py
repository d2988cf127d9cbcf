"""Discrete group actions: rotations by multiples of 2π/n and flips.

A continuous flow cannot say "multiples of 90°"; these families have a
:class:`~invppl.transforms.support.Discrete` parameter (the group element's
index), to be paired with a categorical or mixture distribution over η.
Quarter turns of square images are exact pixel permutations; other orders
resample once through the affine rotation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
from jax import Array

from invppl.transforms.affine import Affine
from invppl.transforms.interpolation import FillMode, Method, check_images
from invppl.transforms.support import Discrete, Parameter

__all__ = ["CyclicRotation", "Flip", "rotate90"]


def _check_index(index: Array, batch: int) -> Array:
    index = jnp.asarray(index)
    if not jnp.issubdtype(index.dtype, jnp.integer):
        raise TypeError(f"group element indices must be integers, got dtype {index.dtype}")
    if index.ndim > 1 or (index.ndim == 1 and index.shape[0] not in (1, batch)):
        raise ValueError(
            f"group element indices must have shape () or ({batch},), got {index.shape}"
        )
    return jnp.broadcast_to(index, (batch,))


def rotate90(images: Array, quarter_turns: Array) -> Array:
    """Rotates each image counter-clockwise by ``quarter_turns`` × 90°, exactly.

    Args:
        images: ``(batch, size, size, channels)``, square.
        quarter_turns: ``()`` or ``(batch,)`` integers (any sign; taken mod 4).

    Returns:
        ``(batch, size, size, channels)``.
    """
    images = check_images(images)
    if images.shape[1] != images.shape[2]:
        raise ValueError(f"quarter turns need square images, got shape {images.shape}")
    turns = _check_index(quarter_turns, images.shape[0]) % 4
    branches = [lambda image, j=j: jnp.rot90(image, j, axes=(0, 1)) for j in range(4)]
    return jax.vmap(lambda image, k: jax.lax.switch(k, branches, image))(images, turns)


@dataclass(frozen=True)
class CyclicRotation:
    """The cyclic group C_n acting by rotations of 2πk/n, k = 0..n-1.

    η is an integer index per image. For n in {1, 2, 4} on square images the
    action is an exact pixel permutation; otherwise one affine resampling.
    """

    order: int
    method: Method = "bilinear"
    fill_mode: FillMode = "constant"

    def __post_init__(self) -> None:
        if int(self.order) != self.order or self.order < 1:
            raise ValueError(
                f"the rotation group order must be a positive integer, got {self.order}"
            )

    @property
    def names(self) -> tuple[str, ...]:
        return (f"c{self.order}_rotation",)

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return (Parameter(self.names[0], Discrete(self.order)),)

    @property
    def dim(self) -> int:
        return 1

    def angles(self, index: Array) -> Array:
        """Group element indices → rotation angles in radians."""
        return 2 * math.pi * (jnp.asarray(index) % self.order) / self.order

    def apply(self, images: Array, index: Array) -> Array:
        """Rotates ``(batch, height, width, channels)`` images by ``()`` or ``(batch,)`` indices."""
        images = check_images(images)
        index = _check_index(index, images.shape[0])
        square = images.shape[1] == images.shape[2]
        if square and 4 % self.order == 0:
            return rotate90(images, index * (4 // self.order))
        rotation = Affine(("rotation",), method=self.method, fill_mode=self.fill_mode)
        return rotation.apply(images, self.angles(index)[:, None].astype(images.dtype))


@dataclass(frozen=True)
class Flip:
    """Reflection across the vertical axis (``"horizontal"``) or horizontal axis (``"vertical"``).

    η is 0 (identity) or 1 (flip) per image.
    """

    axis: Literal["horizontal", "vertical"] = "horizontal"

    def __post_init__(self) -> None:
        if self.axis not in ("horizontal", "vertical"):
            raise ValueError(f"flip axis must be 'horizontal' or 'vertical', got {self.axis!r}")

    @property
    def names(self) -> tuple[str, ...]:
        return (f"{self.axis}_flip",)

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return (Parameter(self.names[0], Discrete(2)),)

    @property
    def dim(self) -> int:
        return 1

    def apply(self, images: Array, index: Array) -> Array:
        """Flips the ``(batch, height, width, channels)`` images whose index is odd."""
        images = check_images(images)
        flag = _check_index(index, images.shape[0]) % 2 == 1
        flipped = jnp.flip(images, axis=2 if self.axis == "horizontal" else 1)
        return jnp.where(flag[:, None, None, None], flipped, images)
