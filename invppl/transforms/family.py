"""Choosing a transformation family by parameter names.

A model asks for its transformations by name, e.g.
``transform_family(["rotation", "tx", "hue"])``; this module returns the
family that acts with exactly those parameters, in that order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import jax.numpy as jnp
from jax import Array

from invppl.transforms.affine import AFFINE_NAMES, Affine, check_eta, check_names
from invppl.transforms.colour import COLOUR_NAMES, Colour
from invppl.transforms.interpolation import check_images
from invppl.transforms.support import Parameter, Support

__all__ = ["AffineColour", "TransformFamily", "move", "transform_family"]


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


def move(family: TransformFamily, images: Array, source: Array, target: Array) -> Array:
    """``T_target ∘ T_source⁻¹`` applied to ``images``, resampled once where possible.

    An image posed at ``source`` is taken back to the prototype's frame and on to
    ``target``. For the affine families the two maps are composed before the
    warp (one interpolation); colour maps commute, so their parameters add.
    Other families are applied in turn, taking ``T_η⁻¹ = T_{-η}`` (true of
    every family built as the exponential of generators).

    Args:
        family: a transformation family.
        images: ``(batch, height, width, channels)``.
        source, target: ``(batch, family.dim)`` or ``(family.dim,)``.

    >>> import jax.numpy as jnp
    >>> family = Affine(("rotation",))
    >>> images = jnp.zeros((2, 8, 8, 1)).at[:, 2, 4].set(1.0)
    >>> eta = jnp.array([[0.5], [-1.0]])
    >>> moved = family.apply(images, eta)
    >>> bool(jnp.allclose(move(family, moved, eta, eta), moved, atol=1e-5))
    True
    """
    images = check_images(images)
    source = check_eta(source, family.dim, images.shape[0])
    target = check_eta(target, family.dim, images.shape[0])
    if isinstance(family, Affine):
        both = family(target) << family(source).inverse()
        return both.apply(
            images, method=family.method, fill_mode=family.fill_mode, cval=family.cval
        )
    if isinstance(family, Colour):
        return family.apply(images, jnp.asarray(target) - jnp.asarray(source))
    if isinstance(family, AffineColour):
        split = family.affine.dim
        recoloured = move(family.colour, images, source[..., split:], target[..., split:])
        return move(family.affine, recoloured, source[..., :split], target[..., :split])
    return family.apply(family.apply(images, -source), target)
