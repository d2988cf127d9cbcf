"""How far a network is from invariance, locally: the Lie derivative along each generator.

Gruver et al., "The Lie derivative for measuring learned equivariance" (ICLR
2023), measure a classifier's local equivariance error (LEE) along a
transformation's generator by the Lie derivative of its predicted class
probabilities::

    L_k f(x) = d/dt softmax(f(T_{t e_k} x)) at t = 0          (K classes)
    LEE_k(x) = (1/K) Σ_c |L_k f(x)_c|,

averaged over examples: the normalisation of their reference code
(``lee/e2e_lee.py``: the Lie derivative of ``softmax(model(x))``, ``.abs()``,
``.mean(-1)`` per example, then the mean over the data). For outputs that are
not class logits (``outputs="raw"``) the same mean absolute value is taken
over every output entry of an example.

Units. The derivative is per unit of η in invppl's parameterisation: radians
for ``rotation``, ``shear`` and ``hue``; log-factors for ``log_scale_x``,
``log_scale_y``, ``saturation`` and ``value``; normalised coordinates for
``tx`` and ``ty``, in which the longer image side spans [−1, 1] edge to edge
(one unit is ``max(height, width) / 2`` pixels). Gruver et al.'s translations
use ``affine_grid(align_corners=True)`` units ((width − 1) / 2 pixels), so an
invppl translation LEE is theirs times width / (width − 1). Their
"saturate" (x ↦ (1 + t) x) is invppl's ``value`` generator.

The derivative itself is :func:`invppl.transforms.lie.lie_derivatives`: one
``jax.jvp`` through the family's warp (one resampling); prefer
``method="bicubic"`` (see that module on interpolation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import jax
import jax.numpy as jnp
from jax import Array

from invppl.transforms.lie import check_generators, lie_derivatives

__all__ = ["OUTPUT_KINDS", "LocalEquivarianceError", "local_equivariance_error"]

OutputKind = Literal["probabilities", "raw"]
OUTPUT_KINDS: tuple[str, ...] = ("probabilities", "raw")


@jax.tree_util.register_dataclass
@dataclass(frozen=True, eq=False)
class LocalEquivarianceError:
    """The result of :func:`local_equivariance_error` (a pytree: it can leave ``jax.jit``).

    Attributes:
        names: the generators' parameter names, in the order chosen.
        per_example: ``(batch, generators)`` LEE_k(x) of each image.
    """

    names: tuple[str, ...] = field(metadata={"static": True})
    per_example: Array

    @property
    def mean(self) -> dict[str, float]:
        """The LEE of each generator averaged over the examples, by name."""
        means = jnp.mean(self.per_example, axis=0)
        return {name: float(value) for name, value in zip(self.names, means, strict=True)}


def local_equivariance_error(
    function: Callable[[Array], Array],
    images: Array,
    family: object,
    generators: int | str | Sequence[int | str] | None = None,
    *,
    outputs: OutputKind = "probabilities",
    equivariant: bool = False,
) -> LocalEquivarianceError:
    """Gruver et al.'s local equivariance error of ``function`` along each chosen generator.

    Args:
        function: ``(batch, height, width, channels)`` images → ``(batch, ...)``
            outputs, row by row: class logits ``(batch, classes)`` for
            ``outputs="probabilities"``.
        images: ``(batch, height, width, channels)``.
        family: a continuous transformation family (:class:`~invppl.transforms.Affine`,
            :class:`~invppl.transforms.Colour`, :class:`~invppl.transforms.AffineColour`).
        generators: indices into η or parameter names; ``None`` for all.
        outputs: ``"probabilities"`` differentiates ``softmax(function(x))`` over
            the last axis, as Gruver et al. do for classifiers; ``"raw"`` the
            outputs themselves.
        equivariant: the outputs are images moved back by T_{−t e_k} before
            differentiating (equivariance rather than invariance).

    Returns:
        A :class:`LocalEquivarianceError`: LEE_k(x) = mean over an example's
        output entries of the absolute value of L_k f(x), per example and generator.

    Raises:
        ValueError: an unknown ``outputs``; a discrete family, a generator out
            of range or unknown, ``"nearest"`` interpolation (see
            :func:`invppl.transforms.lie.check_generators`).

    A blob above the centre, turning: its mass is invariant, its x-centroid
    moves at −c_y = −0.375 per radian, so the mean absolute derivative over
    the two outputs is 0.1875.

    >>> import jax.numpy as jnp
    >>> from invppl.transforms import Affine
    >>> images = jnp.zeros((2, 8, 8, 1)).at[:, 1:4, 3:5].set(1.0)
    >>> x = (jnp.arange(8) - 3.5) / 4.0  # normalised x of each column
    >>> def mass_and_centroid(im):
    ...     mass = im.sum((1, 2, 3))
    ...     return jnp.stack([mass, (im[..., 0] * x).sum((1, 2)) / mass], axis=-1)
    >>> family = Affine(("rotation", "tx"), method="bicubic")
    >>> error = local_equivariance_error(mass_and_centroid, images, family, outputs="raw")
    >>> error.per_example.shape, {k: round(v, 4) for k, v in error.mean.items()}
    ((2, 2), {'rotation': 0.1875, 'tx': 0.5})
    """
    if outputs not in OUTPUT_KINDS:
        raise ValueError(f"unknown outputs {outputs!r}; expected one of {OUTPUT_KINDS}")
    indices = check_generators(family, generators)
    names = tuple(family.parameters[k].name for k in indices)  # type: ignore[attr-defined]

    def measured(batch: Array) -> Array:
        values = function(batch)
        return jax.nn.softmax(values, axis=-1) if outputs == "probabilities" else values

    derivatives = lie_derivatives(measured, images, family, indices, equivariant=equivariant)
    per_example = jnp.mean(jnp.abs(derivatives).reshape(*derivatives.shape[:2], -1), axis=-1)
    return LocalEquivarianceError(names, per_example.T)
