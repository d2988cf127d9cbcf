"""Distances that ignore a periodic transformation, and the nearest neighbours they give.

For a family with one periodic parameter (a rotation), the invariant distance
of two images is the smallest squared distance over the circle,

    d(a, b) = min_g ‖T_g(a) − b‖²,   with the minimising g: b ≈ T_g(a),

searched on a grid of ``num_grid`` points over the whole period. It does not
depend on any pose function, so the neighbours it gives are those a learned
pose network cannot have put in a wrong frame; :mod:`invppl.transforms.graph_frames`
builds frames and clusters from them. Compare blurred images (a Gaussian of
about one pixel): the search is then smooth in g.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from invppl._checks import check_int
from invppl.transforms.family import TransformFamily
from invppl.transforms.interpolation import check_images
from invppl.transforms.support import Periodic

__all__ = ["NeighbourGraph", "invariant_distances", "invariant_neighbours", "vote"]


def periodic_support(family: TransformFamily) -> Periodic:
    """The circle of the family's only parameter; ValueError unless there is one, periodic."""
    parameters = family.parameters
    support = parameters[0].support if len(parameters) == 1 else None
    if not isinstance(support, Periodic):
        described = [f"{p.name} ({type(p.support).__name__})" for p in parameters]
        raise ValueError(
            "invariant distances search one periodic parameter (e.g. a rotation), "
            f"got the family's parameters {described}"
        )
    return support


def periodic_period(family: TransformFamily) -> float:
    """The period of the family's only parameter (see :func:`periodic_support`)."""
    return float(periodic_support(family).period)


def invariant_distances(
    family: TransformFamily, queries: Array, references: Array, *, num_grid: int = 48
) -> tuple[Array, Array]:
    """min_g ‖T_g(q_i) − r_j‖² and its g, both ``(n_q, n_r)``, over a grid of the period.

    ``queries`` ``(n_q, H, W, C)`` and ``references`` ``(n_r, H, W, C)`` are
    compared as given. Works under ``jax.jit`` (``num_grid`` static).

    >>> from invppl.transforms import Affine
    >>> family = Affine(("rotation",))
    >>> bar = jnp.zeros((1, 16, 16, 1)).at[0, 3:13, 6:9, 0].set(1.0).at[0, 3:5, 9:12, 0].set(1.0)
    >>> turned = family.apply(bar, jnp.array([[np.pi / 2]]))
    >>> distance, shift = invariant_distances(family, bar, turned, num_grid=8)
    >>> round(float(shift[0, 0]), 3), float(distance[0, 0]) < 1e-3
    (1.571, True)
    """
    period = periodic_period(family)
    queries, references = check_images(queries), check_images(references)
    grid = jnp.arange(num_grid, dtype=queries.dtype) * (period / num_grid)
    grid = jnp.where(grid >= period / 2, grid - period, grid)
    flat = references.reshape(references.shape[0], -1)
    squared = jnp.square(flat).sum(1)

    def step(carry: tuple[Array, Array], g: Array) -> tuple[tuple[Array, Array], None]:
        best, arg = carry
        moved = family.apply(queries, jnp.full((queries.shape[0], 1), g)).reshape(
            queries.shape[0], -1
        )
        distance = jnp.square(moved).sum(1)[:, None] - 2 * moved @ flat.T + squared[None]
        better = distance < best
        return (jnp.where(better, distance, best), jnp.where(better, g, arg)), None

    shape = (queries.shape[0], references.shape[0])
    start = (jnp.full(shape, jnp.inf, queries.dtype), jnp.zeros(shape, queries.dtype))
    (best, arg), _ = jax.lax.scan(step, start, grid)
    return jnp.maximum(best, 0.0), arg


@dataclass(frozen=True)
class NeighbourGraph:
    """Each image's nearest others by invariant distance.

    Attributes:
        index: ``(n, k)`` the neighbours, nearest first (never the image itself).
        distance: ``(n, k)`` their invariant distances.
        shift: ``(n, k)`` g with neighbour ≈ T_g(image): in frames θ with
            image = T_θ(prototype), θ_neighbour − θ_image.
    """

    index: np.ndarray
    distance: np.ndarray
    shift: np.ndarray


def invariant_neighbours(
    family: TransformFamily,
    images: Array,
    *,
    count: int,
    num_grid: int = 48,
    batch: int = 500,
) -> NeighbourGraph:
    """The ``count`` invariant nearest neighbours of each of the ``(n, H, W, C)`` images.

    Costs n² · ``num_grid`` image comparisons (a few seconds for n = 3000 of
    28 × 28 on two CPU cores), computed ``batch`` queries at a time.
    """
    images = check_images(jnp.asarray(images))
    n = images.shape[0]
    count = check_int(count, "count", minimum=1, maximum=max(n - 1, 1))
    if n < 2:
        raise ValueError(f"neighbours need at least 2 images, got {n}")
    compiled = jax.jit(lambda q: invariant_distances(family, q, images, num_grid=num_grid))
    index, distance, shift = [], [], []
    for start in range(0, n, batch):
        d, g = (np.array(a) for a in compiled(images[start : start + batch]))
        rows = np.arange(d.shape[0])
        d[rows, start + rows] = np.inf  # not its own neighbour
        nearest = np.argsort(d, axis=1)[:, :count]
        index.append(nearest)
        distance.append(np.take_along_axis(d, nearest, 1))
        shift.append(np.take_along_axis(g, nearest, 1))
    return NeighbourGraph(np.concatenate(index), np.concatenate(distance), np.concatenate(shift))


def vote(distances: Array, labels: Array, num_labels: int, count: int) -> Array:
    """The most common label among each row's ``count`` nearest references: ``(b,)``.

    ``distances`` ``(b, m)`` to references labelled ``labels`` ``(m,)``; ties
    go to the smaller label. Works under ``jax.jit``.
    """
    count = min(count, distances.shape[1])
    _, nearest = jax.lax.top_k(-distances, count)
    ballots = jax.nn.one_hot(jnp.asarray(labels)[nearest], num_labels).sum(1)
    return jnp.argmax(ballots, axis=1)
