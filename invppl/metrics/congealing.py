"""Congealing: the poses that align a set of images to their common mean, by brute force.

An oracle for how far a dataset's own variation limits what a pose function
can recover (Learned-Miller, *Data driven image models through continuous
joint alignment*, PAMI 2006, here with a search instead of gradients). For
images x_1..x_n of one class and a one-parameter family T, alternate

    t    = mean_i B_σ(T_{θ_i}⁻¹ x_i)                     (the template)
    θ_i  = argmin_{θ ∈ grid} ‖B_σ(T_θ⁻¹ x_i) − t‖²        (each image's pose)

from θ = 0 for a fixed number of rounds, each search refined once on a grid
of the coarse step's width around its best point, and the θ re-centred to
median 0 (the template's own pose is arbitrary). Nothing is learned, so the
result depends only on the images: for digits that were never rotated,
the spread of θ is the *natural* rotation that any frame consistent across
examples must attribute to the transformation (about 0.2-0.3 rad mean
absolute deviation for MNIST digits, see docs/sgm.md), a floor under the
error of any pose function measured against the rotations applied to the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from numpy.typing import ArrayLike

from invppl.transforms.blur import gaussian_blur
from invppl.transforms.family import TransformFamily
from invppl.transforms.interpolation import check_images

__all__ = ["Congealed", "congeal"]


@dataclass(frozen=True)
class Congealed:
    """Poses ``(n,)`` (median 0) and the template ``(H, W, C)`` they align the images to."""

    poses: np.ndarray
    template: np.ndarray
    rounds: int
    last_change: float
    """Mean absolute change of the poses in the last round: near 0 when settled."""


def _best(
    family: TransformFamily, x: Array, template: Array, centre: Array, offsets: Array, sigma: float
) -> Array:
    """Per image, the best of ``centre + offsets`` ``(n,)`` + ``(G,)``: the pose ``(n,)``.

    Best: the smallest blurred squared distance of T_θ⁻¹ x to ``template`` ``(1, H, W, C)``.
    """

    def cost(offset: Array) -> Array:
        back = family.apply(x, -(centre + offset)[:, None])
        blurred = gaussian_blur(back, sigma, radius=math.ceil(3 * sigma))
        return jnp.square(blurred - template).sum((1, 2, 3))

    costs = jax.lax.map(cost, offsets)  # (G, n)
    return centre + offsets[jnp.argmin(costs, axis=0)]


def _round(
    family: TransformFamily, x: Array, poses: Array, grid: Array, sigma: float
) -> tuple[Array, Array]:
    """One template update and one coarse-to-fine search: new poses ``(n,)``, template."""
    radius = math.ceil(3 * sigma)
    template = gaussian_blur(family.apply(x, -poses[:, None]), sigma, radius=radius).mean(0)
    coarse = _best(family, x, template[None], jnp.zeros_like(poses), grid, sigma)
    step = grid[1] - grid[0]
    fine = jnp.linspace(-step, step, 9)
    return _best(family, x, template[None], coarse, fine, sigma), template


def congeal(
    images: ArrayLike,
    family: TransformFamily,
    *,
    low: float,
    high: float,
    num_grid: int = 49,
    rounds: int = 6,
    blur: float = 1.0,
) -> Congealed:
    """Aligns ``images`` ``(n, H, W, C)`` to their mean under a one-parameter ``family``.

    Args:
        images: one class's images, at least 2.
        family: a family with one parameter (e.g. ``Affine(("rotation",))``).
        low, high: the searched range of the parameter (relative to the
            current template), searched on ``num_grid`` points and refined.
        rounds: template and search alternations.
        blur: the Gaussian blur (pixels) of the compared images.

    >>> import jax.numpy as jnp
    >>> from invppl.transforms import Affine
    >>> family = Affine(("rotation",))
    >>> bar = jnp.zeros((1, 16, 16, 1)).at[0, 3:13, 7:9, 0].set(1.0)
    >>> angles = jnp.array([[-0.3], [0.0], [0.3]])
    >>> moved = family.apply(jnp.repeat(bar, 3, axis=0), angles)
    >>> result = congeal(moved, family, low=-0.6, high=0.6)
    >>> [round(float(p), 1) for p in result.poses]
    [-0.3, 0.0, 0.3]
    """
    x = check_images(jnp.asarray(images, jnp.float32))
    if family.dim != 1:
        raise ValueError(f"congeal needs a one-parameter family, got {family.names}")
    if not bool(jnp.isfinite(x).all()):
        raise ValueError("images must be finite: found NaN or infinite values")
    if x.shape[0] < 2:
        raise ValueError(f"congeal needs at least 2 images, got {x.shape[0]}")
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise ValueError(f"the searched range must be finite with high > low, got ({low}, {high})")
    if int(num_grid) < 3 or int(rounds) < 1 or not blur > 0:
        raise ValueError(
            f"need num_grid >= 3, rounds >= 1, blur > 0; got {num_grid}, {rounds}, {blur}"
        )
    grid = jnp.linspace(low, high, int(num_grid))
    one_round = jax.jit(partial(_round, family, sigma=float(blur)))
    poses = jnp.zeros(x.shape[0])
    change, template = math.inf, jnp.zeros(x.shape[1:])
    for _ in range(int(rounds)):
        new, template = one_round(x, poses, grid)
        new = new - jnp.median(new)
        change = float(jnp.mean(jnp.abs(new - poses)))
        poses = new
    return Congealed(np.asarray(poses), np.asarray(template), int(rounds), change)
