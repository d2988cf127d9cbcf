"""Distributions over η for discrete symmetries.

A continuous flow cannot say "multiples of 90°". Two options:

- :class:`DiscreteRotationMixture`: a density on the circle, a mixture of von
  Mises bumps at the group's angles ``period · j / n`` (j = 0..n-1), with
  mixing logits and a concentration. Its ``log_prob`` is differentiable in the
  logits, the concentration and the angle, so it serves as a learnable prior
  p(η | x̂) in a model. Its sampler (pick a bump, then a von Mises draw by
  rejection) is *not* reparameterised (``has_rsample`` is False): as a guide,
  use ``TraceGraph_ELBO`` (score-function gradients), or write the group
  element as its own site — ``numpyro.sample("j", self.mixing_distribution)``
  enumerated with ``infer={"enumerate": "parallel"}`` under ``TraceEnum_ELBO``,
  then ``numpyro.sample("eta", self.component_distribution(j))``.
- :func:`categorical_eta`: a categorical over the indices of a
  :class:`~invppl.transforms.support.Discrete` parameter (e.g.
  :class:`~invppl.transforms.CyclicRotation`), exactly enumerable.

>>> import jax, jax.numpy as jnp
>>> mixture = DiscreteRotationMixture(jnp.zeros(4), 20.0)
>>> float(jnp.exp(mixture.log_prob(0.0) - mixture.log_prob(jnp.pi / 2)))
1.0
>>> categorical_eta(Discrete(4)).support.upper_bound
3
"""

from __future__ import annotations

import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from jax import Array
from jax.scipy.special import i0e
from jax.typing import ArrayLike
from numpyro.distributions import constraints

from invppl.distributions._shapes import check_value_shape
from invppl.transforms.support import Discrete, Parameter, Periodic

__all__ = ["DiscreteRotationMixture", "categorical_eta", "group_angles"]


def _is_concrete(value: Array) -> bool:
    return not isinstance(value, jax.core.Tracer)


def group_angles(n: int, support: Periodic | None = None) -> Array:
    """The angles of the cyclic group C_n on a circle, wrapped into ``support``.

    Args:
        n: the group's order, at least 1.
        support: the circle, ``Periodic()`` (``[-π, π)``) by default.

    Returns:
        ``(n,)``: ``wrap(period · j / n)`` for j = 0..n-1 (j = 0 is the identity).

    >>> [round(angle, 4) for angle in group_angles(4).tolist()]
    [0.0, 1.5708, -3.1416, -1.5708]
    """
    if int(n) != n or n < 1:
        raise ValueError(f"the group's order n must be a positive integer, got {n}")
    support = Periodic() if support is None else support
    return support.wrap(jnp.arange(int(n)) * (support.period / int(n)))


class DiscreteRotationMixture(dist.Distribution):
    """A von Mises mixture on a circle with bumps at the C_n angles ``period · j / n``.

    With support ``Periodic(low, period)`` the angle is rescaled to radians,
    ``θ = 2π η / period``, and

        p(η) = (2π / period) Σ_j softmax(logits)_j · VonMises(θ; 2π j / n, κ).

    Args:
        logits: ``(..., n)`` mixing logits over the group elements (n ≥ 1).
        concentration: κ > 0, broadcastable against ``logits.shape[:-1]``.
        support: the circle, ``Periodic()`` by default.
        validate_args: NumPyro's argument validation.

    ``batch_shape`` is the broadcast of ``logits.shape[:-1]`` and
    ``concentration.shape``; ``event_shape`` is ``()``.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "logits": constraints.real_vector,
        "concentration": constraints.positive,
    }
    reparametrized_params: ClassVar[list[str]] = []
    pytree_data_fields = ("logits", "concentration")
    pytree_aux_fields = ("circle",)

    def __init__(
        self,
        logits: ArrayLike,
        concentration: ArrayLike,
        *,
        support: Periodic | None = None,
        validate_args: bool | None = None,
    ):
        logits = jnp.asarray(logits, dtype=jnp.result_type(float))
        concentration = jnp.asarray(concentration, dtype=jnp.result_type(float))
        if logits.ndim < 1 or logits.shape[-1] < 1:
            raise ValueError(
                "logits must have shape (..., n) with n >= 1 group elements, got shape "
                f"{logits.shape}"
            )
        support = Periodic() if support is None else support
        if not isinstance(support, Periodic):
            raise TypeError(f"support must be Periodic(low, period), got {type(support).__name__}")
        if _is_concrete(concentration) and not bool(jnp.all(concentration > 0)):
            raise ValueError(f"concentration must be positive, got {concentration}")
        try:
            batch_shape = jnp.broadcast_shapes(logits.shape[:-1], concentration.shape)
        except ValueError as error:
            raise ValueError(
                f"concentration of shape {concentration.shape} does not broadcast against "
                f"the logits' batch shape {logits.shape[:-1]}"
            ) from error
        self.logits = logits
        self.concentration = concentration
        self.circle = support
        super().__init__(batch_shape=batch_shape, event_shape=(), validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> constraints.Constraint:
        if self.circle == Periodic():
            return constraints.circular
        return constraints.interval(self.circle.low, self.circle.high)

    @property
    def n(self) -> int:
        """The group's order."""
        return int(self.logits.shape[-1])

    @property
    def mixing_distribution(self) -> dist.Categorical:
        """The distribution of the group element j, ``batch_shape`` = this batch shape."""
        logits = jnp.broadcast_to(self.logits, (*self.batch_shape, self.n))
        return dist.Categorical(logits=logits)

    def component_distribution(self, index: ArrayLike) -> DiscreteRotationMixture:
        """η given the group element ``index`` (integers broadcastable to the batch).

        The single von Mises bump at ``period · index / n``, on the same circle.
        """
        index = jnp.asarray(index)[..., None]
        chosen = jnp.arange(self.n) == index
        logits = jnp.where(chosen, 0.0, -1e30)  # finite: NumPyro validates logits
        return DiscreteRotationMixture(logits, self.concentration, support=self.circle)

    def _radians(self, value: Array) -> Array:
        """η → θ ∈ [-π, π) measured from the identity element (η = 0)."""
        return Periodic().wrap(value * (2 * math.pi / self.circle.period))

    def log_prob(self, value: ArrayLike) -> Array:
        """log p(η) for angles ``value`` of shape ``sample_shape + batch_shape`` (broadcast).

        Raises:
            ValueError: ``value``'s shape does not broadcast against ``batch_shape``.
        """
        value = jnp.asarray(value)
        check_value_shape("DiscreteRotationMixture.log_prob", value.shape, self.batch_shape, ())
        if self._validate_args:
            self._validate_sample(value)
        theta = self._radians(value)[..., None]
        centres = 2 * math.pi * jnp.arange(self.n) / self.n
        kappa = jnp.asarray(self.concentration)[..., None]
        log_von_mises = (
            kappa * (jnp.cos(theta - centres) - 1.0) - jnp.log(i0e(kappa)) - math.log(2 * math.pi)
        )
        log_weights = jax.nn.log_softmax(self.logits, axis=-1)
        log_radians_per_unit = math.log(2 * math.pi / self.circle.period)
        return jax.nn.logsumexp(log_weights + log_von_mises, axis=-1) + log_radians_per_unit

    def sample(self, key: Array, sample_shape: tuple[int, ...] = ()) -> Array:
        index_key, angle_key = jax.random.split(key)
        shape = tuple(sample_shape) + self.batch_shape
        index = self.mixing_distribution.sample(index_key, tuple(sample_shape))
        centres = 2 * math.pi * index / self.n
        offset = dist.VonMises(0.0, jnp.broadcast_to(self.concentration, shape)).sample(angle_key)
        theta = Periodic().wrap(centres + offset)
        return self.circle.wrap(theta * (self.circle.period / (2 * math.pi)))


def categorical_eta(
    support: Discrete | Parameter,
    logits: ArrayLike | None = None,
    *,
    validate_args: bool | None = None,
) -> dist.Categorical:
    """A categorical over a ``Discrete(n)`` parameter's group elements ``0..n-1``.

    Args:
        support: ``Discrete(n)`` or a ``Parameter`` with that support.
        logits: ``(..., n)``; uniform over the n elements when omitted.
        validate_args: NumPyro's argument validation.

    Raises:
        TypeError: the support is not ``Discrete``.
        ValueError: the logits' last axis is not n.

    >>> d = categorical_eta(Discrete(3), jnp.zeros((2, 3)))
    >>> d.batch_shape, d.support.upper_bound
    ((2,), 2)
    """
    name: str = "support"
    kind: object = support
    if isinstance(support, Parameter):
        name, kind = f"parameter {support.name!r}", support.support
    if not isinstance(kind, Discrete):
        raise TypeError(
            f"{name} must be Discrete(n) for a categorical over group elements, got "
            f"{type(kind).__name__}"
        )
    size = int(kind.size)
    logits = jnp.zeros(size) if logits is None else jnp.asarray(logits)
    if logits.ndim < 1 or logits.shape[-1] != size:
        raise ValueError(
            f"logits must have shape (..., {size}) for Discrete({size}), got shape {logits.shape}"
        )
    return dist.Categorical(logits=logits, validate_args=validate_args)
