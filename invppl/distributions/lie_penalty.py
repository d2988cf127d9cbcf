"""The Lie derivative as a regulariser inside a NumPyro model.

A network f that should be invariant to a continuous family of
transformations T_η is penalised, in the model's log density, by::

    log p(...) − λ · mean_{k, x, outputs} (L_k f(x))²,
    L_k f(x) = d/dt f(T_{t e_k} x) at t = 0,

with :func:`invppl.transforms.lie.mean_squared_lie_derivative` the mean of the
squared Lie derivatives over the chosen generators, the batch and the
outputs. The penalty is a ``numpyro.factor``, so SVI (which maximises the
ELBO, an expectation of the log density) pushes f towards invariance along
the generators at the data. A squared derivative is smooth at 0, unlike the
absolute value of the local equivariance error
(:func:`invppl.metrics.local_equivariance_error`), which measures the same
thing after fitting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpyro
from jax import Array
from jax.typing import ArrayLike

from invppl.distributions.compression import _check_weight
from invppl.transforms.lie import check_generators, mean_squared_lie_derivative

__all__ = ["lie_derivative_factor"]


def lie_derivative_factor(
    name: str,
    function: Callable[[Array], Array],
    images: Array,
    family: object,
    generators: int | str | Sequence[int | str] | None = None,
    *,
    weight: ArrayLike = 1.0,
    equivariant: bool = False,
) -> Array:
    """Adds ``numpyro.factor(name, −weight · mean_squared_lie_derivative)`` and returns the mean.

    Call it in the model (in a guide the factor would enter the ELBO with the
    opposite sign), with ``function`` the network as the model sees it, e.g.
    the callable ``numpyro.contrib.module.nnx_module`` returns, so that its
    parameters receive the penalty's gradient. The factor is a scalar: it does
    not scale with a plate's subsample size (multiply ``weight`` by N/B for
    that).

    Args:
        name: the factor site's name.
        function: ``(batch, height, width, channels)`` images → ``(batch, ...)``.
        images: ``(batch, height, width, channels)``, e.g. the observed batch.
        family: a continuous transformation family.
        generators: indices or names; ``None`` for all of the family's.
        weight: λ ≥ 0, a scalar.
        equivariant: move image-like outputs back (see
            :func:`invppl.transforms.lie.lie_derivatives`).

    Returns:
        The mean squared Lie derivative (a scalar), for logging.

    Raises:
        ValueError: a concrete λ that is negative, not finite or not a scalar;
            as :func:`invppl.transforms.lie.check_generators` (a discrete
            family, a generator out of range).

    >>> import jax.numpy as jnp
    >>> from numpyro.infer.util import log_density
    >>> from invppl.transforms import Colour
    >>> images = jnp.full((1, 2, 2, 3), 0.5).at[..., 0].set(0.25)
    >>> def model():  # brightness is not invariant to "value": L f = f
    ...     lie_derivative_factor("lie", lambda im: im.sum((1, 2, 3)), images,
    ...                           Colour(("value",)), weight=2.0)
    >>> float(log_density(model, (), {}, {})[0])  # −2 · (4 · 1.25)²
    -50.0
    """
    weight = _check_weight(weight)
    check_generators(family, generators)
    value = mean_squared_lie_derivative(
        function, images, family, generators, equivariant=equivariant
    )
    numpyro.factor(name, -weight * value)
    return value
