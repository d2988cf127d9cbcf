"""Procedural dSprites-like images with known per-shape transformation laws.

Three shapes (after Matthey et al.'s dSprites) are drawn in white on black.
Each is defined in its own frame (u to the right, v up) inside the unit disc:

- ``square`` (label 0): ``max(abs(u), abs(v)) ≤ 1/√2``, corners on the circle;
  symmetric under C4, turns of 90°.
- ``ellipse`` (label 1): ``u² + (2v)² ≤ 1``, axes 2:1 with the long axis along
  u; symmetric under C2, turns of 180°.
- ``heart`` (label 2): ``(x² + y² − 1)³ − x² y³ ≤ 0``, upright like ♥ (lobes
  up, tip down); no rotation symmetry.

Every shape fits its frame's unit disc, centred on its centre of mass (for the
heart, x = ρu and y = ρv + c with c its centroid height and ρ = 1 + c the
distance from the centroid to its tip). An image shows the shape moved by a
similarity transform with factors

    world = (pos_x, pos_y) + BASE_RADIUS · scale · Rot(rotation) · (u, v)

in the normalised coordinates of :mod:`invppl.transforms`: x to the right, y
up, origin at the image centre, the image spanning [-1, 1]; rotation in
radians, counter-clockwise positive as displayed. So ``(pos_x, pos_y)`` is the
shape's centre of mass and its area is ``SHAPE_AREAS[shape] · (BASE_RADIUS ·
scale)²``. Because of the symmetries, a square's rotation is identifiable only
modulo π/2 and an ellipse's modulo π: a square at θ and at θ + π/2 give the
same image.

Pixels are anti-aliased by supersampling: each pixel's value is the fraction
of a ``supersample × supersample`` grid of points inside the shape.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from invppl.datasets._checks import check_int, check_seed
from invppl.datasets.laws import DeltaLaw, Law, LawLike, UniformLaw, draw

__all__ = [
    "BASE_RADIUS",
    "DEFAULT_LAWS",
    "FACTORS",
    "SHAPES",
    "SHAPE_AREAS",
    "SYMMETRY_ORDER",
    "DSprites",
    "make_dsprites",
    "render_sprites",
]

SHAPES: tuple[str, ...] = ("square", "ellipse", "heart")
"""Shape names; a shape's label is its index here."""

FACTORS: tuple[str, ...] = ("scale", "rotation", "pos_x", "pos_y")
"""The per-image factors, in the order they are drawn."""

BASE_RADIUS = 0.35
"""Radius (normalised units) of the disc around a shape of scale 1; the image spans [-1, 1]."""

SYMMETRY_ORDER: dict[str, int] = {"square": 4, "ellipse": 2, "heart": 1}
"""Order of each shape's rotation symmetry group: rotation is identifiable modulo 2π / order."""

_HEART_AREA = 3.661972725818273
"""Area of (x² + y² − 1)³ − x² y³ ≤ 0 (by quadrature of its polar form)."""
_HEART_CENTROID_Y = 0.29348122728179016
"""Height of its centre of mass; its farthest point from there is the tip (0, −1)."""
_HEART_RHO = 1.0 + _HEART_CENTROID_Y

SHAPE_AREAS: dict[str, float] = {
    "square": 2.0,
    "ellipse": math.pi / 2.0,
    "heart": _HEART_AREA / _HEART_RHO**2,
}
"""Each shape's area in its own frame (unit disc); multiply by (BASE_RADIUS · scale)²."""

_POSITION = UniformLaw(-0.6, 0.6)
_SCALE = UniformLaw(0.5, 1.0)
DEFAULT_LAWS: dict[str, dict[str, Law]] = {
    "square": {
        "scale": _SCALE,
        "rotation": UniformLaw(-math.pi / 4, math.pi / 4),
        "pos_x": _POSITION,
        "pos_y": _POSITION,
    },
    "ellipse": {
        "scale": _SCALE,
        "rotation": UniformLaw(-math.pi / 2, math.pi / 2),
        "pos_x": _POSITION,
        "pos_y": _POSITION,
    },
    "heart": {
        "scale": _SCALE,
        "rotation": DeltaLaw(0.0),
        "pos_x": _POSITION,
        "pos_y": _POSITION,
    },
}
"""Defaults: scale U(0.5, 1), positions U(−0.6, 0.6); each square and ellipse
orientation once (U(−π/4, π/4), U(−π/2, π/2)); hearts upright (rotation 0)."""


@dataclass(frozen=True)
class DSprites:
    """Rendered shapes with their true factors.

    Attributes
    ----------
    images
        Shape ``(n, size, size, 1)``, float32 in [0, 1].
    labels
        Shape ``(n,)``, int32 shape labels: 0 square, 1 ellipse, 2 heart.
    factors
        Mapping factor name (``"scale"``, ``"rotation"``, ``"pos_x"``,
        ``"pos_y"``) → shape ``(n,)`` float32 values as drawn.
    laws
        Mapping shape name → factor name → the law that drew it, for the
        shapes that could be drawn.
    shape_names
        :data:`SHAPES`, so that ``shape_names[label]`` names a label.
    """

    images: np.ndarray
    labels: np.ndarray
    factors: Mapping[str, np.ndarray]
    laws: Mapping[str, Mapping[str, LawLike]]
    shape_names: tuple[str, ...] = SHAPES


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test in a shape's own frame (unit disc), elementwise."""
    if shape == 0:
        half = np.float32(1.0 / math.sqrt(2.0))
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if shape == 1:
        return u * u + 4.0 * v * v <= 1.0
    x = np.float32(_HEART_RHO) * u
    y = np.float32(_HEART_RHO) * v + np.float32(_HEART_CENTROID_Y)
    x2 = x * x
    radial = x2 + y * y - 1.0
    return radial * radial * radial <= x2 * y * y * y


def _coordinates(size: int, supersample: int) -> np.ndarray:
    """Normalised coordinates of the supersampling points along one axis, shape ``(size·k,)``."""
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    positions = (np.arange(size)[:, None] + offsets[None, :]).reshape(-1)
    return ((positions - (size - 1) / 2.0) / (size / 2.0)).astype(np.float32)


def render_sprites(
    labels: np.ndarray,
    scale: np.ndarray,
    rotation: np.ndarray,
    pos_x: np.ndarray,
    pos_y: np.ndarray,
    *,
    size: int = 64,
    supersample: int = 4,
    batch_size: int = 64,
) -> np.ndarray:
    """Renders shapes with given factors (see the module docstring for the conventions).

    Parameters
    ----------
    labels
        Shape ``(n,)`` integer shape labels in {0, 1, 2}.
    scale, rotation, pos_x, pos_y
        Shape ``(n,)`` factors: scale > 0, rotation in radians, centre in
        normalised coordinates.
    size
        Image height and width in pixels, at least 4.
    supersample
        Points per pixel along each axis for anti-aliasing (1 turns it off).
    batch_size
        Images rendered per vectorised step, to bound memory.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, size, size, 1)``, float32 in [0, 1].

    >>> image = render_sprites(np.array([0]), np.array([1.0]), np.array([0.0]),
    ...                        np.array([0.0]), np.array([0.0]), size=16)
    >>> image.shape
    (1, 16, 16, 1)
    """
    size = check_int(size, "size", minimum=4)
    supersample = check_int(supersample, "supersample", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be integers of shape (n,), got {labels.dtype} {labels.shape}"
        )
    n = labels.shape[0]
    if np.any((labels < 0) | (labels >= len(SHAPES))):
        raise ValueError(f"labels must be in 0..{len(SHAPES) - 1} ({SHAPES}), got {labels}")
    factors = {}
    for name, values in zip(FACTORS, (scale, rotation, pos_x, pos_y), strict=True):
        array = np.asarray(values, dtype=np.float64)
        if array.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},) like labels, got {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} contains NaN or infinite values")
        factors[name] = array
    if np.any(factors["scale"] <= 0):
        raise ValueError(f"scale must be positive, got minimum {factors['scale'].min()}")

    axis = _coordinates(size, supersample)
    xs, ys = axis, -axis  # columns run right (x), rows run down (−y)
    images = np.zeros((n, size, size, 1), dtype=np.float32)
    for shape in range(len(SHAPES)):
        members = np.flatnonzero(labels == shape)
        for start in range(0, members.size, batch_size):
            batch = members[start : start + batch_size]
            radius = BASE_RADIUS * factors["scale"][batch]
            cos = (np.cos(factors["rotation"][batch]) / radius).astype(np.float32)
            sin = (np.sin(factors["rotation"][batch]) / radius).astype(np.float32)
            dx = (xs[None, :] - factors["pos_x"][batch, None].astype(np.float32))[:, None, :]
            dy = (ys[None, :] - factors["pos_y"][batch, None].astype(np.float32))[:, :, None]
            c, s = cos[:, None, None], sin[:, None, None]
            u = c * dx + s * dy
            v = c * dy - s * dx
            inside = _inside(shape, u, v)
            blocks = inside.reshape(batch.size, size, supersample, size, supersample)
            coverage = blocks.mean(axis=(2, 4), dtype=np.float32)
            images[batch, :, :, 0] = coverage
    return images


def _resolve_laws(
    laws: Mapping[str, Mapping[str, LawLike]] | None, shapes: tuple[str, ...]
) -> dict[str, dict[str, LawLike]]:
    given = dict(laws or {})
    unknown = sorted(set(given) - set(SHAPES))
    if unknown:
        raise ValueError(f"laws given for unknown shape(s) {unknown}; expected names from {SHAPES}")
    unused = sorted(set(given) - set(shapes))
    if unused:
        raise ValueError(f"laws given for shape(s) {unused} that are not drawn (shapes={shapes})")
    resolved: dict[str, dict[str, LawLike]] = {}
    for shape in shapes:
        overrides = dict(given.get(shape, {}))
        bad = sorted(set(overrides) - set(FACTORS))
        if bad:
            raise ValueError(
                f"laws[{shape!r}] names unknown factor(s) {bad}; expected names from {FACTORS}"
            )
        resolved[shape] = {**DEFAULT_LAWS[shape], **overrides}
        for factor, law in resolved[shape].items():
            if not (isinstance(law, Law) or callable(law)):
                raise TypeError(
                    f"laws[{shape!r}][{factor!r}] must be a law object or a callable "
                    f"(rng, n) -> values, got {type(law).__name__}"
                )
        _check_supports(shape, resolved[shape])
    return resolved


def _check_supports(shape: str, laws: Mapping[str, LawLike]) -> None:
    """Checks, from the supports of law objects, that every draw stays positive and in frame."""
    scale = laws["scale"]
    if not isinstance(scale, Law):
        return
    low, high = scale.support
    if low <= 0:
        raise ValueError(
            f"the scale law of {shape!r} has support [{low}, {high}]; scales must be > 0"
        )
    room = 1.0 - BASE_RADIUS * high
    for factor in ("pos_x", "pos_y"):
        law = laws[factor]
        if isinstance(law, Law):
            pos_low, pos_high = law.support
            if max(abs(pos_low), abs(pos_high)) > room + 1e-12:
                raise ValueError(
                    f"the {factor} law of {shape!r} has support [{pos_low}, {pos_high}], but a "
                    f"shape of scale up to {high} stays in frame only for |{factor}| ≤ {room:.4g}"
                )


def _check_in_frame(factors: Mapping[str, np.ndarray], labels: np.ndarray) -> None:
    if np.any(factors["scale"] <= 0):
        index = int(np.argmin(factors["scale"]))
        raise ValueError(
            f"a scale law of {SHAPES[labels[index]]!r} drew {factors['scale'][index]}; "
            "scales must be > 0"
        )
    reach = BASE_RADIUS * factors["scale"]
    for factor in ("pos_x", "pos_y"):
        overshoot = np.abs(factors[factor]) + reach - 1.0
        if np.any(overshoot > 1e-9):
            index = int(np.argmax(overshoot))
            raise ValueError(
                f"the {factor} law of {SHAPES[labels[index]]!r} drew {factors[factor][index]:.4g} "
                f"for a shape of scale {factors['scale'][index]:.4g}, which leaves the frame: "
                f"|{factor}| + {BASE_RADIUS} · scale must be ≤ 1"
            )


def _chosen_shapes(shapes: Sequence[str]) -> tuple[str, ...]:
    """The selected shape names in :data:`SHAPES` order; raises for none or an unknown one."""
    if isinstance(shapes, str):
        raise TypeError(f"shapes must be a sequence of names, e.g. ({shapes!r},)")
    chosen = tuple(shapes)
    if not chosen:
        raise ValueError(f"shapes selects no shape; choose from {SHAPES}")
    unknown = sorted(set(chosen) - set(SHAPES))
    if unknown:
        raise ValueError(f"unknown shape(s) {unknown}; expected names from {SHAPES}")
    return tuple(s for s in SHAPES if s in chosen)


def _draw_factors(
    n: int, chosen: tuple[str, ...], laws: Mapping[str, Mapping[str, LawLike]], seed: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``n`` shape labels drawn uniformly from ``chosen``, then each shape's factors by its laws.

    Returns the labels ``(n,)`` and ``{factor: (n,) float64}``; one
    ``default_rng(seed)`` draws the labels, then shape by shape and factor by
    factor (in :data:`FACTORS` order).
    """
    rng = np.random.default_rng(seed)
    ids = np.asarray([SHAPES.index(s) for s in chosen])
    labels = ids[rng.integers(len(ids), size=n)]
    factors = {name: np.zeros(n, dtype=np.float64) for name in FACTORS}
    for shape in chosen:
        members = labels == SHAPES.index(shape)
        count = int(members.sum())
        for name in FACTORS:
            factors[name][members] = draw(
                laws[shape][name], rng, count, name=f"laws[{shape!r}][{name!r}]"
            )
    return labels, factors


def make_dsprites(
    n: int,
    *,
    seed: int,
    size: int = 64,
    laws: Mapping[str, Mapping[str, LawLike]] | None = None,
    shapes: Sequence[str] = SHAPES,
    supersample: int = 4,
) -> DSprites:
    """Draws ``n`` shapes with per-shape factor laws and renders them.

    Each image's shape is drawn uniformly from ``shapes``; then, shape by
    shape (in :data:`SHAPES` order) and factor by factor (in :data:`FACTORS`
    order), the factors of all images of that shape are drawn from its laws.

    Parameters
    ----------
    n
        Number of images, at least 1.
    seed
        Seed of ``numpy.random.default_rng``.
    size
        Image height and width in pixels (64 like dSprites; 16 or 28 for tests).
    laws
        Per-shape overrides of :data:`DEFAULT_LAWS`: shape name → factor name →
        law object or callable ``(rng, n) -> values``, e.g.
        ``{"heart": {"rotation": DeltaLaw(0.0)}, "square": {"rotation":
        UniformLaw(-pi / 4, pi / 4)}}``. Unspecified factors keep the defaults.
        Scales must be positive and positions must keep the shape in frame,
        ``|pos| + BASE_RADIUS · scale ≤ 1``.
    shapes
        Which shapes to draw (names from :data:`SHAPES`).
    supersample
        Anti-aliasing points per pixel along each axis.

    Returns
    -------
    DSprites
        ``images`` ``(n, size, size, 1)``, shape ``labels`` ``(n,)``,
        ``factors`` (each ``(n,)``) and the ``laws`` used.

    Raises
    ------
    ValueError
        If ``n < 1``, ``size < 4``, a shape or factor name is unknown, or a
        law can draw a non-positive scale or an out-of-frame position.

    >>> data = make_dsprites(6, seed=0, size=16)
    >>> data.images.shape, sorted(data.factors)
    ((6, 16, 16, 1), ['pos_x', 'pos_y', 'rotation', 'scale'])
    """
    n = check_int(n, "n", minimum=1)
    seed = check_seed(seed)
    size = check_int(size, "size", minimum=4)
    supersample = check_int(supersample, "supersample", minimum=1)
    chosen = _chosen_shapes(shapes)
    resolved = _resolve_laws(laws, chosen)
    labels, factors = _draw_factors(n, chosen, resolved, seed)
    _check_in_frame(factors, labels)
    truth = {name: values.astype(np.float32) for name, values in factors.items()}
    images = render_sprites(
        labels,
        truth["scale"],
        truth["rotation"],
        truth["pos_x"],
        truth["pos_y"],
        size=size,
        supersample=supersample,
    )
    return DSprites(images=images, labels=labels.astype(np.int32), factors=truth, laws=resolved)
