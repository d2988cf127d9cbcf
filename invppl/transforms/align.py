"""Aligning images to templates by search: transformation-invariant clustering.

An equivariant pose function f (f(T_ε x) = ε ∘ f(x)) may still put each
example in its own frame: nothing in equivariance says that two similar
digits share an "upright". Transformation-invariant clustering (Frey & Jojic,
*Transformation-invariant clustering using the EM algorithm*, PAMI 2003;
congealing, Learned-Miller 2006, is its one-template case) makes the frames
agree by search. With K templates t_1..t_K, each image gets

    (η_i, k_i) = argmin_{η ∈ η⁰_i + grid, k}  ‖ T_η⁻¹ B_σ(x_i) − t_k ‖²

searched around a starting pose η⁰_i (a pose network's output), and the
templates are the means of their members' aligned, blurred images. Blurring
before the warp is the same as after it for rotations and translations (the
Gaussian is isotropic), so each image is blurred once.

:func:`fit_templates` learns the templates: k-means++ seeding, then rounds of
search and update. Within a cluster the mean correction of the starting poses
is taken out each round, so a template stays in the average frame of its
members' starting poses (it does not drift), and at the end the templates
themselves are aligned to each other along a minimum spanning tree of their
aligned distances, so that clusters of one class (a closed and an open 4)
share a frame. :class:`FrameTemplates` then aligns any image:
:meth:`FrameTemplates.align`.

Several parameters are searched one at a time (coordinate descent), a
periodic one over its whole period by default, an interval over a quarter of
its width, each on a coarse grid refined twice around its best point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike
from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

from invppl._checks import check_int
from invppl.transforms.blur import gaussian_blur
from invppl.transforms.family import TransformFamily
from invppl.transforms.interpolation import check_images
from invppl.transforms.invariant import invariant_distances, vote
from invppl.transforms.support import Interval, Periodic

__all__ = [
    "FrameTemplates",
    "PosePrior",
    "align_poses",
    "align_to_own",
    "fit_templates",
    "search_widths",
]

_REFINE_POINTS = 9


def search_widths(
    family: TransformFamily, half_width: Mapping[str, float] | None = None
) -> tuple[float, ...]:
    """Each parameter's searched half-width: given by name, else from its support.

    Periodic: half the period (the whole circle); interval: a quarter of its
    width; the real line: 0.5. Raises ``ValueError`` for unknown names or a
    half-width that is not positive.
    """
    given = dict(half_width or {})
    unknown = set(given) - set(family.names)
    if unknown:
        raise ValueError(f"half_width names {sorted(unknown)} are not in {family.names}")
    widths = []
    for parameter in family.parameters:
        support = parameter.support
        if parameter.name in given:
            width = float(given[parameter.name])
        elif isinstance(support, Periodic):
            width = support.period / 2
        elif isinstance(support, Interval):
            width = (support.high - support.low) / 4
        else:
            width = 0.5
        if not (math.isfinite(width) and width > 0):
            raise ValueError(f"half_width of {parameter.name!r} must be positive, got {width}")
        widths.append(width)
    return tuple(widths)


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["log_density", "scale"],
    meta_fields=["low", "period"],
)
@dataclass(frozen=True)
class PosePrior:
    """A log density of the pose per template, on a grid over one periodic parameter's circle.

    With a prior, a search minimises ``scale_k · ‖T_η⁻¹ B(x) − t_k‖² − log p_k(η)``:
    transformation-invariant clustering's prior over the transformation
    (Frey & Jojic 2003), which breaks near-ties between frames of a nearly
    symmetric shape (a 2 and a 2 turned half a circle) in favour of the
    frames that the template's other members took.

    Attributes:
        log_density: ``(K, T)`` log p_k at ``low + period · (i + ½) / T``.
        scale: ``(K,)`` the weight of each template's squared distance.
        low, period: the circle.
    """

    log_density: Array
    scale: Array
    low: float
    period: float

    def penalty(self, poses: Array) -> Array:
        """−log p_k(η) for ``(n, 1)`` poses and every template: ``(n, K)``."""
        bins = self.log_density.shape[1]
        where = jnp.mod(poses[:, 0] - self.low, self.period) / self.period * bins
        index = jnp.clip(jnp.floor(where).astype(jnp.int32), 0, bins - 1)
        return -self.log_density[:, index].T


def _costs(
    family: TransformFamily,
    blurred: Array,
    poses: Array,
    templates: Array,
    prior: PosePrior | None = None,
) -> Array:
    """‖T_pose⁻¹ B(x) − t_k‖² for every image and template, or the prior's score: ``(n, K)``."""
    back = family.apply(blurred, -poses).reshape(blurred.shape[0], -1)
    flat = templates.reshape(templates.shape[0], -1)
    costs = jnp.square(back).sum(1)[:, None] - 2 * back @ flat.T + jnp.square(flat).sum(1)[None]
    return costs if prior is None else costs * prior.scale[None] + prior.penalty(poses)


def _search_one(
    family: TransformFamily,
    blurred: Array,
    poses: Array,
    templates: Array,
    j: int,
    offsets: Array,
    prior: PosePrior | None = None,
) -> tuple[Array, Array, Array]:
    """The best of ``poses + offset·e_j`` over ``offsets`` ``(G,)`` and the templates."""
    step = jnp.zeros(family.dim).at[j].set(1.0)
    costs = jax.lax.map(
        lambda o: _costs(family, blurred, poses + o * step, templates, prior), offsets
    )  # (G, n, K)
    flat = jnp.moveaxis(costs, 0, 1).reshape(poses.shape[0], -1)  # (n, G·K)
    best = jnp.argmin(flat, axis=1)
    count = templates.shape[0]
    new = poses + offsets[best // count][:, None] * step
    return new, best % count, jnp.min(flat, axis=1)


def align_poses(
    family: TransformFamily,
    images: Array,
    start: Array,
    templates: Array,
    *,
    half_widths: tuple[float, ...],
    num_grid: int = 48,
    blur: float = 1.0,
    prior: PosePrior | None = None,
) -> tuple[Array, Array, Array]:
    """Searches each image's pose around ``start`` against ``templates``.

    Args:
        family: the transformation family.
        images: ``(n, H, W, C)``.
        start: ``(n, family.dim)`` starting poses (e.g. a pose network's).
        templates: ``(K, H, W, C)`` blurred templates.
        half_widths: per parameter, the searched half-width around ``start``
            (see :func:`search_widths`).
        num_grid: coarse grid points per parameter; each search is refined
            twice on a finer grid around its best point.
        blur: the Gaussian blur (pixels) applied to the images before comparing.
        prior: optional pose priors of the templates (:class:`PosePrior`).

    Returns:
        The aligned poses ``(n, dim)``, each image's nearest template ``(n,)``
        and its squared distance ``(n,)`` (with a prior: the minimised score).
        Works under ``jax.jit`` (with ``half_widths``, ``num_grid`` and ``blur``
        static).

    >>> from invppl.transforms import Affine
    >>> family = Affine(("rotation",))
    >>> bar = jnp.zeros((1, 16, 16, 1)).at[0, 3:13, 6:9, 0].set(1.0).at[0, 3:5, 9:12, 0].set(1.0)
    >>> template = gaussian_blur(bar, 1.0, radius=3)
    >>> moved = family.apply(jnp.repeat(bar, 2, axis=0), jnp.array([[0.7], [-2.0]]))
    >>> poses, nearest, _ = align_poses(family, moved, jnp.zeros((2, 1)), template,
    ...                                 half_widths=(math.pi,))
    >>> [round(float(p), 1) for p in poses[:, 0]]
    [0.7, -2.0]
    """
    blurred = gaussian_blur(check_images(images), blur, radius=_radius(blur))
    poses = jnp.asarray(start, blurred.dtype)
    nearest = jnp.zeros(blurred.shape[0], jnp.int32)
    cost = jnp.zeros(blurred.shape[0], blurred.dtype)
    for j, width in enumerate(half_widths):
        grid = jnp.linspace(-width, width, num_grid)
        poses, nearest, cost = _search_one(family, blurred, poses, templates, j, grid, prior)
        spacing = 2 * width / (num_grid - 1)
        for _ in range(2):
            fine = jnp.linspace(-spacing, spacing, _REFINE_POINTS)
            poses, nearest, cost = _search_one(family, blurred, poses, templates, j, fine, prior)
            spacing = spacing / ((_REFINE_POINTS - 1) / 2)
    return poses, nearest, cost


def align_to_own(
    family: TransformFamily,
    images: Array,
    start: Array,
    templates: Array,
    labels: Array,
    prior: PosePrior | None = None,
    **search: Any,
) -> Array:
    """Poses ``(n, dim)``: each image searched against its own template ``templates[labels]``.

    ``prior``: the templates' pose priors, if any; ``search``: :func:`align_poses`'s
    ``half_widths``, ``num_grid`` and ``blur``.
    """
    labels = jnp.asarray(labels)
    own = jnp.asarray(templates)[labels]
    if prior is None:
        tables, scales = jnp.zeros((labels.shape[0], 1)), jnp.ones(labels.shape[0])
    else:
        tables, scales = prior.log_density[labels], prior.scale[labels]

    def one(image: Array, pose: Array, template: Array, table: Array, scale: Array) -> Array:
        mine = None if prior is None else replace(prior, log_density=table[None], scale=scale[None])
        poses, _, _ = align_poses(
            family, image[None], pose[None], template[None], prior=mine, **search
        )
        return poses[0]

    return jax.vmap(one)(check_images(images), jnp.asarray(start), own, tables, scales)


@dataclass(frozen=True)
class FrameTemplates:
    """Learned templates and the search that aligns images to them (see module).

    Attributes:
        templates: ``(K, H, W, C)`` blurred templates, in one shared frame.
        half_widths, num_grid, blur: the search's settings (:func:`align_poses`).
        sizes: ``(K,)`` training images nearest to each template at the end.
        reference, reference_labels, neighbours: when given (templates from
            :func:`~invppl.transforms.graph_frames.fit_graph_templates`), an
            image's template is not its nearest one but the most common label
            among its ``neighbours`` invariant nearest ``reference`` images
            ``(m, H, W, C)`` (blurred) with labels ``(m,)``
            (:mod:`invppl.transforms.invariant`).
        prior: the templates' pose priors (:class:`PosePrior`), if learned.
    """

    templates: Array
    half_widths: tuple[float, ...]
    num_grid: int
    blur: float
    sizes: np.ndarray
    reference: Array | None = None
    reference_labels: Array | None = None
    neighbours: int = 10
    prior: PosePrior | None = None

    @property
    def search(self) -> dict[str, Any]:
        """The keywords of :func:`align_poses` that these templates are searched with."""
        return {"half_widths": self.half_widths, "num_grid": self.num_grid, "blur": self.blur}

    def align(self, family: TransformFamily, images: Array, start: Array) -> Array:
        """Poses ``(n, dim)`` of ``images`` ``(n, H, W, C)``, searched around ``start``."""
        if self.reference is not None and self.reference_labels is not None:
            labels = self.assign(family, images, start)
            return align_to_own(
                family, images, start, self.templates, labels, self.prior, **self.search
            )
        poses, _, _ = align_poses(
            family, images, start, self.templates, prior=self.prior, **self.search
        )
        return poses

    def assign(self, family: TransformFamily, images: Array, start: Array) -> Array:
        """Each image's template ``(n,)``: by the reference images' vote, else the nearest."""
        if self.reference is None or self.reference_labels is None:
            _, nearest, _ = align_poses(
                family, images, start, self.templates, prior=self.prior, **self.search
            )
            return nearest
        blurred = gaussian_blur(check_images(images), self.blur, radius=_radius(self.blur))
        distances, _ = invariant_distances(family, blurred, self.reference, num_grid=self.num_grid)
        return vote(distances, self.reference_labels, self.templates.shape[0], self.neighbours)


def _radius(blur: float) -> int:
    """The Gaussian's truncation radius in pixels for a blur width."""
    return max(math.ceil(3 * blur), 1)


def _seed_templates(blurred: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: ``count`` of the ``(n, H, W, C)`` images, far apart."""
    flat = blurred.reshape(blurred.shape[0], -1).astype(np.float64)
    chosen = [int(rng.integers(len(flat)))]
    nearest = np.square(flat - flat[chosen[0]]).sum(1)
    for _ in range(count - 1):
        total = nearest.sum()
        pick = (
            int(rng.integers(len(flat)))
            if total <= 0
            else int(rng.choice(len(flat), p=nearest / total))
        )
        chosen.append(pick)
        nearest = np.minimum(nearest, np.square(flat - flat[pick]).sum(1))
    return blurred[np.array(chosen)]


def _centre(corrections: np.ndarray, family: TransformFamily) -> np.ndarray:
    """The mean correction ``(dim,)`` of ``(m, dim)``, circular for periodic parameters."""
    out = np.zeros(family.dim)
    for j, parameter in enumerate(family.parameters):
        values = corrections[:, j]
        if isinstance(parameter.support, Periodic):
            turn = 2 * math.pi / parameter.support.period
            out[j] = np.angle(np.mean(np.exp(1j * turn * values))) / turn
        else:
            out[j] = values.mean()
    return out


def _update(
    family: TransformFamily,
    blurred: Array,
    start: np.ndarray,
    poses: np.ndarray,
    nearest: np.ndarray,
    old: np.ndarray,
) -> np.ndarray:
    """Each template the mean of its members moved back, in their starting poses' mean frame."""
    templates = old.copy()
    for k in range(old.shape[0]):
        members = nearest == k
        if not members.any():
            continue
        shift = _centre(poses[members] - start[members], family)
        back = family.apply(blurred[members], -jnp.asarray(poses[members] - shift))
        templates[k] = np.asarray(back).mean(0)
    return templates


def _shared_offsets(
    family: TransformFamily,
    templates: Array,
    sizes: np.ndarray,
    search: Callable[[Array, Array, Array], tuple[Array, Array, Array]],
) -> np.ndarray:
    """``(K, dim)``: each template's pose in the largest one's frame, along a spanning tree."""
    count = templates.shape[0]
    if count == 1:
        return np.zeros((1, family.dim))
    zeros = jnp.zeros((count, family.dim))
    pairs = [search(templates, zeros, templates[k : k + 1]) for k in range(count)]
    relative = np.stack([np.asarray(p[0]) for p in pairs], axis=1)  # (K, K, dim): t_k ≈ T_r t_l
    distance = np.stack([np.asarray(p[2]) for p in pairs], axis=1)
    symmetric = np.minimum(distance, distance.T) + 1e-9 * (1 + np.abs(distance).max())
    np.fill_diagonal(symmetric, 0.0)
    tree = minimum_spanning_tree(symmetric).toarray()
    order, parent = breadth_first_order((tree + tree.T) != 0, int(np.argmax(sizes)), directed=False)
    offset = np.zeros((count, family.dim))
    for child in order[1:]:
        offset[child] = offset[parent[child]] + relative[child, parent[child]]
    return offset


def _share_frame(
    family: TransformFamily,
    templates: Array,
    sizes: np.ndarray,
    search: Callable[[Array, Array, Array], tuple[Array, Array, Array]],
) -> Array:
    """Templates moved into one frame along a minimum spanning tree of aligned distances."""
    offset = _shared_offsets(family, templates, sizes, search)
    return family.apply(templates, -jnp.asarray(offset, templates.dtype))


def fit_templates(
    family: TransformFamily,
    images: ArrayLike,
    start: ArrayLike,
    *,
    count: int,
    seed: int,
    rounds: int = 6,
    half_width: Mapping[str, float] | None = None,
    num_grid: int = 48,
    blur: float = 1.0,
) -> FrameTemplates:
    """Learns ``count`` templates that the ``(n, H, W, C)`` images align to (see module).

    Args:
        family: the transformation family.
        images: the training images, at least ``count``.
        start: ``(n, dim)`` starting poses (a pose network's on ``images``).
        count: K, the number of templates (near the number of distinct shapes).
        seed: seeds the k-means++ choice of the first templates.
        rounds: search and update alternations.
        half_width, num_grid, blur: the search (see :func:`search_widths`,
            :func:`align_poses`).
    """
    x = check_images(jnp.asarray(images, jnp.float32))
    poses0 = np.asarray(start, np.float32)
    count = check_int(count, "count", minimum=1)
    rounds = check_int(rounds, "rounds", minimum=1)
    num_grid = check_int(num_grid, "num_grid", minimum=3)
    if poses0.shape != (x.shape[0], family.dim):
        raise ValueError(f"start must have shape {(x.shape[0], family.dim)}, got {poses0.shape}")
    if x.shape[0] < count:
        raise ValueError(f"need at least count={count} images, got {x.shape[0]}")
    if not (math.isfinite(blur) and blur > 0):
        raise ValueError(f"blur must be a positive width in pixels, got {blur}")
    if not (bool(jnp.isfinite(x).all()) and np.isfinite(poses0).all()):
        raise ValueError("images and start must be finite: found NaN or infinite values")
    widths = search_widths(family, half_width)
    search = partial(align_poses, family, half_widths=widths, num_grid=num_grid, blur=blur)
    blurred = gaussian_blur(x, blur, radius=_radius(blur))
    prototypes = np.asarray(family.apply(blurred, -jnp.asarray(poses0)))
    templates = _seed_templates(prototypes, count, np.random.default_rng([seed, 5]))
    compiled = jax.jit(search)
    for _ in range(rounds):
        poses, nearest, _ = compiled(x, jnp.asarray(poses0), jnp.asarray(templates))
        templates = _update(
            family, blurred, poses0, np.asarray(poses), np.asarray(nearest), templates
        )
    sizes = np.bincount(np.asarray(nearest), minlength=count)
    unblurred = partial(align_poses, family, half_widths=widths, num_grid=num_grid, blur=0.0)
    shared = _share_frame(family, jnp.asarray(templates), sizes, jax.jit(unblurred))
    return FrameTemplates(shared, widths, num_grid, float(blur), sizes)
