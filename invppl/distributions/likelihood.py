"""Observation sites for images: "x is the prototype x̂ moved by η".

    x ~ p(x | x̂, η) = Likelihood(T_η(x̂))

``image_likelihood`` places one such site inside a NumPyro model; the
prototype is given as intensities in [0, 1] (e.g. ``sigmoid`` of a decoder's
output), moved by the named transformation family, and then scored by a
Normal (σ fixed or learned), a Bernoulli, or a continuous Bernoulli
(Loaiza-Ganem & Cunningham 2019), whose normaliser makes it a proper density
on [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import Array
from numpyro.distributions import constraints

from invppl.distributions._shapes import check_value_shape
from invppl.transforms.family import TransformFamily, transform_family

__all__ = [
    "KINDS",
    "ContinuousBernoulli",
    "check_kind",
    "image_likelihood",
    "likelihood_distribution",
]

Kind = Literal["normal", "bernoulli", "continuous_bernoulli"]
KINDS: tuple[str, ...] = ("normal", "bernoulli", "continuous_bernoulli")
_EPS = 1e-5

_SUPPORTS = {
    "normal": "any real values",
    "bernoulli": "binary values {0, 1}",
    "continuous_bernoulli": "intensities in [0, 1]",
}


def check_kind(kind: object) -> Kind:
    """Returns ``kind`` if it names a likelihood, else raises ``ValueError`` listing them.

    >>> check_kind("gaussian")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown likelihood kind 'gaussian'; expected one of 'normal' (any real values), ...
    """
    if kind not in KINDS:
        choices = ", ".join(f"{k!r} ({_SUPPORTS[k]})" for k in KINDS)
        raise ValueError(f"unknown likelihood kind {kind!r}; expected one of {choices}")
    return kind  # type: ignore[return-value]


class ContinuousBernoulli(dist.Distribution):
    """The continuous Bernoulli density on [0, 1] with mean parameter ``probs`` = λ.

    p(x | λ) = C(λ) λ^x (1 − λ)^(1−x), with C(λ) = 2 artanh(1 − 2λ) / (1 − 2λ)
    and C(1/2) = 2 (a Taylor expansion is used near 1/2).
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "probs": constraints.open_interval(0.0, 1.0)
    }
    support = constraints.unit_interval
    reparametrized_params: ClassVar[list[str]] = ["probs"]

    def __init__(self, probs: Array, *, validate_args: bool | None = None) -> None:
        self.probs = jnp.clip(jnp.asarray(probs), _EPS, 1 - _EPS)
        super().__init__(batch_shape=jnp.shape(self.probs), validate_args=validate_args)

    def _log_normaliser(self) -> Array:
        lam = self.probs
        near = jnp.abs(lam - 0.5) < 1e-2
        safe = jnp.where(near, 0.25, lam)
        exact = jnp.log(2 * jnp.arctanh(1 - 2 * safe) / (1 - 2 * safe))
        u = (lam - 0.5) ** 2
        taylor = jnp.log(2.0) + (4.0 / 3.0) * u + (104.0 / 45.0) * u**2
        return jnp.where(near, taylor, exact)

    def log_prob(self, value: Array) -> Array:
        """log p(x | λ) elementwise, for ``value`` of shape ``sample_shape + batch_shape``.

        Raises:
            ValueError: ``value``'s shape does not broadcast against ``batch_shape``.
        """
        value = jnp.asarray(value)
        check_value_shape("ContinuousBernoulli.log_prob", value.shape, self.batch_shape, ())
        lam = self.probs
        return value * jnp.log(lam) + (1 - value) * jnp.log1p(-lam) + self._log_normaliser()

    def sample(self, key: Array, sample_shape: tuple[int, ...] = ()) -> Array:
        """Inverse-CDF sampling (differentiable in ``probs``)."""
        shape = sample_shape + self.batch_shape
        u = jax.random.uniform(key, shape, minval=_EPS, maxval=1 - _EPS)
        lam = jnp.broadcast_to(self.probs, shape)
        near = jnp.abs(lam - 0.5) < 1e-3
        safe = jnp.where(near, 0.25, lam)
        ratio = safe / (1 - safe)
        inverse = jnp.log1p(u * (2 * safe - 1) / (1 - safe)) / jnp.log(ratio)
        return jnp.where(near, u, inverse)

    @property
    def mean(self) -> Array:
        lam = self.probs
        near = jnp.abs(lam - 0.5) < 1e-3
        safe = jnp.where(near, 0.25, lam)
        exact = safe / (2 * safe - 1) + 1 / (2 * jnp.arctanh(1 - 2 * safe))
        return jnp.where(near, 0.5, exact)


def _check_scale_shape(scale_shape: tuple[int, ...], mean_shape: tuple[int, ...]) -> None:
    """Raises unless σ of ``scale_shape`` broadcasts to ``mean_shape`` without enlarging it."""
    try:
        grown = tuple(np.broadcast_shapes(scale_shape, mean_shape))
    except ValueError:
        grown = None
    if grown != mean_shape:
        raise ValueError(
            f"the Normal likelihood's scale has shape {scale_shape}, which does not broadcast "
            f"to the mean's shape {mean_shape}; expected a scalar or a shape that broadcasts "
            "to it, e.g. (channels,) or (batch, 1, 1, 1)"
        )


def likelihood_distribution(
    mean: Array, kind: Kind = "normal", scale: float | Array = 0.1, event_dims: int = 3
) -> dist.Distribution:
    """The observation distribution around ``mean`` (intensities in [0, 1]).

    Args:
        mean: ``(batch, height, width, channels)`` expected image.
        kind: ``"normal"``, ``"bernoulli"`` or ``"continuous_bernoulli"``.
        scale: the Normal's σ, ignored otherwise: a scalar or any shape that
            broadcasts to ``mean.shape`` without enlarging it (e.g.
            ``(channels,)``; a per-example σ is ``(batch, 1, 1, 1)``).
        event_dims: trailing axes that form one observation (3 for images),
            at most ``mean.ndim``.

    Raises:
        ValueError: an unknown ``kind``; ``event_dims`` outside ``0..mean.ndim``;
            a Normal ``scale`` whose shape would enlarge ``mean``'s (a ``(batch,)``
            σ on one-channel images would broadcast against the channel axis
            into ``(batch, height, width, batch)``).
    """
    check_kind(kind)
    mean_shape = tuple(jnp.shape(mean))
    if not 0 <= event_dims <= len(mean_shape):
        raise ValueError(
            f"event_dims={event_dims} must lie in 0..{len(mean_shape)} for a mean of shape "
            f"{mean_shape}"
        )
    if kind == "normal":
        _check_scale_shape(jnp.shape(scale), mean_shape)
        base: dist.Distribution = dist.Normal(mean, scale)
    elif kind == "bernoulli":
        base = dist.Bernoulli(probs=jnp.clip(mean, _EPS, 1 - _EPS))
    else:
        base = ContinuousBernoulli(mean)
    return base.to_event(event_dims)


def image_likelihood(
    name: str,
    prototype: Array,
    eta: Array | None,
    family: TransformFamily | Sequence[str] | None,
    *,
    obs: Array | None = None,
    kind: Kind = "normal",
    scale: float | Array = 0.1,
) -> Array:
    """Samples (or observes) x ~ Likelihood(T_η(x̂)) at site ``name``; returns T_η(x̂).

    Args:
        name: the NumPyro site name.
        prototype: ``(batch, height, width, channels)`` prototype intensities in [0, 1].
        eta: ``(batch, k)`` transformation parameters, or None for no transformation.
        family: a transformation family, or the parameter names to build one
            (``["rotation", "tx"]``), or None together with ``eta=None``.
        obs: the observed images, same shape as ``prototype``.
        kind: ``"normal"`` (σ = ``scale``), ``"bernoulli"`` or ``"continuous_bernoulli"``.
        scale: σ for the Normal; pass a ``numpyro.param`` to learn it.
    """
    check_kind(kind)
    if (eta is None) != (family is None):
        raise ValueError("give both eta and family, or neither (for an untransformed site)")
    if obs is not None and tuple(obs.shape) != tuple(prototype.shape):
        raise ValueError(
            f"observed images have shape {tuple(obs.shape)} but the prototype has shape "
            f"{tuple(prototype.shape)}; the networks must produce images of the data's shape"
        )
    if family is not None and eta is not None:
        if not isinstance(family, TransformFamily):
            family = transform_family(list(family))
        moved = family.apply(prototype, eta)
    else:
        moved = prototype
    numpyro.sample(name, likelihood_distribution(moved, kind, scale), obs=obs)
    return moved
