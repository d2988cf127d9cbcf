"""Frame templates from a graph of invariant neighbours: synchronise, cluster, congeal.

:func:`~invppl.transforms.fit_templates` seeds its clusters on a pose
network's prototypes and assigns each image to its nearest template. Both
carry the network's mistakes, and the nearest template is a poor classifier
(on rotated digits the thin template of the 1s is nearest to many 2s, 3s and
4s: its own squared norm is small). Here nothing depends on a learned pose:

1. **Graph.** Each image's k nearest others by the invariant distance
   min_g ‖T_g(x_i) − x_j‖², with the relative pose g_ij of each edge
   (:func:`~invppl.transforms.invariant.invariant_neighbours`).
2. **Synchronisation.** Frames θ with θ_j − θ_i ≈ g_ij on every edge:
   the leading eigenvector of the Hermitian matrix H_ij = e^{−i g_ij},
   then rounds of each frame set to the circular mean of what its edges say
   (angular synchronisation; Singer, *Appl. Comput. Harmon. Anal.* 2011;
   the generalised power method of Boumal, *SIAM J. Optim.* 2016).
3. **Clusters.** Spectral clustering of the graph (normalised adjacency,
   k-means on its leading eigenvectors; Ng, Jordan & Weiss, NIPS 2001).
4. **Congealing per cluster.** Each cluster's template starts as the mean of
   its members moved back by their synchronised frames; then rounds of each
   member searched against its *own* template and the template updated, as
   in transformation-invariant clustering but with the assignment fixed.
   From the second round on the search adds the cluster's pose prior
   (:class:`~invppl.transforms.PosePrior`: a kernel density of its members'
   poses), which settles near-ties of nearly symmetric shapes (a 2 and a 2
   turned half a circle) by the frame the other members took. At the end the
   templates share one frame along a minimum spanning tree of their aligned
   distances, as in :func:`~invppl.transforms.fit_templates`.

New images are assigned by the vote of their invariant nearest training
images (:meth:`FrameTemplates.align`). The family must have one periodic
parameter (a rotation); the graph costs n² comparisons, so at most
``max_examples`` images build it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sparse
from jax.typing import ArrayLike
from scipy.cluster.vq import kmeans2
from scipy.sparse.linalg import eigsh

from invppl._checks import check_int
from invppl.transforms.align import (
    FrameTemplates,
    PosePrior,
    _radius,
    _shared_offsets,
    _update,
    align_poses,
    align_to_own,
)
from invppl.transforms.blur import gaussian_blur
from invppl.transforms.family import TransformFamily
from invppl.transforms.interpolation import check_images
from invppl.transforms.invariant import (
    NeighbourGraph,
    invariant_neighbours,
    periodic_period,
    periodic_support,
)

__all__ = ["fit_graph_templates", "spectral_clusters", "synchronise"]


@dataclass(frozen=True)
class PriorSettings:
    """The clusters' pose priors: K, the kernel and how much the image distance weighs.

    ``effective_pixels``: the distance is scaled so that a member at its
    cluster's mean distance scores ``effective_pixels / 2``, as if its pixels
    held that many independent Gaussian residuals (blurred pixels are far from
    independent; 20 on rotated digits, docs/sgm.md).
    """

    count: int
    concentration: float = 8.0
    effective_pixels: float = 20.0
    bins: int = 180


def _edge_sum(graph: NeighbourGraph, values: np.ndarray) -> np.ndarray:
    """Σ over each image's edges (both directions) of e^{-i g} v_j, as H v: ``(n,)`` complex."""
    n, k = graph.index.shape
    source, target = np.repeat(np.arange(n), k), graph.index.ravel()
    rotation = np.exp(-1j * graph.shift.ravel())
    out = np.zeros(n, complex)
    np.add.at(out, source, rotation * values[target])
    np.add.at(out, target, np.conj(rotation) * values[source])
    return out


def synchronise(
    graph: NeighbourGraph, period: float, *, spectral_steps: int = 300, rounds: int = 50
) -> np.ndarray:
    """Frames θ ``(n,)`` on the circle of ``period`` with θ_j − θ_i ≈ the edges' shifts.

    Each connected part of the graph gets its own arbitrary origin.

    >>> rng = np.random.default_rng(0)
    >>> theta = rng.uniform(-np.pi, np.pi, 6)
    >>> index = np.array([[(i + 1) % 6, (i + 2) % 6] for i in range(6)])
    >>> shift = theta[index] - theta[:, None]
    >>> found = synchronise(NeighbourGraph(index, np.ones_like(shift), shift), 2 * np.pi)
    >>> offset = np.angle(np.exp(1j * (found - theta)))
    >>> bool(np.allclose(offset, offset[0], atol=1e-6))
    True
    """
    turn = 2 * math.pi / period
    scaled = NeighbourGraph(graph.index, graph.distance, graph.shift * turn)
    n = graph.index.shape[0]
    vector = np.exp(1j * np.random.default_rng(0).uniform(-math.pi, math.pi, n))
    for _ in range(spectral_steps):  # power iteration: the leading eigenvector of H
        vector = _edge_sum(scaled, vector)
        vector = vector / np.linalg.norm(vector)
    for _ in range(rounds):  # each frame to the circular mean of its edges' votes
        summed = _edge_sum(scaled, vector)
        vector = np.where(np.abs(summed) > 0, summed / np.maximum(np.abs(summed), 1e-30), vector)
    return np.angle(vector) / turn


def spectral_clusters(graph: NeighbourGraph, count: int, *, seed: int) -> np.ndarray:
    """Spectral clustering of the neighbour graph into ``count`` clusters: labels ``(n,)``.

    Edge weights exp(−d / d̃), d̃ the median distance to the k-th neighbour,
    symmetrised by the larger of the two directions.
    """
    n, k = graph.index.shape
    count = check_int(count, "count", minimum=1, maximum=n)
    scale = max(float(np.median(graph.distance[:, -1])), 1e-12)
    weights = sparse.coo_matrix(
        (
            np.exp(-graph.distance.ravel() / scale),
            (np.repeat(np.arange(n), k), graph.index.ravel()),
        ),
        shape=(n, n),
    ).tocsr()
    weights = weights.maximum(weights.T)
    inverse_root = sparse.diags(1.0 / np.sqrt(np.asarray(weights.sum(1)).ravel()))
    if count == 1:
        return np.zeros(n, np.int64)
    _, vectors = eigsh(inverse_root @ weights @ inverse_root, k=count, which="LA")
    rows = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    _, labels = kmeans2(rows, count, minit="++", iter=50, rng=np.random.default_rng([seed, 6]))
    return np.asarray(labels, np.int64)


def _pose_prior(
    family: TransformFamily,
    blurred: jax.Array,
    poses: np.ndarray,
    labels: np.ndarray,
    templates: np.ndarray,
    settings: PriorSettings,
) -> PosePrior:
    """Each cluster's pose law (a von Mises kernel density of its members' poses) and weight."""
    support = periodic_support(family)
    low, period = float(support.low), float(support.period)
    back = np.asarray(family.apply(blurred, -jnp.asarray(poses, blurred.dtype)))
    distance = np.square(back - templates[labels]).reshape(len(labels), -1).sum(1)
    grid = low + period * (np.arange(settings.bins) + 0.5) / settings.bins
    turn = 2 * math.pi / period
    tables, scales = [], []
    for c in range(templates.shape[0]):
        members = labels == c
        if not members.any():
            tables.append(np.full(settings.bins, -math.log(period)))
            scales.append(settings.effective_pixels / (2 * max(float(distance.mean()), 1e-12)))
            continue
        gap = np.cos(turn * (grid[:, None] - poses[members, 0][None])) - 1
        density = np.exp(settings.concentration * gap).mean(1)
        tables.append(np.log(density / (density.mean() * period) + 1e-12))
        typical = max(float(distance[members].mean()), 1e-12)
        scales.append(settings.effective_pixels / (2 * typical))
    return PosePrior(
        jnp.asarray(np.stack(tables), jnp.float32), jnp.asarray(scales, jnp.float32), low, period
    )


def _congeal_clusters(
    family: TransformFamily,
    images: jax.Array,
    blurred: jax.Array,
    frames: np.ndarray,
    labels: np.ndarray,
    *,
    rounds: int,
    search: dict[str, Any],
    settings: PriorSettings,
    batch: int = 500,
) -> tuple[np.ndarray, PosePrior]:
    """Step 4: the templates ``(K, H, W, C)`` and their pose priors."""
    start = frames.astype(np.float32)
    count = settings.count
    back = np.asarray(family.apply(blurred, -jnp.asarray(start)))
    templates = np.stack(
        [back[labels == c].mean(0) if (labels == c).any() else back.mean(0) for c in range(count)]
    )
    own = jax.jit(partial(align_to_own, family, **search))
    prior: PosePrior | None = None  # the first round searches by distance alone
    for step in range(rounds + 1):
        poses = np.concatenate(
            [
                np.asarray(
                    own(
                        images[i : i + batch],
                        start[i : i + batch],
                        templates,
                        labels[i : i + batch],
                        prior,
                    )
                )
                for i in range(0, images.shape[0], batch)
            ]
        )
        if step < rounds:
            templates = _update(family, blurred, start, poses, labels, templates)
        prior = _pose_prior(family, blurred, poses, labels, templates, settings)
    assert prior is not None  # rounds + 1 >= 1 passes
    return templates, prior


def _shared(
    family: TransformFamily,
    templates: np.ndarray,
    prior: PosePrior,
    sizes: np.ndarray,
    num_grid: int,
) -> tuple[jax.Array, PosePrior]:
    """The templates moved into one frame along a spanning tree (as ``fit_templates`` does).

    A cluster's frame is otherwise arbitrary; sharing one makes a misassigned
    example (a 2 voted into the 7s) land in a frame near its own class's,
    since similar templates are aligned to each other. Each prior moves with
    its template.
    """
    period = prior.period
    search = jax.jit(
        lambda a, s, t: align_poses(
            family, a, s, t, half_widths=(period / 2,), num_grid=num_grid, blur=0.0
        )
    )
    offsets = _shared_offsets(family, jnp.asarray(templates), sizes, search)[:, 0]
    moved = family.apply(jnp.asarray(templates), -jnp.asarray(offsets[:, None], jnp.float32))
    bins = prior.log_density.shape[1]
    tables = [  # an image at pose η of an old template is at η + offset of the moved one
        np.roll(np.asarray(table), int(np.rint(o / period * bins)))
        for table, o in zip(prior.log_density, offsets, strict=True)
    ]
    return moved, replace(prior, log_density=jnp.asarray(np.stack(tables)))


def fit_graph_templates(
    family: TransformFamily,
    images: ArrayLike,
    *,
    count: int,
    seed: int,
    neighbours: int = 10,
    rounds: int = 4,
    num_grid: int = 48,
    blur: float = 1.0,
    max_examples: int = 4000,
) -> FrameTemplates:
    """Learns ``count`` templates from the invariant neighbour graph of the images (see module).

    Args:
        family: a family with one periodic parameter (e.g. ``Affine(("rotation",))``).
        images: ``(n, H, W, C)`` training images, at least ``count`` + 1.
        count: K, the number of clusters and templates (near the number of
            distinct shapes).
        seed: the k-means seeding and the choice of ``max_examples`` images.
        neighbours: k of the graph and of the vote that assigns new images.
        rounds: congealing rounds (step 4).
        num_grid, blur: the searches' grid and the images' blur (pixels).
        max_examples: at most this many images (drawn with ``seed``) build
            the graph (n² comparisons); the others are assigned by vote.

    Usage: ``frames = fit_graph_templates(Affine(("rotation",)), x, count=5, seed=0)``,
    then ``frames.align(family, images, start)`` (tests/transforms/test_graph_frames.py).
    """
    period = periodic_period(family)
    x = check_images(jnp.asarray(images, jnp.float32))
    count = check_int(count, "count", minimum=1)
    neighbours = check_int(neighbours, "neighbours", minimum=1)
    rounds = check_int(rounds, "rounds", minimum=1)
    num_grid = check_int(num_grid, "num_grid", minimum=3)
    max_examples = check_int(max_examples, "max_examples", minimum=2)
    if not (math.isfinite(blur) and blur > 0):
        raise ValueError(f"blur must be a positive width in pixels, got {blur}")
    if x.shape[0] <= max(count, neighbours):
        raise ValueError(
            f"need more than count={count} and neighbours={neighbours} images, got {x.shape[0]}"
        )
    if not bool(jnp.isfinite(x).all()):
        raise ValueError("images must be finite: found NaN or infinite values")
    if x.shape[0] > max_examples:
        chosen = np.sort(np.random.default_rng([seed, 7]).choice(x.shape[0], max_examples, False))
        x = x[chosen]
    blurred = gaussian_blur(x, blur, radius=_radius(blur))
    graph = invariant_neighbours(family, blurred, count=neighbours, num_grid=num_grid)
    frames = synchronise(graph, period)[:, None]
    labels = spectral_clusters(graph, count, seed=seed)
    search = {"half_widths": (period / 2,), "num_grid": num_grid, "blur": float(blur)}
    templates, prior = _congeal_clusters(
        family,
        x,
        blurred,
        frames,
        labels,
        rounds=rounds,
        search=search,
        settings=PriorSettings(count),
    )
    sizes = np.bincount(labels, minlength=count)
    shared, prior = _shared(family, templates, prior, sizes, num_grid)
    return FrameTemplates(
        shared,
        (period / 2,),
        num_grid,
        float(blur),
        sizes,
        blurred,
        jnp.asarray(labels),
        neighbours,
        prior,
    )
