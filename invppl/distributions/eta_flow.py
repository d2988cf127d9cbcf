"""A conditional spline flow over transformation parameters η, in each parameter's support.

The SGM's p(η | x̂) and the amortised guide q(η | x) are conditional densities
over η ∈ R^k, one coordinate per transformation parameter, where each
coordinate lives where its :class:`~invppl.transforms.support.Parameter` says:

- ``Interval(low, high)``: strictly inside ``(low, high)``;
- ``Real()``: the real line;
- ``Periodic(low, period)``: the circle ``[low, low + period)``, with a density
  that is continuous across the seam, so that mass at ±π is representable.

The flow works in per-coordinate *working* coordinates: ``u ∈ [0, 1]`` for
intervals, ``u ∈ [0, 1)`` (a circle) for periodic parameters, ``y ∈ R`` for
real ones. The base density is uniform on the first two and standard normal on
the last. Each layer is a coupling layer: the coordinates it transforms go
through monotone rational-quadratic splines (Durkan et al. 2019, "Neural
Spline Flows") whose knots are output by a network of the *other* coordinates
and the context c. Per kind of coordinate, the spline is

- interval: a spline of ``[0, 1]`` onto itself (free boundary derivatives);
- periodic: a *circular* spline of ``[0, 1)`` onto itself with equal
  derivatives at 0 and 1, followed by a rotation ``u ↦ (u + θ) mod 1``
  (Rezende et al. 2020, "Normalizing Flows on Tori and Spheres"): a
  diffeomorphism of the circle, so the density stays continuous across the seam;
- real: a spline of ``[-B, B]`` with unit boundary derivatives and identity
  tails, followed by an affine map ``y ↦ shift + exp(log_scale) y``.

Periodic coordinates enter the networks as ``(cos 2πu, sin 2πu)``, so the
conditional splines of the other coordinates are continuous across the seam too.
Finally ``u ↦ low + (high - low) u`` for intervals and
``u ↦ Periodic.wrap(low + period u)`` for periodic parameters.

:class:`EtaFlow` is a Flax NNX module, a
:class:`~invppl.nn.coupling.CouplingStack` of coupling layers whose
conditioners are NNX networks; calling it on contexts gives :class:`ConditionalEtaFlow`, the NumPyro
``Distribution`` a model or guide samples from. Its weights reach NumPyro as
every network's do, through ``numpyro.contrib.module.nnx_module``:
:func:`sample_eta` registers them (the param site ``f"{param_name}$params"``)
and samples in one call, and :func:`with_fitted_flow` puts a fit's weights back.

>>> import jax, jax.numpy as jnp, numpyro
>>> from invppl.transforms.support import Interval, Parameter, Periodic
>>> parameters = (Parameter("rotation", Periodic()), Parameter("scale", Interval(-0.5, 0.5)))
>>> flow = eta_flow(jax.random.key(0), parameters, context_dim=3, width=8, depth=1)
>>> eta_dist = ConditionalEtaFlow(flow, jnp.zeros((5, 3)))
>>> eta_dist.batch_shape, eta_dist.event_shape
((5,), (2,))
>>> eta, log_prob = jax.jit(eta_dist.sample_with_log_prob)(jax.random.PRNGKey(1))
>>> bool(eta_dist.support(eta).all()), log_prob.shape
(True, (5,))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from flax import nnx
from jax import Array
from jax.typing import ArrayLike
from numpyro.contrib.module import nnx_module
from numpyro.distributions import constraints
from numpyro.distributions.transforms import Transform, biject_to

from invppl.nn.coupling import CouplingStack, MLPConditioner, alternating_masks
from invppl.nn.networks import with_fitted_params
from invppl.transforms.support import Discrete, Interval, Parameter, Periodic, Real

__all__ = [
    "ConditionalEtaFlow",
    "EtaFlow",
    "EtaSupport",
    "eta_flow",
    "register_eta_flow",
    "sample_eta",
    "with_fitted_flow",
]

_LOG_2PI = math.log(2 * math.pi)


# ---------------------------------------------------------------------------
# checks


def check_parameters(parameters: Sequence[Parameter]) -> tuple[Parameter, ...]:
    """Checks that every parameter has a continuous support this module handles.

    Raises:
        ValueError: no parameters.
        TypeError: an entry is not a ``Parameter``, or its support is ``Discrete``
            or of an unknown kind.
    """
    parameters = tuple(parameters)
    if not parameters:
        raise ValueError("eta flow needs at least one transformation parameter, got an empty list")
    for position, parameter in enumerate(parameters):
        if not isinstance(parameter, Parameter):
            raise TypeError(
                f"parameters[{position}] must be an invppl Parameter(name, support), "
                f"got {type(parameter).__name__}"
            )
        support = parameter.support
        if isinstance(support, Discrete):
            raise TypeError(
                f"parameter {parameter.name!r} has a Discrete({support.size}) support: a "
                "continuous flow cannot represent it; use invppl.distributions."
                "categorical_eta or DiscreteRotationMixture for discrete group elements"
            )
        if not isinstance(support, Interval | Periodic | Real):
            raise TypeError(
                f"parameter {parameter.name!r} has an unknown support kind "
                f"{type(support).__name__}; expected Interval, Periodic or Real"
            )
    return parameters


def _check_context(context: ArrayLike, context_dim: int) -> Array:
    context = jnp.asarray(context)
    if context.ndim < 1 or context.shape[-1] != context_dim:
        raise ValueError(
            f"context must have shape (..., context_dim) = (..., {context_dim}) to match "
            f"the flow's context_dim, got shape {context.shape}"
        )
    if not jnp.issubdtype(context.dtype, jnp.floating):
        context = context.astype(jnp.result_type(float))
    return context


# ---------------------------------------------------------------------------
# rational-quadratic splines on [0, 1]


def _bins(raw: Array, min_bin: float) -> tuple[Array, Array]:
    """``(bins,)`` unconstrained → ``(bins + 1,)`` knot positions from 0 to 1, ``(bins,)`` sizes."""
    bins = raw.shape[-1]
    sizes = min_bin + (1.0 - min_bin * bins) * jax.nn.softmax(raw)
    positions = jnp.concatenate([jnp.zeros(1), jnp.cumsum(sizes)]).at[-1].set(1.0)
    return positions, positions[1:] - positions[:-1]


def _rq_spline(
    t: Array,
    x_pos: Array,
    y_pos: Array,
    derivatives: Array,
    *,
    inverse: bool,
) -> tuple[Array, Array]:
    """A monotone rational-quadratic spline of ``[0, 1]`` onto itself, identity outside.

    Args:
        t: ``()`` input (``x`` forwards, ``y`` inverse).
        x_pos, y_pos: ``(bins + 1,)`` increasing knots from 0 to 1.
        derivatives: ``(bins + 1,)`` positive derivatives at the knots.
        inverse: whether to invert the spline.

    Returns:
        The output ``()`` and ``log |d output / d input|`` ``()``.
    """
    bins = x_pos.shape[0] - 1
    inside = (t >= 0.0) & (t <= 1.0)
    clipped = jnp.clip(t, 0.0, 1.0)
    knots = y_pos if inverse else x_pos
    k = jnp.clip(jnp.sum(clipped >= knots[1:-1]), 0, bins - 1)  # the bin holding t
    # one-hot selection rather than gathers: cheaper to compile and to differentiate
    chosen = jnp.arange(bins) == k
    xk, width = (
        jnp.sum(jnp.where(chosen, x_pos[:-1], 0.0)),
        jnp.sum(jnp.where(chosen, jnp.diff(x_pos), 0.0)),
    )
    yk, height = (
        jnp.sum(jnp.where(chosen, y_pos[:-1], 0.0)),
        jnp.sum(jnp.where(chosen, jnp.diff(y_pos), 0.0)),
    )
    dk = jnp.sum(jnp.where(chosen, derivatives[:-1], 0.0))
    dk1 = jnp.sum(jnp.where(chosen, derivatives[1:], 0.0))
    slope = height / width
    if inverse:
        shifted = clipped - yk
        a = height * (slope - dk) + shifted * (dk1 + dk - 2 * slope)
        b = height * dk - shifted * (dk1 + dk - 2 * slope)
        c = -slope * shifted
        discriminant = jnp.maximum(b**2 - 4 * a * c, 0.0)
        xi = jnp.clip(2 * c / (-b - jnp.sqrt(discriminant)), 0.0, 1.0)
        out = jnp.clip(xk + xi * width, 0.0, 1.0)
    else:
        xi = (clipped - xk) / width
        numerator = height * (slope * xi**2 + dk * xi * (1 - xi))
        out = jnp.clip(yk + numerator / (slope + (dk1 + dk - 2 * slope) * xi * (1 - xi)), 0, 1)
    denominator = slope + (dk1 + dk - 2 * slope) * xi * (1 - xi)
    derivative = (
        slope**2 * (dk1 * xi**2 + 2 * slope * xi * (1 - xi) + dk * (1 - xi) ** 2) / denominator**2
    )
    log_derivative = jnp.log(derivative)
    if inverse:
        log_derivative = -log_derivative
    return jnp.where(inside, out, t), jnp.where(inside, log_derivative, 0.0)


def _positive_derivatives(raw: Array, min_derivative: float) -> Array:
    # shifted so that raw = 0 gives derivative 1 (with equal bins: the identity)
    offset = math.log(math.expm1(1.0 - min_derivative))
    return min_derivative + jax.nn.softplus(raw + offset)


class _Kinds(NamedTuple):
    """Per-coordinate masks ``(k,)``: which coordinates are interval, periodic, real."""

    interval: np.ndarray
    periodic: np.ndarray
    real: np.ndarray

    @classmethod
    def of(cls, parameters: Sequence[Parameter]) -> _Kinds:
        return cls(
            np.array([isinstance(p.support, Interval) for p in parameters]),
            np.array([isinstance(p.support, Periodic) for p in parameters]),
            np.array([isinstance(p.support, Real) for p in parameters]),
        )


def _transform_coordinates(
    kinds: _Kinds,
    values: Array,
    raw: Array,
    *,
    bins: int,
    min_bin: float,
    min_derivative: float,
    tail_bound: float,
    inverse: bool,
) -> tuple[Array, Array]:
    """The coupling transformers of all k working coordinates at once.

    Per kind of coordinate: interval, a spline of [0, 1]; periodic, a circular
    spline (equal end derivatives) then a rotation; real, a spline of
    ``[-tail_bound, tail_bound]`` with unit end derivatives and identity tails,
    then ``shift + exp(log_scale) y``.

    Args:
        kinds: which coordinates are interval, periodic, real.
        values: ``(k,)`` working coordinates.
        raw: ``(k, 3 * bins + 1)`` unconstrained spline parameters from the network.

    Returns:
        The transformed coordinates ``(k,)`` and their ``log |Jacobian|`` ``(k,)``
        in the direction taken.
    """
    x_pos = jax.vmap(lambda r: _bins(r, min_bin)[0])(raw[:, :bins])
    y_pos = jax.vmap(lambda r: _bins(r, min_bin)[0])(raw[:, bins : 2 * bins])
    rest = raw[:, 2 * bins :]  # (k, bins + 1)
    free = _positive_derivatives(rest, min_derivative)
    ones = jnp.ones_like(free[:, :1])
    circular = jnp.concatenate([free[:, :bins], free[:, :1]], axis=1)  # d(0) = d(1)
    unit_ends = jnp.concatenate([ones, free[:, : bins - 1], ones], axis=1)
    derivatives = jnp.where(
        kinds.periodic[:, None], circular, jnp.where(kinds.real[:, None], unit_ends, free)
    )
    rotation = jnp.where(kinds.periodic, rest[:, bins], 0.0)
    shift = jnp.where(kinds.real, rest[:, bins - 1], 0.0)
    log_scale = jnp.where(kinds.real, 4.0 * jnp.tanh(rest[:, bins] / 4.0), 0.0)
    span = jnp.where(kinds.real, 2.0 * tail_bound, 1.0)
    offset = jnp.where(kinds.real, tail_bound, 0.0)
    spline = jax.vmap(lambda t, xp, yp, d: _rq_spline(t, xp, yp, d, inverse=inverse))
    if inverse:
        unrotated = jnp.where(kinds.periodic, jnp.mod(values - rotation, 1.0), values)
        t = ((unrotated - shift) * jnp.exp(-log_scale) + offset) / span
        out, log_det = spline(t, x_pos, y_pos, derivatives)
        return out * span - offset, log_det - log_scale
    out, log_det = spline((values + offset) / span, x_pos, y_pos, derivatives)
    out = shift + jnp.exp(log_scale) * (out * span - offset)
    return jnp.where(kinds.periodic, jnp.mod(out + rotation, 1.0), out), log_det + log_scale


# ---------------------------------------------------------------------------
# the flow


@dataclasses.dataclass(frozen=True)
class _SplineTransformer:
    """The coupling transformer of the η flow: :func:`_transform_coordinates` over leading axes.

    A frozen value (hashable), so that flows of equal settings compile once.
    """

    parameters: tuple[Parameter, ...]
    knots: int
    min_bin: float
    min_derivative: float
    tail_bound: float

    @property
    def raw_size(self) -> int:
        """Raw spline parameters per coordinate: ``3 * knots + 1``."""
        return 3 * self.knots + 1

    def __call__(self, values: Array, raw: Array, *, inverse: bool) -> tuple[Array, Array]:
        """τ of every coordinate: ``values (..., k)``, ``raw (..., k, 3 knots + 1)``.

        Returns the outputs and the log-derivatives, both ``(..., k)`` (see
        :class:`invppl.nn.coupling.Transformer`).
        """
        kinds = _Kinds.of(self.parameters)

        def one(values: Array, raw: Array) -> tuple[Array, Array]:
            return _transform_coordinates(
                kinds,
                values,
                raw,
                bins=self.knots,
                min_bin=self.min_bin,
                min_derivative=self.min_derivative,
                tail_bound=self.tail_bound,
                inverse=inverse,
            )

        return jnp.vectorize(one, signature="(k),(k,p)->(k),(k)")(values, raw)


@dataclasses.dataclass(frozen=True)
class _Features:
    """Working coordinates ``(..., k)`` → network inputs ``(..., k, 2)``.

    Periodic coordinates as ``(cos 2πu, sin 2πu)``, intervals as ``(2u - 1, 0)``,
    real ones as ``(y, 0)``.
    """

    parameters: tuple[Parameter, ...]

    def __call__(self, values: Array) -> Array:
        kinds = _Kinds.of(self.parameters)
        angle = 2 * math.pi * values
        first = jnp.where(
            kinds.periodic, jnp.cos(angle), jnp.where(kinds.interval, 2 * values - 1, values)
        )
        second = jnp.where(kinds.periodic, jnp.sin(angle), 0.0)
        return jnp.stack([first, second], axis=-1)


def _check_sizes(
    knots: int,
    layers: int,
    width: int,
    depth: int,
    context_dim: int,
    min_bin: float,
    min_derivative: float,
    tail_bound: float,
) -> None:
    for label, number, least in (
        ("knots", knots, 2),
        ("layers", layers, 1),
        ("width", width, 1),
        ("depth", depth, 0),
        ("context_dim", context_dim, 0),
    ):
        if int(number) != number or number < least:
            raise ValueError(f"{label} must be an integer >= {least}, got {number}")
    if not 0 < min_bin * knots < 1:
        raise ValueError(f"min_bin * knots must lie in (0, 1), got {min_bin} * {knots}")
    if not (0 < min_derivative < 1 and tail_bound > 0):
        raise ValueError(
            "min_derivative must lie in (0, 1) and tail_bound be positive, got "
            f"{min_derivative} and {tail_bound}"
        )


class EtaFlow(nnx.Module):
    """A conditional spline flow over η in each parameter's support (see the module docs).

    A Flax NNX module: its ``nnx.Param`` s are the weights of its coupling
    layers' conditioners, so ``numpyro.contrib.module.nnx_module(name, flow)``
    registers them as the param site ``f"{name}$params"`` like any network's
    (:func:`sample_eta` and :func:`register_eta_flow` do that). Calling the flow
    on contexts ``(..., context_dim)`` gives the NumPyro distribution
    :class:`ConditionalEtaFlow` of η given them, so inside a model
    ``numpyro.sample("eta", nnx_module("eta_flow", flow)(context))`` samples with
    the weights SVI trains. Build it with :func:`eta_flow`.

    Each layer is a :class:`~invppl.nn.coupling.Coupling` (``flow.couplings[i]``):
    a mask (even and odd coordinates in turn), an
    :class:`~invppl.nn.coupling.MLPConditioner` of the kept coordinates'
    features and the context, and the spline transformer; the layers are
    stacked in a :class:`~invppl.nn.coupling.CouplingStack` and run by one scan.

    >>> import jax, jax.numpy as jnp
    >>> from invppl.transforms.support import Interval, Parameter
    >>> flow = eta_flow(jax.random.key(0), [Parameter("s", Interval(0.0, 1.0))], 3, width=4)
    >>> log_prob = jax.jit(lambda flow, eta, context: flow(context).log_prob(eta))
    >>> log_prob(flow, jnp.full((5, 1), 0.5), jnp.zeros((5, 3))).shape
    (5,)

    Attributes:
        parameters: the k transformation parameters, in η's order.
        context_dim: the size of the context vector.
        knots, min_bin, min_derivative, tail_bound: the splines' settings.
        couplings: the coupling layers, in the forward (noise → η) order; each
            conditioner maps ``(k, 2)`` features and the context to ``(k, 3 * knots + 1)``
            (their weights stacked: ``couplings.conditioners`` has a leading ``layers`` axis).
    """

    def __init__(
        self,
        key: Array,
        parameters: Sequence[Parameter],
        context_dim: int,
        *,
        knots: int = 8,
        layers: int = 4,
        width: int = 32,
        depth: int = 2,
        min_bin: float = 1e-3,
        min_derivative: float = 1e-3,
        tail_bound: float = 5.0,
    ) -> None:
        parameters = check_parameters(parameters)
        _check_sizes(knots, layers, width, depth, context_dim, min_bin, min_derivative, tail_bound)
        self.parameters = parameters
        self.context_dim = int(context_dim)
        self.knots = int(knots)
        self.min_bin = float(min_bin)
        self.min_derivative = float(min_derivative)
        self.tail_bound = float(tail_bound)
        transformer = _SplineTransformer(
            parameters, self.knots, self.min_bin, self.min_derivative, self.tail_bound
        )
        dim, rngs = len(parameters), nnx.Rngs(key)
        conditioners = [
            MLPConditioner(
                (dim, 2),
                (dim, transformer.raw_size),
                self.context_dim,
                width=int(width),
                depth=int(depth),
                rngs=rngs,
            )
            for _ in range(int(layers))
        ]
        self.couplings = CouplingStack(
            alternating_masks(dim, int(layers)),
            conditioners,
            transformer,
            features=_Features(parameters),
        )

    def __call__(
        self, context: ArrayLike, *, validate_args: bool | None = None
    ) -> ConditionalEtaFlow:
        """p(η | c) for contexts ``(..., context_dim)``: batch shape ``context.shape[:-1]``."""
        return ConditionalEtaFlow(self, context, validate_args=validate_args)

    @property
    def kinds(self) -> _Kinds:
        """Which coordinates are interval, periodic, real: three ``(k,)`` boolean masks."""
        return _Kinds.of(self.parameters)

    @property
    def dim(self) -> int:
        """k, the number of transformation parameters."""
        return len(self.parameters)

    @property
    def shape(self) -> tuple[int]:
        """η's event shape ``(k,)``."""
        return (self.dim,)

    @property
    def cond_shape(self) -> tuple[int]:
        """The context's shape ``(context_dim,)``."""
        return (self.context_dim,)

    @property
    def masks(self) -> tuple[tuple[bool, ...], ...]:
        """``(layers, k)``: per layer, which coordinates it transforms."""
        return self.couplings.masks

    # -- working coordinates <-> η ---------------------------------------------

    def _to_eta(self, working: Array) -> tuple[Array, Array]:
        values, log_det = [], jnp.zeros(())
        for i, parameter in enumerate(self.parameters):
            support, u = parameter.support, working[i]
            if isinstance(support, Interval):
                span = support.high - support.low
                value = support.low + span * u
                inner_low = np.nextafter(np.float32(support.low), np.float32(support.high))
                inner_high = np.nextafter(np.float32(support.high), np.float32(support.low))
                values.append(jnp.clip(value, float(inner_low), float(inner_high)))
                log_det = log_det + math.log(span)
            elif isinstance(support, Periodic):
                values.append(support.wrap(support.low + support.period * u))
                log_det = log_det + math.log(support.period)
            else:
                values.append(u)
        return jnp.stack(values), log_det

    def _from_eta(self, eta: Array) -> tuple[Array, Array, Array]:
        """η → working coordinates, ``log |dη / d working|`` and whether η is in the support."""
        working, log_det, inside = [], jnp.zeros(()), jnp.array(True)
        for i, parameter in enumerate(self.parameters):
            support, value = parameter.support, eta[i]
            if isinstance(support, Interval):
                span = support.high - support.low
                u = (value - support.low) / span
                inside = inside & (u >= 0) & (u <= 1)
                working.append(jnp.clip(u, 0.0, 1.0))
                log_det = log_det + math.log(span)
            elif isinstance(support, Periodic):
                working.append(jnp.mod(value - support.low, support.period) / support.period)
                log_det = log_det + math.log(support.period)
            else:
                inside = inside & jnp.isfinite(value)
                working.append(value)
        return jnp.stack(working), log_det, inside

    def _base_log_prob(self, working: Array) -> Array:
        total = jnp.zeros(())
        for i, parameter in enumerate(self.parameters):
            if isinstance(parameter.support, Real):
                total = total - 0.5 * (working[i] ** 2 + _LOG_2PI)
        return total

    # -- single-example maps ---------------------------------------------------

    def transform_noise(self, noise: Array, condition: Array) -> tuple[Array, Array]:
        """Base noise → η, with ``log q(η | c)``; reparameterised in the flow and c.

        Args:
            noise: ``(k,)``: uniform on [0, 1) for Interval and Periodic
                coordinates, standard normal for Real ones (see :meth:`base_noise`).
            condition: ``(context_dim,)``.

        Returns:
            η ``(k,)`` in the supports and its log-density ``()``.
        """
        working, layers_log_det = self.couplings(noise, condition)
        eta, log_det = self._to_eta(working)
        return eta, self._base_log_prob(noise) - layers_log_det - log_det

    def inverse_log_prob(self, eta: Array, condition: Array) -> Array:
        """``log q(η | c)`` ``()`` of one η ``(k,)`` given one context ``(context_dim,)``.

        By the inverse pass; ``-inf`` outside the support.
        """
        working, log_det, inside = self._from_eta(eta)
        base, inverse_log_det = self.couplings(working, condition, inverse=True)
        log_density = self._base_log_prob(base) + inverse_log_det - log_det
        return jnp.where(inside, log_density, -jnp.inf)

    def base_noise(self, key: Array, shape: tuple[int, ...] = ()) -> Array:
        """Base noise of shape ``shape + (k,)`` for :meth:`transform_noise`."""
        uniform_key, normal_key = jax.random.split(key)
        uniform = jax.random.uniform(
            uniform_key, (*shape, self.dim), minval=1e-6, maxval=1.0 - 1e-6
        )
        normal = jax.random.normal(normal_key, (*shape, self.dim))
        return jnp.where(self.kinds.real, normal, uniform)

    # -- batched conveniences --------------------------------------------------

    def log_prob(self, eta: ArrayLike, context: ArrayLike) -> Array:
        """``log q(η | c)`` over the broadcast leading axes of ``eta`` and ``context``."""
        return ConditionalEtaFlow(self, context).log_prob(eta)

    def sample(
        self, key: Array, sample_shape: tuple[int, ...] = (), context: ArrayLike | None = None
    ) -> Array:
        """η of shape ``sample_shape + context.shape[:-1] + (k,)``.

        ``context`` may be left out only by an unconditional flow (``context_dim = 0``).
        """
        if context is None:
            if self.context_dim:
                raise ValueError(
                    f"EtaFlow is conditional: pass a context of shape (..., {self.context_dim})"
                )
            context = jnp.zeros((0,))
        return ConditionalEtaFlow(self, context).sample(key, sample_shape)


def eta_flow(
    key: Array,
    parameters: Sequence[Parameter],
    context_dim: int,
    *,
    knots: int = 8,
    layers: int = 4,
    width: int = 32,
    depth: int = 2,
    tail_bound: float = 5.0,
) -> EtaFlow:
    """A conditional rational-quadratic spline flow over η in the parameters' supports.

    Args:
        key: PRNG key for the networks' initial weights.
        parameters: the transformation parameters (e.g. ``family.parameters``);
            supports ``Interval``, ``Periodic`` or ``Real``.
        context_dim: size of the context vector c (0 for an unconditional flow).
        knots: spline segments (bins) per coordinate and layer, at least 2.
        layers: coupling layers; with k = 1 each layer is a spline whose knots
            are a function of the context only.
        width, depth: hidden width and number of hidden layers of each network.
        tail_bound: real coordinates are splined on ``[-tail_bound, tail_bound]``.

    Raises:
        ValueError: empty ``parameters``; ``knots < 2``; bad sizes.
        TypeError: a ``Discrete`` or unknown support.

    >>> import jax
    >>> from invppl.transforms.support import Parameter, Real
    >>> flow = eta_flow(jax.random.key(0), [Parameter("tx", Real())], context_dim=2, width=8)
    >>> flow.shape, flow.cond_shape
    ((1,), (2,))
    """
    return EtaFlow(
        key,
        parameters,
        context_dim,
        knots=knots,
        layers=layers,
        width=width,
        depth=depth,
        tail_bound=tail_bound,
    )


# ---------------------------------------------------------------------------
# the support as a NumPyro constraint


class EtaSupport(constraints.Constraint):
    """η's support as a NumPyro constraint (``event_dim = 1``).

    Interval coordinates must lie in ``[low, high]``, periodic ones in
    ``[low, low + period]`` (the two ends are the same point), real ones be
    finite. ``biject_to(EtaSupport(...))`` maps R^k onto it (a sigmoid for
    intervals and, as NumPyro does for ``circular``, for periodic coordinates).
    """

    event_dim = 1

    def __init__(self, parameters: Sequence[Parameter]):
        self.parameters = check_parameters(parameters)

    def _bounds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(k,)`` lower and upper bounds (±inf for real coordinates), and which are bounded."""
        low, high = [], []
        for parameter in self.parameters:
            support = parameter.support
            if isinstance(support, Interval | Periodic):
                low.append(support.low)
                high.append(support.high)
            else:
                low.append(-np.inf)
                high.append(np.inf)
        return np.array(low), np.array(high), np.isfinite(low)

    def __call__(self, x: ArrayLike) -> Array:
        x = jnp.asarray(x)
        low, high, bounded = self._bounds()
        inside = (x >= low) & (x <= high) & ~jnp.isnan(x)
        inside = jnp.where(bounded, inside, jnp.isfinite(x))
        return jnp.all(inside, axis=-1)

    def feasible_like(self, prototype: ArrayLike) -> Array:
        low, high, bounded = self._bounds()
        middle = np.where(bounded, (np.where(bounded, low, 0) + np.where(bounded, high, 0)) / 2, 0)
        return jnp.broadcast_to(
            jnp.asarray(middle, dtype=jnp.result_type(float)), jnp.shape(prototype)
        )

    def tree_flatten(self) -> tuple[tuple[()], tuple[tuple[()], dict[str, object]]]:
        return (), ((), {"parameters": self.parameters})

    def eq(self, other: object, static: bool = False) -> bool:
        return isinstance(other, EtaSupport) and other.parameters == self.parameters

    def __repr__(self) -> str:
        names = ", ".join(f"{p.name}: {type(p.support).__name__}" for p in self.parameters)
        return f"EtaSupport({names})"


class _EtaSupportTransform(Transform):
    """R^k → :class:`EtaSupport`: sigmoid-affine on bounded coordinates, identity on real."""

    domain = constraints.real_vector

    def __init__(self, support: EtaSupport):
        self.support = support
        low, high, self._bounded = support._bounds()
        self._low = np.where(self._bounded, low, 0.0)
        self._span = np.where(self._bounded, np.where(self._bounded, high, 1.0) - self._low, 1.0)

    @property
    def codomain(self) -> EtaSupport:
        return self.support

    def __call__(self, x: ArrayLike) -> Array:
        x = jnp.asarray(x)
        return jnp.where(self._bounded, self._low + self._span * jax.nn.sigmoid(x), x)

    def _inverse(self, y: ArrayLike) -> Array:
        y = jnp.asarray(y)
        fraction = jnp.clip((y - self._low) / self._span, 1e-7, 1 - 1e-7)
        return jnp.where(self._bounded, jnp.log(fraction) - jnp.log1p(-fraction), y)

    def log_abs_det_jacobian(
        self, x: ArrayLike, y: ArrayLike, intermediates: object = None
    ) -> Array:
        x = jnp.asarray(x)
        log_det = jnp.log(self._span) - jax.nn.softplus(-x) - jax.nn.softplus(x)
        return jnp.sum(jnp.where(self._bounded, log_det, 0.0), axis=-1)

    def tree_flatten(self) -> tuple[tuple[()], tuple[tuple[()], dict[str, object]]]:
        return (), (
            (),
            {
                "support": self.support,
                "_bounded": self._bounded,
                "_low": self._low,
                "_span": self._span,
            },
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _EtaSupportTransform) and other.support == self.support


@biject_to.register(EtaSupport)
def _biject_to_eta_support(constraint: EtaSupport) -> Transform:
    return _EtaSupportTransform(constraint)


# ---------------------------------------------------------------------------
# the NumPyro face


class ConditionalEtaFlow(dist.Distribution):
    """The NumPyro distribution of η given a batch of contexts, from an :class:`EtaFlow`.

    ``batch_shape = context.shape[:-1]``, ``event_shape = (k,)``; ``sample`` is
    reparameterised (a differentiable map of base noise, in the flow's weights and
    in the context), so it serves as the amortised guide q(η | x) under
    ``Trace_ELBO`` as well as the prior p(η | x̂) in a model. The flow's weights
    are not NumPyro params by themselves: call the flow as registered by
    ``nnx_module(name, flow)(context)`` (or use :func:`sample_eta`).
    Gradients flow into the context too, so an encoder producing it trains jointly.

    Args:
        flow: the flow.
        context: ``(..., context_dim)``.
        validate_args: NumPyro's argument validation.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "context": constraints.real_vector
    }
    reparametrized_params: ClassVar[list[str]] = ["context"]
    pytree_data_fields = ("flow", "context")

    def __init__(self, flow: EtaFlow, context: ArrayLike, *, validate_args: bool | None = None):
        if not isinstance(flow, EtaFlow):
            raise TypeError(f"flow must be an EtaFlow (see eta_flow), got {type(flow).__name__}")
        self.flow = flow
        self.context = _check_context(context, flow.context_dim)
        super().__init__(
            batch_shape=self.context.shape[:-1],
            event_shape=flow.shape,
            validate_args=validate_args,
        )

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self) -> EtaSupport:
        return EtaSupport(self.flow.parameters)

    def _contexts(self, leading: tuple[int, ...]) -> Array:
        return jnp.broadcast_to(self.context, (*leading, self.flow.context_dim))

    def sample_with_log_prob(
        self, key: Array, sample_shape: tuple[int, ...] = ()
    ) -> tuple[Array, Array]:
        """Samples ``sample_shape + batch_shape + (k,)`` and their log-densities."""
        leading = tuple(sample_shape) + self.batch_shape
        noise = self.flow.base_noise(key, leading)
        transform = jnp.vectorize(self.flow.transform_noise, signature="(k),(c)->(k),()")
        return transform(noise, self._contexts(leading))

    def sample_with_intermediates(
        self, key: Array, sample_shape: tuple[int, ...] = ()
    ) -> tuple[Array, list[Array]]:
        """Samples with ``[log_prob]`` as NumPyro intermediates (saves the inverse pass)."""
        eta, log_prob = self.sample_with_log_prob(key, sample_shape)
        return eta, [log_prob]

    def sample(self, key: Array, sample_shape: tuple[int, ...] = ()) -> Array:
        return self.sample_with_log_prob(key, sample_shape)[0]

    def log_prob(self, value: ArrayLike, intermediates: list[Array] | None = None) -> Array:
        """``log p(η | c)``, ``sample_shape + batch_shape``; from ``intermediates`` when given."""
        if intermediates:
            return intermediates[0]
        value = jnp.asarray(value)
        if value.ndim < 1 or value.shape[-1] != self.flow.dim:
            raise ValueError(
                f"eta must have shape (..., k) = (..., {self.flow.dim}), got shape {value.shape}"
            )
        if self._validate_args:
            self._validate_sample(value)
        leading = jnp.broadcast_shapes(value.shape[:-1], self.batch_shape)
        log_prob = jnp.vectorize(self.flow.inverse_log_prob, signature="(k),(c)->()")
        return log_prob(jnp.broadcast_to(value, (*leading, self.flow.dim)), self._contexts(leading))


# ---------------------------------------------------------------------------
# inside models and guides


def register_eta_flow(name: str, flow: EtaFlow) -> EtaFlow:
    """Registers the flow's weights with NumPyro, as ``nnx_module(name, flow)``, and returns it.

    The param site is ``f"{name}$params"`` (the flow's ``nnx.Param`` s as a pure
    dict), as for every network. Inside SVI the returned flow carries the
    current weights; outside any handler it holds ``flow``'s.

    >>> import jax
    >>> from invppl.transforms.support import Parameter, Real
    >>> flow = eta_flow(jax.random.key(0), [Parameter("tx", Real())], context_dim=1, width=4)
    >>> register_eta_flow("eta_flow", flow).shape
    (1,)
    """
    bound = nnx_module(name, flow)  # calls the registered flow: a context → its distribution
    return bound(jnp.zeros((flow.context_dim,)), validate_args=False).flow


def with_fitted_flow(flow: EtaFlow, name: str, params: Mapping[str, Any]) -> EtaFlow:
    """``flow`` with the weights a fit stored under the param site ``f"{name}$params"``.

    The inverse of :func:`register_eta_flow` (and :func:`sample_eta`'s
    ``param_name``): ``params`` is e.g. ``FitResult.params``; the result is a
    copy of ``flow`` usable outside NumPyro, ``flow`` itself is not changed
    (:func:`invppl.nn.with_fitted_params`, as for any network).
    """
    return with_fitted_params(flow, name, params)


def sample_eta(
    name: str,
    flow: EtaFlow,
    context: ArrayLike,
    *,
    param_name: str | None = None,
    obs: ArrayLike | None = None,
) -> Array:
    """``numpyro.sample(name, nnx_module(param_name, flow)(context))``: the weights as params.

    Args:
        name: the sample site's name.
        flow: the initial flow (its weights seed the param site).
        context: ``(batch, context_dim)``; inside ``numpyro.plate("data", batch)``.
        param_name: the flow's module name, ``f"{name}_flow"`` by default; its
            param site is ``f"{param_name}$params"``.
        obs: observed η ``(batch, k)``, to condition on instead of sampling.

    Returns:
        η ``(batch, k)``.

    >>> import jax, jax.numpy as jnp, numpyro
    >>> from invppl.transforms.support import Parameter, Periodic
    >>> flow = eta_flow(jax.random.key(0), [Parameter("angle", Periodic())], 2, width=4)
    >>> def guide(context):
    ...     with numpyro.plate("data", context.shape[0]):
    ...         return sample_eta("eta", flow, context)
    >>> trace = numpyro.handlers.trace(numpyro.handlers.seed(guide, 0)).get_trace(jnp.ones((3, 2)))
    >>> trace["eta"]["value"].shape, trace["eta_flow$params"]["type"]
    ((3, 1), 'param')
    """
    distribution = nnx_module(param_name or f"{name}_flow", flow)(context)
    return numpyro.sample(name, distribution, obs=obs)
