"""The Lie derivative of a function of images along a transformation family's generator.

For a continuous family T_η (η = 0 the identity) and its k-th generator e_k::

    L_k f(x) = d/dt f(T_{t e_k} x) at t = 0,

computed as one Jacobian-vector product (``jax.jvp``) through the family's own
warp, so the image is resampled once. For an affine generator G_k the warp
reads x(exp(−t G_k) u), so d/dt T_{t e_k} x (u) = −∇x(u) · v_k(u), with
v_k(u) = G_k (u, 1) the generator's velocity field in invppl's normalised
coordinates (x right, y up, the longer side spanning [−1, 1]); for a colour
generator it is the linear map of :mod:`invppl.transforms.colour` applied to
each pixel.

The derivative at t = 0 is that of the interpolant at the pixel centres:
``"bicubic"`` (Keys' kernel is C¹) gives the central difference
(x[i + 1] − x[i − 1]) / 2; ``"bilinear"`` gives a one-sided difference whose
side is chosen by the rounding of each sampling position (prefer bicubic);
``"nearest"`` is piecewise constant, its derivative is 0 everywhere, and it is
refused.

For the affine families the warp reads x((I − Σ_k η_k G_k) u), the first-order
term of exp(−Σ_k η_k G_k): its derivative at η = 0 is the same, and it spares
compiling the derivative of the matrix exponential (as costly as the rest).

This module holds the computation that :mod:`invppl.metrics.lie_derivative`
(the local equivariance error) and :func:`invppl.distributions.lie_derivative_factor`
(the regulariser) share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from invppl.transforms.affine import GENERATORS, Affine, AffineMap
from invppl.transforms.family import AffineColour
from invppl.transforms.interpolation import check_images
from invppl.transforms.support import Discrete

__all__ = ["check_generators", "lie_derivative", "lie_derivatives", "mean_squared_lie_derivative"]

ImageFunction = Callable[[Array], Array]


def _interpolation(family: object) -> str | None:
    """The family's interpolation method, looking inside an affine-and-colour pair."""
    inner = getattr(family, "affine", family)
    method = getattr(inner, "method", None)
    return method if isinstance(method, str) else None


def check_generators(
    family: object, generators: int | str | Sequence[int | str] | None
) -> tuple[int, ...]:
    """The indices of the chosen generators of a continuous family, checked.

    Args:
        family: a transformation family with continuous parameters
            (:class:`~invppl.transforms.Affine`, :class:`~invppl.transforms.Colour`,
            :class:`~invppl.transforms.AffineColour`).
        generators: one generator or several, each an index into η or a
            parameter name; ``None`` for all of them.

    Raises:
        TypeError: ``family`` has no declared ``parameters`` and ``apply``.
        ValueError: a discrete family (a group element has no generator), a
            family interpolating by ``"nearest"`` (its derivative is 0
            everywhere), an index out of range or an unknown name.
    """
    if not (hasattr(family, "parameters") and hasattr(family, "apply")):
        raise TypeError(
            f"a Lie derivative needs a transformation family with parameters and apply, got "
            f"{type(family).__name__}"
        )
    parameters = tuple(family.parameters)
    discrete = [p.name for p in parameters if isinstance(p.support, Discrete)]
    if discrete:
        raise ValueError(
            f"{type(family).__name__} is a discrete family (parameters {discrete}): a group "
            "element has no generator to differentiate along; use a continuous family such as "
            "Affine(('rotation',)) or Colour(('hue',))"
        )
    if _interpolation(family) == "nearest":
        raise ValueError(
            "the family interpolates by 'nearest', whose derivative is 0 everywhere; use "
            "method='bicubic' (central differences) or 'bilinear'"
        )
    names = tuple(p.name for p in parameters)
    if generators is None:
        return tuple(range(len(names)))
    single = isinstance(generators, int | str | np.integer)
    chosen = [generators] if single else list(generators)  # type: ignore[arg-type]
    if not chosen:
        raise ValueError(f"no generator chosen; pick indices or names from {names}")
    indices = []
    for generator in chosen:
        if isinstance(generator, str):
            if generator not in names:
                raise ValueError(f"unknown generator {generator!r}; the family's are {names}")
            indices.append(names.index(generator))
        elif (
            isinstance(generator, int | np.integer)
            and not isinstance(generator, bool)
            and 0 <= generator < len(names)
        ):
            indices.append(int(generator))
        else:
            raise ValueError(
                f"generator index {generator!r} out of range: the family has {len(names)} "
                f"generator(s) {names}, indices 0..{len(names) - 1}"
            )
    return tuple(indices)


def _first_order_affine(family: Affine) -> Callable[[Array, Array], Array]:
    """(images, η) ↦ the warp by A = I + Σ η_k G_k, equal to ``family.apply`` to first order."""
    generators = np.stack([GENERATORS[name] for name in family.names])

    def apply(images: Array, eta: Array) -> Array:
        algebra = jnp.einsum("k,kij->ij", eta, jnp.asarray(generators, eta.dtype))
        identity = jnp.eye(3, dtype=eta.dtype)
        warp = AffineMap(identity + algebra, identity - algebra)
        return warp.apply(
            images, method=family.method, fill_mode=family.fill_mode, cval=family.cval
        )

    return apply


def _first_order_apply(family: object) -> Callable[[Array, Array], Array]:
    """(images, η ``(dim,)``) ↦ T_η x, exact or to first order in η (the same derivative at 0)."""
    if isinstance(family, Affine):
        return _first_order_affine(family)
    if isinstance(family, AffineColour):
        warp, split = _first_order_affine(family.affine), family.affine.dim
        return lambda images, eta: warp(family.colour.apply(images, eta[split:]), eta[:split])
    return family.apply  # type: ignore[attr-defined]


def _moved_function(
    function: ImageFunction, images: Array, family: object, equivariant: bool
) -> Callable[[Array], Array]:
    """η ↦ f(T_η x), or T_{−η} f(T_η x) when the outputs are images that move too."""
    apply = _first_order_apply(family)

    def moved(eta: Array) -> Array:
        outputs = function(apply(images, eta))
        if equivariant:
            outputs = apply(check_images(outputs), -eta)
        return outputs

    return moved


def lie_derivatives(
    function: ImageFunction,
    images: Array,
    family: object,
    generators: int | str | Sequence[int | str] | None = None,
    *,
    equivariant: bool = False,
) -> Array:
    """L_k f(x) for each chosen generator: one forward pass, one tangent pass per generator.

    Args:
        function: maps ``(batch, height, width, channels)`` images to outputs
            ``(batch, ...)``, each row depending on its own image only (no
            batch statistics).
        images: ``(batch, height, width, channels)``.
        family: a continuous transformation family (see :func:`check_generators`).
        generators: indices or names; ``None`` for all of the family's.
        equivariant: the outputs are images ``(batch, height, width, channels)``
            moved back by T_{−t e_k}, so that L_k measures equivariance rather
            than invariance (as Gruver et al. do for image-like outputs).

    Returns:
        ``(generators, batch, ...)``: the derivatives, in the order chosen.

    Raises:
        ValueError, TypeError: as :func:`check_generators`; images not rank 4
            floating point.
    """
    indices = check_generators(family, generators)
    images = check_images(images)
    dim = len(family.parameters)  # type: ignore[attr-defined]
    zero = jnp.zeros((dim,), images.dtype)
    _, tangent_map = jax.linearize(_moved_function(function, images, family, equivariant), zero)
    directions = jnp.eye(dim, dtype=images.dtype)[jnp.asarray(indices)]
    return jax.vmap(tangent_map)(directions)  # one tangent program, batched over generators


def lie_derivative(
    function: ImageFunction,
    images: Array,
    family: object,
    generator: int | str,
    *,
    equivariant: bool = False,
) -> Array:
    """L f(x) = d/dt f(T_{t e_k} x) at t = 0, by ``jax.jvp`` through one warp.

    Args:
        function: ``(batch, height, width, channels)`` images → ``(batch, ...)``
            outputs, row by row.
        images: ``(batch, height, width, channels)``.
        family: a continuous transformation family.
        generator: the generator's index in η or its parameter name.
        equivariant: move image-like outputs back by T_{−t e_k} (see :func:`lie_derivatives`).

    Returns:
        The derivative, the shape of ``function(images)``.

    The first moment of a blob moves with the generator's velocity: under
    ``tx`` its x-coordinate grows at rate 1 (normalised units).

    >>> import jax.numpy as jnp
    >>> from invppl.transforms import Affine
    >>> images = jnp.zeros((1, 9, 9, 1)).at[0, 3:6, 2:5, 0].set(1.0)
    >>> x = (jnp.arange(9) - 4.0) / 4.5  # normalised x of each column
    >>> moment = lambda im: (im[..., 0] * x).sum((1, 2)) / im.sum((1, 2, 3))
    >>> family = Affine(("tx", "rotation"), method="bicubic")
    >>> round(float(lie_derivative(moment, images, family, "tx")[0]), 5)
    1.0
    """
    (index,) = check_generators(family, generator)
    images = check_images(images)
    dim = len(family.parameters)  # type: ignore[attr-defined]
    zero = jnp.zeros((dim,), images.dtype)
    direction = jnp.zeros((dim,), images.dtype).at[index].set(1.0)
    moved = _moved_function(function, images, family, equivariant)
    return jax.jvp(moved, (zero,), (direction,))[1]


def mean_squared_lie_derivative(
    function: ImageFunction,
    images: Array,
    family: object,
    generators: int | str | Sequence[int | str] | None = None,
    *,
    equivariant: bool = False,
) -> Array:
    """The mean of (L_k f(x))² over the chosen generators, the examples and the outputs.

    A scalar, 0 exactly when ``function`` is (locally) invariant along every
    chosen generator at these images: the quantity a regulariser penalises.

    >>> import jax.numpy as jnp
    >>> from invppl.transforms import Colour
    >>> images = jnp.full((2, 4, 4, 3), 0.5).at[:, :, :, 0].set(0.2)
    >>> grey = lambda im: im.mean(axis=-1)  # hue turns colours about the grey axis
    >>> float(mean_squared_lie_derivative(grey, images, Colour(("hue",)))) < 1e-12
    True
    """
    derivatives = lie_derivatives(function, images, family, generators, equivariant=equivariant)
    return jnp.mean(jnp.square(derivatives))
