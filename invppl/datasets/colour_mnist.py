"""Coloured digits with known hue and saturation shifts, drawn per class.

A grey digit t(u) ∈ [0, 1] is first painted in a base colour b, x(u) = t(u) b,
then recoloured by ``invppl.transforms.Colour(("hue", "saturation"))`` with
η = (hue, saturation): the chroma (the colour minus its grey part) is turned
by the hue angle about the grey axis (2π/3 takes red to green) and scaled by
e^saturation.

The default base colour (1, 0.25, 0.25) is a red whose every hue rotation, and
every desaturation (saturation ≤ 0), stays inside the RGB cube: its grey part
is 0.5 and its chroma has radius 0.5 per channel. The colour map is linear, so
no pixel is clipped and the image's hue is exactly the base hue plus the drawn
shift. (Pure red, (1, 0, 0), would be clipped, bending hues by up to ~9°.)
Hue angles are measured in the chroma plane from the red axis towards green.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from invppl.datasets._checks import (
    check_images,
    check_labels,
    check_seed,
    select_classes,
)
from invppl.datasets.laws import LawLike, UniformLaw, laws_by_class, sample_by_class

__all__ = ["DEFAULT_BASE_COLOUR", "ColourMNIST", "chroma_angle", "colour_mnist"]

DEFAULT_BASE_COLOUR: tuple[float, float, float] = (1.0, 0.25, 0.25)
"""A red that stays in gamut under every hue rotation and every desaturation."""

_DEFAULT_HUE = UniformLaw(-math.pi, math.pi)
_DEFAULT_SATURATION = UniformLaw(-math.log(4.0), 0.0)

# an orthonormal basis of the chroma plane: e1 along red's chroma, e2 = g × e1
_E1 = np.array([2.0, -1.0, -1.0]) / math.sqrt(6.0)
_E2 = np.array([0.0, 1.0, -1.0]) / math.sqrt(2.0)


@dataclass(frozen=True)
class ColourMNIST:
    """Coloured images with their true colour shifts.

    Attributes
    ----------
    images
        Shape ``(n, height, width, 3)``, float32 RGB in [0, 1].
    labels
        Shape ``(n,)``, int32 classes of the selected images.
    hue
        Shape ``(n,)``, float32 hue shifts in radians relative to the base
        colour, as drawn (not wrapped).
    saturation
        Shape ``(n,)``, float32 saturation log-factors.
    laws
        ``{"hue": {class: law}, "saturation": {class: law}}``.
    base_colour
        The RGB base colour the grey digits were painted in.
    indices
        Shape ``(n,)``, int64 positions of the selected images in the input.
    """

    images: np.ndarray
    labels: np.ndarray
    hue: np.ndarray
    saturation: np.ndarray
    laws: Mapping[str, Mapping[int, LawLike]]
    base_colour: tuple[float, float, float]
    indices: np.ndarray


def chroma_angle(rgb: np.ndarray) -> np.ndarray:
    """The hue angle of RGB colours: the chroma's angle from the red axis towards green.

    Parameters
    ----------
    rgb
        Shape ``(..., 3)`` colours.

    Returns
    -------
    numpy.ndarray
        Shape ``(...)`` angles in (−π, π], float64; 0 for pure red, 2π/3 for green.
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    return np.arctan2(rgb @ _E2, rgb @ _E1)


def _check_base_colour(base_colour: Sequence[float]) -> tuple[float, float, float]:
    colour = np.asarray(base_colour, dtype=np.float64)
    if colour.shape != (3,) or not np.all(np.isfinite(colour)):
        raise ValueError(f"base_colour must be 3 finite RGB values, got {base_colour!r}")
    if np.any(colour < 0) or np.any(colour > 1):
        raise ValueError(f"base_colour must lie in [0, 1]^3, got {base_colour!r}")
    chroma = colour - colour.mean()
    if np.linalg.norm(chroma) < 1e-6:
        raise ValueError(
            f"base_colour {base_colour!r} is grey, so it has no hue to shift; "
            "choose a colour such as (1.0, 0.25, 0.25)"
        )
    return (float(colour[0]), float(colour[1]), float(colour[2]))


def _draw_shifts(
    selected: np.ndarray,
    hue: LawLike | Mapping[int, LawLike] | None,
    saturation: LawLike | Mapping[int, LawLike] | None,
    seed: int,
) -> tuple[dict[int, LawLike], dict[int, LawLike], np.ndarray, np.ndarray]:
    """Each class's hue and saturation laws, then the draws for labels ``selected`` ``(n,)``.

    Returns ``(hue_laws, saturation_laws, hues, saturations)``, the draws
    ``(n,)`` float32; all hues are drawn before the saturations, from one
    ``default_rng(seed)``.
    """
    present = np.unique(selected).tolist()
    hue_laws = laws_by_class(_DEFAULT_HUE if hue is None else hue, present, name="hue")
    saturation_laws = laws_by_class(
        _DEFAULT_SATURATION if saturation is None else saturation, present, name="saturation"
    )
    rng = np.random.default_rng(seed)
    hues = sample_by_class(hue_laws, selected, rng, name="hue").astype(np.float32)
    saturations = sample_by_class(saturation_laws, selected, rng, name="saturation")
    return hue_laws, saturation_laws, hues, saturations.astype(np.float32)


def _paint(
    grey: np.ndarray, colour: tuple[float, float, float], hues: np.ndarray, saturations: np.ndarray
) -> np.ndarray:
    """Grey digits ``(n, height, width, 1)`` painted in ``colour``, then shifted: ``(n, h, w, 3)``.

    float32 in [0, 1]; ``hues`` and ``saturations`` are ``(n,)`` float32.
    """
    import jax.numpy as jnp

    from invppl.transforms import Colour

    painted = grey.astype(np.float32) * np.asarray(colour, dtype=np.float32)
    eta = jnp.asarray(np.stack([hues, saturations], axis=1))
    recoloured = np.asarray(Colour(("hue", "saturation")).apply(jnp.asarray(painted), eta))
    return np.clip(recoloured, 0.0, 1.0).astype(np.float32)


def colour_mnist(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int,
    hue: LawLike | Mapping[int, LawLike] | None = None,
    saturation: LawLike | Mapping[int, LawLike] | None = None,
    base_colour: Sequence[float] = DEFAULT_BASE_COLOUR,
    classes: Sequence[int] | None = None,
) -> ColourMNIST:
    """Paints grey digits in a base colour and shifts hue and saturation by random amounts.

    Parameters
    ----------
    images
        Shape ``(n, height, width, 1)``, floating point grey images in [0, 1].
    labels
        Shape ``(n,)`` integer classes.
    seed
        Seed of ``numpy.random.default_rng``; hues are drawn first (class by
        class), then saturations.
    hue
        Law of the hue shift in radians, one for all classes or a mapping
        class → law. Default U(−π, π).
    saturation
        Law of the saturation log-factor, likewise. Default U(−log 4, 0), which
        only desaturates and so never leaves the RGB cube.
    base_colour
        RGB in [0, 1]^3, not grey. See the module docstring for why the
        default is not pure red.
    classes
        Keep only images of these classes (all if omitted).

    Returns
    -------
    ColourMNIST
        ``images`` ``(n, height, width, 3)``, ``labels``, the drawn ``hue`` and
        ``saturation``, the ``laws``, ``base_colour`` and ``indices``.

    Raises
    ------
    ValueError
        For images that are not a finite floating ``(n, height, width, 1)``
        batch in [0, 1], mismatched labels, a grey or out-of-range base
        colour, a class selection that keeps nothing, or a per-class mapping
        that misses a class.

    >>> import numpy as np
    >>> grey = np.ones((2, 4, 4, 1), dtype=np.float32)
    >>> data = colour_mnist(grey, np.array([3, 5]), seed=0)
    >>> data.images.shape
    (2, 4, 4, 3)
    """
    images = check_images(images, channels=1, unit_interval=True)
    labels = check_labels(labels, images.shape[0])
    seed = check_seed(seed)
    colour = _check_base_colour(base_colour)

    indices = select_classes(labels, classes)
    selected = labels[indices]
    hue_laws, saturation_laws, hues, saturations = _draw_shifts(selected, hue, saturation, seed)
    return ColourMNIST(
        images=_paint(images[indices], colour, hues, saturations),
        labels=selected.astype(np.int32),
        hue=hues,
        saturation=saturations,
        laws={"hue": hue_laws, "saturation": saturation_laws},
        base_colour=colour,
        indices=indices.astype(np.int64),
    )
