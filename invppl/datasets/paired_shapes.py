"""Pairs of dSprites-like shapes that share all factors but k (paired weak supervision).

The shapes are :mod:`invppl.datasets.dsprites`' (square, ellipse, heart),
drawn by its :func:`~invppl.datasets.dsprites.render_sprites`. Each factor
takes values on a grid, like dSprites' discrete factors::

    shape       the chosen shapes (absent if only one is chosen)
    scale       levels evenly spaced over [0.5, 1], ends included
    rotation    levels evenly spaced over [−π/4, π/4), the end left out: a
                square's rotation is periodic with period π/2, so −π/4 and
                π/4 draw the same square (a circular factor)
    pos_x/pos_y levels evenly spaced over [−0.6, 0.6], ends included
    hue         optional (``levels={"hue": L}``): L hues evenly spaced over
                [0, 1), the end left out (periodic), at full saturation and
                value; the images are then RGB

(:func:`shape_factor_space` changes the levels and ranges.) A factor's
*class* is its grid index, the discrete value that the disentanglement
metrics of :mod:`invppl.metrics.disentanglement` take; its *value* is what was
rendered (the shape's label for ``shape``).

**The law of one image.** Every class uniform and independent, or, with a
``correlation`` ρ ≠ 0, each correlated pair of factors (a, b) coupled (Träuble
et al., "On Disentangled Representations Learned from Correlated Data", ICML
2021, correlate e.g. x with y and scale with shape): the classes are
``floor(L · U)`` of uniforms U, and with probability w the pair shares one
uniform (b's is 1 − a's if ρ < 0), otherwise they are independent. The
marginals stay uniform, and ``w = |ρ| / c(L_a, L_b)``, with c the correlation of
two class indices cut from one uniform (1 when L_a = L_b), makes the Pearson
correlation of the two class indices exactly ρ.

**Pairs** (Locatello et al., "Weakly-Supervised Disentanglement Without
Compromises", ICML 2020): x1 follows the law above; x2 copies its factors and
changes k of them, chosen uniformly (k fixed, or uniform on 1 … f − 1 per
pair as in Locatello et al.). A changed factor always changes (the reference
sampler may redraw the old value):

- ``mode="exact"`` and ``"correlated"``: to a class drawn uniformly from the
  other classes (another shape, for ``shape``); ``"correlated"`` draws x1 from
  a correlated law (its default ρ is 0.8);
- ``mode="approximate"``: by ``step`` classes up or down (reflected at the
  ends; another shape for ``shape``), while each shared continuous factor
  jitters by up to ``tolerance`` level spacings (uniformly, clipped to the
  range), so that its class, the nearest level, is unchanged.

Everything is drawn by ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from invppl.datasets._checks import check_finite_scalar, check_int, check_seed
from invppl.datasets.dsprites import SHAPES, _check_supports, _chosen_shapes, render_sprites
from invppl.datasets.laws import UniformLaw

__all__ = [
    "DEFAULT_LEVELS",
    "DEFAULT_RANGES",
    "PAIR_MODES",
    "PairedShapes",
    "ShapeFactorSpace",
    "ShapeGroups",
    "hue_to_rgb",
    "make_paired_shapes",
    "shape_factor_space",
    "shapes_with_fixed_factor",
]

PAIR_MODES: tuple[str, ...] = ("exact", "approximate", "correlated")
"""How the two images of a pair relate (see the module docstring)."""

DEFAULT_LEVELS: dict[str, int] = {"scale": 6, "rotation": 10, "pos_x": 8, "pos_y": 8}
"""Grid levels of the continuous factors (``shape`` has one per chosen shape)."""

DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    "scale": (0.5, 1.0),
    "rotation": (-math.pi / 4, math.pi / 4),
    "pos_x": (-0.6, 0.6),
    "pos_y": (-0.6, 0.6),
}
"""Ranges of the continuous factors; rotation's upper end is left out of its grid."""

_CONTINUOUS = ("scale", "rotation", "pos_x", "pos_y")
_DEFAULT_CORRELATED = (("pos_x", "pos_y"), ("shape", "scale"))


@dataclass(frozen=True)
class ShapeFactorSpace:
    """The factors of one image and their law; build it with :func:`shape_factor_space`.

    Attributes:
        names: the factors, in column order: ``("shape", "scale", "rotation",
            "pos_x", "pos_y")``, without ``shape`` if only one shape is chosen.
        shapes: the chosen shape names, in :data:`~invppl.datasets.dsprites.SHAPES` order.
        grids: each factor's ``(L,)`` values (for ``shape``, the shape labels).
        correlation: ρ of each correlated pair's class indices (0: independent).
        correlated: the correlated pairs of factor names.
    """

    names: tuple[str, ...]
    shapes: tuple[str, ...]
    grids: tuple[np.ndarray, ...]
    correlation: float
    correlated: tuple[tuple[str, str], ...]

    @property
    def levels(self) -> np.ndarray:
        """``(f,)`` number of classes of each factor."""
        return np.array([grid.size for grid in self.grids])

    def values(self, classes: np.ndarray) -> np.ndarray:
        """The grid values ``(..., f)`` float64 of classes ``(..., f)``."""
        return np.stack([grid[classes[..., j]] for j, grid in enumerate(self.grids)], axis=-1)


def _grid(name: str, levels: int, low: float, high: float) -> np.ndarray:
    if name in ("rotation", "hue"):  # periodic (rotation for squares): leave the upper end out
        return low + (high - low) * np.arange(levels) / levels
    return np.linspace(low, high, levels)


def _tied_correlation(levels_a: int, levels_b: int) -> float:
    """Correlation of ``floor(L_a U)`` and ``floor(L_b U)`` for one uniform U, exactly."""
    cells = math.lcm(levels_a, levels_b)
    centres = (np.arange(cells) + 0.5) / cells
    a, b = np.floor(centres * levels_a), np.floor(centres * levels_b)
    return float(np.corrcoef(a, b)[0, 1])


def _check_ranges(ranges: Mapping[str, tuple[float, float]] | None) -> dict[str, tuple]:
    given = dict(ranges or {})
    unknown = sorted(set(given) - set(_CONTINUOUS))
    if unknown:
        raise ValueError(f"ranges names unknown factor(s) {unknown}; expected from {_CONTINUOUS}")
    resolved = {**DEFAULT_RANGES, **given}
    for name, pair in resolved.items():
        low, high = (check_finite_scalar(v, f"ranges[{name!r}] bound") for v in pair)
        if not low < high:
            raise ValueError(f"ranges[{name!r}] must have low < high, got {pair}")
        resolved[name] = (low, high)
    laws = {name: UniformLaw(*resolved[name]) for name in ("scale", "pos_x", "pos_y")}
    _check_supports("every shape", laws)
    return resolved


def _check_correlation(
    correlation: object, pairs: Sequence[tuple[str, str]] | None, names: tuple[str, ...], levels
) -> tuple[float, tuple[tuple[str, str], ...]]:
    rho = check_finite_scalar(correlation, "correlation")
    if pairs is None:
        pairs = tuple(p for p in _DEFAULT_CORRELATED if set(p) <= set(names))
    chosen = tuple((str(a), str(b)) for a, b in pairs)
    flat = [name for pair in chosen for name in pair]
    if len(set(flat)) != len(flat) or any(name not in names for name in flat):
        raise ValueError(
            f"correlated must pair distinct factors from {names}, each in one pair; got {chosen}"
        )
    for a, b in chosen:
        most = _tied_correlation(levels[names.index(a)], levels[names.index(b)])
        if abs(rho) > most + 1e-12:
            raise ValueError(
                f"correlation {rho} is beyond what factors {a!r} and {b!r} can reach with "
                f"{levels[names.index(a)]} and {levels[names.index(b)]} levels: |ρ| ≤ {most:.4f}"
            )
    return rho, chosen


def shape_factor_space(
    *,
    shapes: Sequence[str] = SHAPES,
    levels: Mapping[str, int] | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    correlation: float = 0.0,
    correlated: Sequence[tuple[str, str]] | None = None,
) -> ShapeFactorSpace:
    """The factor grid and law of one image, checked.

    Args:
        shapes: which shapes to draw (names from ``SHAPES``); with one, there
            is no ``shape`` factor.
        levels: overrides of :data:`DEFAULT_LEVELS`, each at least 2; a
            ``"hue"`` entry adds a colour factor (RGB images).
        ranges: overrides of :data:`DEFAULT_RANGES` as ``(low, high)``; scales
            must stay positive and positions keep every shape in frame.
        correlation: ρ, the Pearson correlation of each correlated pair's class indices.
        correlated: the pairs of factor names to correlate; by default
            ``("pos_x", "pos_y")`` and ``("shape", "scale")``.

    >>> space = shape_factor_space(levels={"rotation": 4})
    >>> space.names, space.levels.tolist()
    (('shape', 'scale', 'rotation', 'pos_x', 'pos_y'), [3, 6, 4, 8, 8])
    """
    chosen = _chosen_shapes(shapes)
    given = dict(levels or {})
    known = (*_CONTINUOUS, "hue")
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"levels names unknown factor(s) {unknown}; expected from {known}")
    drawn = _CONTINUOUS + (("hue",) if "hue" in given else ())
    counts = {
        name: check_int(given.get(name, DEFAULT_LEVELS.get(name)), f"levels[{name!r}]", minimum=2)
        for name in drawn
    }
    bounds = {**_check_ranges(ranges), "hue": (0.0, 1.0)}
    names = (("shape",) if len(chosen) > 1 else ()) + drawn
    grids = [_grid(name, counts[name], *bounds[name]) for name in drawn]
    if len(chosen) > 1:
        grids.insert(0, np.array([float(SHAPES.index(s)) for s in chosen]))
    rho, pairs = _check_correlation(correlation, correlated, names, [g.size for g in grids])
    return ShapeFactorSpace(names, chosen, tuple(grids), rho, pairs if rho else ())


@dataclass(frozen=True)
class PairedShapes:
    """Pairs of images that share all factors but ``k``, with the truth of both.

    Attributes:
        images1, images2: ``(n, size, size, c)`` float32 in [0, 1] (c = 3
            with a hue factor, else 1).
        factors1, factors2: ``(n, f)`` float32 rendered values, columns ``factor_names``.
        classes1, classes2: ``(n, f)`` int32 grid classes (nearest level).
        changed: ``(n, f)`` bool, the factors that x2 changes.
        k: ``(n,)`` int32, the number of changed factors of each pair.
        factor_names: the columns' names.
        mode: ``"exact"``, ``"approximate"`` or ``"correlated"``.
        space: the factor grid and the law of x1.
    """

    images1: np.ndarray
    images2: np.ndarray
    factors1: np.ndarray
    factors2: np.ndarray
    classes1: np.ndarray
    classes2: np.ndarray
    changed: np.ndarray
    k: np.ndarray
    factor_names: tuple[str, ...]
    mode: str
    space: ShapeFactorSpace


@dataclass(frozen=True)
class ShapeGroups:
    """Groups of images that share one factor's value (for the BetaVAE / FactorVAE scores).

    Attributes:
        images: ``(num_groups, group_size, size, size, c)`` float32 in [0, 1]
            (c = 3 with a hue factor, else 1).
        factors: ``(num_groups, group_size, f)`` float32 rendered values.
        classes: ``(num_groups, group_size, f)`` int32 grid classes.
        factor: the index of the factor shared within each group.
        factor_names: the columns' names.
    """

    images: np.ndarray
    factors: np.ndarray
    classes: np.ndarray
    factor: int
    factor_names: tuple[str, ...]


def _draw_classes(rng: np.random.Generator, n: int, space: ShapeFactorSpace) -> np.ndarray:
    """``(n, f)`` int64 classes of ``n`` images from the space's law (module docstring)."""
    levels = space.levels
    uniforms = rng.random((n, levels.size))
    for a, b in space.correlated:
        i, j = space.names.index(a), space.names.index(b)
        weight = abs(space.correlation) / _tied_correlation(int(levels[i]), int(levels[j]))
        tied = rng.random(n) < weight
        shared = uniforms[tied, i]
        uniforms[tied, j] = shared if space.correlation > 0 else 1.0 - shared
    return np.minimum(np.floor(uniforms * levels), levels - 1).astype(np.int64)


def _changed_mask(rng: np.random.Generator, counts: np.ndarray, num_factors: int) -> np.ndarray:
    """``(n, f)`` bool: for pair i, ``counts[i]`` distinct factors chosen uniformly."""
    ranks = np.argsort(rng.random((counts.size, num_factors)), axis=1)
    return ranks < counts[:, None]


def _move(
    rng: np.random.Generator,
    classes: np.ndarray,
    changed: np.ndarray,
    space: ShapeFactorSpace,
    step: int,
) -> np.ndarray:
    """``(n, f)`` classes of x2: each changed one to another class, the others kept.

    With ``step = 0`` a changed class is drawn uniformly from the other
    classes; otherwise it moves by ``±step`` (the sign uniform, reflected at
    the ends), except ``shape``, which has no neighbours and changes uniformly.
    """
    levels = space.levels
    offsets = 1 + np.floor(rng.random(classes.shape) * (levels - 1)).astype(np.int64)
    other = (classes + offsets) % levels
    if step:
        moved = classes + step * rng.choice(np.array([-1, 1]), size=classes.shape)
        moved = np.where((moved < 0) | (moved >= levels), 2 * classes - moved, moved)
        categorical = np.array([name == "shape" for name in space.names])
        other = np.where(categorical, other, moved)
    return np.where(changed, other, classes)


def _jitter(
    rng: np.random.Generator, values: np.ndarray, space: ShapeFactorSpace, tolerance: float
) -> np.ndarray:
    """``(n, f)`` values moved by up to ``tolerance`` level spacings, clipped to each grid's range.

    ``shape`` is left alone; a clipped value stays nearer its own level than any other.
    """
    jittered = values.copy()
    for j, (name, grid) in enumerate(zip(space.names, space.grids, strict=True)):
        if name == "shape":
            continue
        spacing = grid[1] - grid[0]
        noise = rng.uniform(-tolerance, tolerance, values.shape[0]) * spacing
        jittered[:, j] = np.clip(values[:, j] + noise, grid[0], grid[-1])
    return jittered


def hue_to_rgb(hue: np.ndarray) -> np.ndarray:
    """``(n, 3)`` RGB in [0, 1] of ``(n,)`` hues in [0, 1) at full saturation and value.

    >>> hue_to_rgb(np.array([0.0, 1 / 3, 2 / 3])).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    sixths = 6.0 * np.asarray(hue, dtype=np.float64)[:, None]
    return np.clip(
        np.abs(sixths - np.array([3.0, 2.0, 4.0])) * np.array([1, -1, -1])
        + np.array([-1.0, 2.0, 2.0]),
        0.0,
        1.0,
    )


def _render(values: np.ndarray, space: ShapeFactorSpace, size: int, supersample: int) -> np.ndarray:
    """``(n, size, size, c)`` images of ``(n, f)`` factor values (c = 3 with a hue, else 1)."""
    column = {name: values[:, j] for j, name in enumerate(space.names)}
    labels = column.get("shape", np.full(values.shape[0], SHAPES.index(space.shapes[0])))
    images = render_sprites(
        np.rint(labels).astype(np.int64),
        column["scale"],
        column["rotation"],
        column["pos_x"],
        column["pos_y"],
        size=size,
        supersample=supersample,
    )
    if "hue" not in column:
        return images
    return images * hue_to_rgb(column["hue"]).astype(np.float32)[:, None, None, :]


def _check_pair_arguments(
    k: int | Literal["uniform"], mode: str, step: object, tolerance: object, space: ShapeFactorSpace
) -> tuple[int | None, int, float]:
    """Checks ``k``, ``mode``, ``step`` and ``tolerance``; returns k (None: uniform), step, tol."""
    if mode not in PAIR_MODES:
        raise ValueError(f"mode must be one of {PAIR_MODES}, got {mode!r}")
    if (mode == "correlated") != (space.correlation != 0.0):
        raise ValueError(
            f"mode {mode!r} with a space of correlation {space.correlation}: use "
            "mode='correlated' exactly when the law of x1 is correlated"
        )
    num_factors = len(space.names)
    fixed = None
    if not (isinstance(k, str) and k == "uniform"):
        description = f"an integer in 1..{num_factors} (the number of factors) or 'uniform'"
        fixed = check_int(k, "k", minimum=1, maximum=num_factors, description=description)
    smallest = int(min(space.levels[j] for j, n in enumerate(space.names) if n != "shape"))
    step = check_int(step, "step", minimum=1, maximum=smallest - 1)
    tol = check_finite_scalar(tolerance, "tolerance")
    if not 0.0 <= tol < 0.5:
        raise ValueError(
            f"tolerance must be in [0, 0.5) level spacings, so that a jittered shared factor keeps "
            f"its class, got {tol}"
        )
    return fixed, step, tol


def make_paired_shapes(
    n: int,
    *,
    seed: int,
    k: int | Literal["uniform"] = 1,
    mode: str = "exact",
    space: ShapeFactorSpace | None = None,
    step: int = 1,
    tolerance: float = 0.25,
    size: int = 64,
    supersample: int = 4,
) -> PairedShapes:
    """Draws ``n`` pairs of shapes that share all factors but ``k`` (see the module docstring).

    Args:
        n: number of pairs, at least 1.
        seed: seed of ``numpy.random.default_rng``.
        k: changed factors per pair, 1 … f, or ``"uniform"`` for k uniform on 1 … f − 1.
        mode: ``"exact"``, ``"approximate"`` or ``"correlated"``.
        space: the factor grid and law (:func:`shape_factor_space`); by default
            the defaults, with ``correlation=0.8`` for ``mode="correlated"``.
        step: the classes a changed factor moves by in ``"approximate"`` mode.
        tolerance: the largest jitter of a shared factor in ``"approximate"``
            mode, in level spacings, in [0, 0.5).
        size: image height and width in pixels, at least 4.
        supersample: anti-aliasing points per pixel along each axis.

    Returns:
        :class:`PairedShapes`.

    >>> pairs = make_paired_shapes(4, seed=0, k=2, size=16)
    >>> pairs.images1.shape, (pairs.classes1 != pairs.classes2).sum(axis=1).tolist()
    ((4, 16, 16, 1), [2, 2, 2, 2])
    """
    n = check_int(n, "n", minimum=1)
    seed = check_seed(seed)
    size = check_int(size, "size", minimum=4)
    supersample = check_int(supersample, "supersample", minimum=1)
    if space is None:
        space = shape_factor_space(correlation=0.8 if mode == "correlated" else 0.0)
    fixed, step, tolerance = _check_pair_arguments(k, mode, step, tolerance, space)
    rng = np.random.default_rng(seed)
    num_factors = len(space.names)
    counts = np.full(n, fixed) if fixed is not None else rng.integers(1, num_factors, size=n)
    classes1 = _draw_classes(rng, n, space)
    changed = _changed_mask(rng, counts, num_factors)
    approximate = mode == "approximate"
    classes2 = _move(rng, classes1, changed, space, step if approximate else 0)
    values1, values2 = space.values(classes1), space.values(classes2)
    if approximate:
        values2 = np.where(changed, values2, _jitter(rng, values2, space, tolerance))
    return PairedShapes(
        images1=_render(values1, space, size, supersample),
        images2=_render(values2, space, size, supersample),
        factors1=values1.astype(np.float32),
        factors2=values2.astype(np.float32),
        classes1=classes1.astype(np.int32),
        classes2=classes2.astype(np.int32),
        changed=changed,
        k=counts.astype(np.int32),
        factor_names=space.names,
        mode=mode,
        space=space,
    )


def shapes_with_fixed_factor(
    num_groups: int,
    group_size: int,
    factor: int | str,
    *,
    seed: int,
    space: ShapeFactorSpace | None = None,
    size: int = 64,
    supersample: int = 4,
) -> ShapeGroups:
    """Draws groups of single images that share the value of one factor.

    Each group's first image is drawn from the space's law; the others copy
    its class of ``factor`` and draw every other factor afresh (as
    disentanglement_lib's BetaVAE and FactorVAE samplers do, also under a
    correlated law). This is what the metrics' ``GroupSampler`` asks for
    (:mod:`invppl.metrics.disentanglement.interventions` shows one).

    Args:
        num_groups, group_size: at least 1 each.
        factor: the shared factor, by index into ``space.names`` or by name.
        seed: seed of ``numpy.random.default_rng``.
        space: the factor grid and law (:func:`shape_factor_space`).
        size, supersample: as :func:`make_paired_shapes`.

    Returns:
        :class:`ShapeGroups`.

    >>> groups = shapes_with_fixed_factor(2, 3, "scale", seed=0, size=16)
    >>> groups.images.shape, bool((groups.classes[:, :, 1] == groups.classes[:, :1, 1]).all())
    ((2, 3, 16, 16, 1), True)
    """
    num_groups = check_int(num_groups, "num_groups", minimum=1)
    group_size = check_int(group_size, "group_size", minimum=1)
    seed = check_seed(seed)
    size = check_int(size, "size", minimum=4)
    supersample = check_int(supersample, "supersample", minimum=1)
    space = shape_factor_space() if space is None else space
    if isinstance(factor, str):
        if factor not in space.names:
            raise ValueError(f"unknown factor {factor!r}; expected one of {space.names}")
        factor = space.names.index(factor)
    factor = check_int(factor, "factor", minimum=0, maximum=len(space.names) - 1)
    rng = np.random.default_rng(seed)
    classes = _draw_classes(rng, num_groups * group_size, space).reshape(num_groups, group_size, -1)
    classes[:, :, factor] = classes[:, :1, factor]
    values = space.values(classes)
    images = _render(values.reshape(-1, len(space.names)), space, size, supersample)
    return ShapeGroups(
        images=images.reshape(num_groups, group_size, *images.shape[1:]),
        factors=values.astype(np.float32),
        classes=classes.astype(np.int32),
        factor=factor,
        factor_names=space.names,
    )
