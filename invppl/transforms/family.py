"""Choosing a transformation family by parameter names.

A model asks for its transformations by name, e.g.
``transform_family(["rotation", "tx", "hue"])``; this module returns the
family that acts with exactly those parameters, in that order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from jax import Array

from invppl.transforms.affine import AFFINE_NAMES, Affine, check_eta, check_names
from invppl.transforms.colour import COLOUR_NAMES, Colour
from invppl.transforms.interpolation import check_images
from invppl.transforms.support import Parameter, Support

__all__ = ["AffineColour", "TransformFamily", "transform_family"]


@runtime_checkable
class TransformFamily(Protocol):
    """What every transformation family offers."""

    @property
    def names(self) -> tuple[str, ...]: ...

    @property
    def parameters(self) -> tuple[Parameter, ...]: ...

    @property
    def dim(self) -> int: ...

    def apply(self, images: Array, eta: Array) -> Array:
        """``(batch, height, width, channels)`` images, ``(batch, dim)`` η → moved images."""
        ...


@dataclass(frozen=True)
class AffineColour:
    """An affine warp and a colour map together, η = (affine part, colour part).

    The colour map is per-pixel linear, so it commutes with the warp's
    interpolation; it is applied first and the image is resampled once.
    """

    affine: Affine
    colour: Colour

    @property
    def names(self) -> tuple[str, ...]:
        return self.affine.names + self.colour.names

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return self.affine.parameters + self.colour.parameters

    @property
    def dim(self) -> int:
        return self.affine.dim + self.colour.dim

    def apply(self, images: Array, eta: Array) -> Array:
        images = check_images(images)
        eta = check_eta(eta, self.dim, images.shape[0])
        split = self.affine.dim
        recoloured = self.colour.apply(images, eta[..., split:])
        return self.affine.apply(recoloured, eta[..., :split])


def transform_family(
    names: Sequence[str],
    *,
    supports: Mapping[str, Support] | None = None,
    **affine_options: object,
) -> Affine | Colour | AffineColour:
    """The family acting with the named parameters.

    Args:
        names: parameter names from the affine family (``"tx"``, ``"ty"``,
            ``"rotation"``, ``"log_scale_x"``, ``"log_scale_y"``, ``"shear"``) and the
            colour family (``"hue"``, ``"saturation"``, ``"value"``); affine names
            first when both are present.
        supports: optional support overrides by name.
        affine_options: ``method``, ``fill_mode``, ``cval`` for the affine part.

    >>> transform_family(["rotation", "hue"]).names
    ('rotation', 'hue')
    """
    names = check_names(names, AFFINE_NAMES + COLOUR_NAMES, "transformation")
    supports = dict(supports or {})
    affine_names = tuple(n for n in names if n in AFFINE_NAMES)
    colour_names = tuple(n for n in names if n in COLOUR_NAMES)
    if affine_names and colour_names and names != affine_names + colour_names:
        raise ValueError(
            f"list affine names before colour names, e.g. {affine_names + colour_names}, "
            f"got {names}"
        )

    def pick(selected: tuple[str, ...]) -> dict[str, Support]:
        return {n: s for n, s in supports.items() if n in selected}

    unknown_supports = set(supports) - set(names)
    if unknown_supports:
        raise ValueError(f"supports given for names not requested: {sorted(unknown_supports)}")
    affine = (
        Affine(affine_names, pick(affine_names), **affine_options)  # type: ignore[arg-type]
        if affine_names
        else None
    )
    colour = Colour(colour_names, pick(colour_names)) if colour_names else None
    if affine is not None and colour is not None:
        return AffineColour(affine, colour)
    if affine is not None:
        return affine
    assert colour is not None
    return colour
