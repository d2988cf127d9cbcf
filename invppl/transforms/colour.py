"""Colour transformations: hue, saturation and value as commuting linear maps of RGB.

With g = (1, 1, 1)/√3 the grey axis, P = g gᵀ the projection onto it and K the
cross-product matrix of g (K v = g × v), the three generators

    hue:        K          (rotation of the chroma plane about the grey axis)
    saturation: I − P      (scaling of the chroma, i.e. the distance from grey)
    value:      I          (scaling of the brightness)

commute, so the colour map for η = (θ, s, v) has the closed form

    C(η) = expm(θ K + s (I − P) + v I) = e^v [P + e^s (cos θ (I − P) + sin θ K)].

θ is periodic with period 2π (a turn of 2π/3 sends pure red to pure green, as
in HSV); s and v are log-factors, so η = 0 is the identity and C(η)⁻¹ = C(−η).
The result is clipped to [0, 1] with a straight-through gradient, so gradients
with respect to η survive where the clip is active. Being per-pixel linear, a
colour map commutes with every spatial warp.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import jax
import jax.numpy as jnp
from jax import Array

from invppl.transforms.affine import check_eta, check_parameters
from invppl.transforms.interpolation import check_images
from invppl.transforms.support import Interval, NamedParameters, Periodic, Support, check_names

__all__ = ["COLOUR_NAMES", "Colour", "clip_straight_through", "colour_matrix"]

COLOUR_NAMES: tuple[str, ...] = ("hue", "saturation", "value")

DEFAULT_SUPPORTS: dict[str, Support] = {
    "hue": Periodic(),
    "saturation": Interval(-math.log(4.0), math.log(4.0)),
    "value": Interval(-math.log(2.0), math.log(2.0)),
}

_GREY = jnp.full((3,), 1.0 / math.sqrt(3.0))


def clip_straight_through(x: Array, low: float = 0.0, high: float = 1.0) -> Array:
    """Clips to ``[low, high]`` in the forward pass; the gradient is the identity's."""
    return x + jax.lax.stop_gradient(jnp.clip(x, low, high) - x)


def colour_matrix(eta: Array, names: Sequence[str]) -> Array:
    """The RGB map C(η) for the named colour parameters.

    Args:
        eta: ``(..., k)`` parameters, one per name (hue in radians; log-factors for
            saturation and value).
        names: ``k`` names from :data:`COLOUR_NAMES`.

    Returns:
        ``(..., 3, 3)`` matrices acting on RGB column vectors.

    Raises:
        ValueError: an unknown or repeated name; η's last axis is not k (a
            ``(batch,)`` hue would otherwise be read as one η, its first entry).
    """
    names = check_names(names, COLOUR_NAMES, "colour transformation")
    eta = check_parameters(eta, names, "colour_matrix")
    values = {n: eta[..., i] for i, n in enumerate(names)}
    zero = jnp.zeros(eta.shape[:-1], eta.dtype)
    theta = values.get("hue", zero)[..., None, None]
    log_sat = values.get("saturation", zero)[..., None, None]
    log_val = values.get("value", zero)[..., None, None]
    grey = _GREY.astype(eta.dtype)
    projection = jnp.outer(grey, grey)
    cross = jnp.array(
        [[0.0, -grey[2], grey[1]], [grey[2], 0.0, -grey[0]], [-grey[1], grey[0], 0.0]],
        dtype=eta.dtype,
    )
    chroma = jnp.eye(3, dtype=eta.dtype) - projection
    return jnp.exp(log_val) * (
        projection + jnp.exp(log_sat) * (jnp.cos(theta) * chroma + jnp.sin(theta) * cross)
    )


@dataclass(frozen=True)
class Colour(NamedParameters):
    """Hue, saturation and value shifts of RGB images.

    Args:
        names: any subset of ``("hue", "saturation", "value")``, in the order η lists them.
        supports: optional overrides of the declared supports, by name.
        clip: clip results to [0, 1] (straight-through gradient). Default True.

    >>> import jax.numpy as jnp
    >>> red = jnp.zeros((1, 1, 1, 3)).at[..., 0].set(1.0)
    >>> green = Colour(("hue",)).apply(red, jnp.array([[2 * jnp.pi / 3]]))
    >>> [round(float(c), 4) for c in green[0, 0, 0]]
    [0.0, 1.0, 0.0]
    """

    names: tuple[str, ...]
    supports: Mapping[str, Support] = field(default_factory=dict)
    clip: bool = True
    FAMILY: ClassVar[str] = "colour transformation"
    DEFAULT_SUPPORTS: ClassVar[Mapping[str, Support]] = DEFAULT_SUPPORTS

    def __post_init__(self) -> None:
        self._check_declaration()

    def matrix(self, eta: Array) -> Array:
        """``(..., k)`` parameters → ``(..., 3, 3)`` colour maps C(η)."""
        return colour_matrix(eta, self.names)

    def apply(self, images: Array, eta: Array) -> Array:
        """Recolours ``(batch, height, width, 3)`` RGB images by ``(batch, k)`` or ``(k,)`` η."""
        images = check_images(images)
        if images.shape[-1] != 3:
            raise ValueError(
                f"colour transformations need RGB images with 3 channels, got shape {images.shape}"
            )
        eta = check_eta(eta, self.dim, images.shape[0]).astype(images.dtype)
        matrices = jnp.broadcast_to(self.matrix(eta), (images.shape[0], 3, 3))
        out = jnp.einsum("bij,bhwj->bhwi", matrices, images)
        return clip_straight_through(out) if self.clip else out
