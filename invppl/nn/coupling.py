"""Coupling layers: a mask, an NNX conditioner and a transformer (Dinh et al. 2017).

A coupling layer splits the coordinates of an event by a fixed boolean
``mask``: the coordinates where it is ``True`` are *moved*, the others are
*kept*. A conditioner network sees the kept coordinates (the moved ones are
zeroed out of its input) and a context c, and outputs the raw parameters θ of
a transformer τ, an invertible map of each moved coordinate::

    y_kept  = x_kept
    y_moved = τ(x_moved; θ),   θ = conditioner(x_kept, c)
    log |det ∂y/∂x| = Σ_moved log |∂τ/∂x|

Because θ does not depend on the moved coordinates, the Jacobian is triangular
and the inverse is the same layer with τ⁻¹. The transformer decides the family:
rational-quadratic splines (the η flow of :mod:`invppl.distributions.eta_flow`)
or :func:`affine_transformer` (RealNVP: ``y = x · exp(s) + t``). Masks that
alternate between layers (even/odd coordinates, checkerboards, channel halves)
let every coordinate move.

:class:`Coupling` is a Flax NNX module: its ``nnx.Param`` s are those of its
conditioner, so a flow built from couplings registers with NumPyro through
``numpyro.contrib.module.nnx_module`` like any other network.

>>> import jax, jax.numpy as jnp
>>> from flax import nnx
>>> conditioner = MLPConditioner((3,), (3, 2), 0, width=8, depth=1, rngs=nnx.Rngs(0))
>>> layer = Coupling((True, False, True), conditioner, affine_transformer)
>>> x = jnp.array([[0.5, -1.0, 2.0]])
>>> y, log_det = layer(x)
>>> back, inverse_log_det = layer(y, inverse=True)
>>> bool(jnp.allclose(back, x, atol=1e-5)), bool(y[0, 1] == x[0, 1]), log_det.shape
(True, True, (1,))
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import Array
from jax.typing import ArrayLike

__all__ = [
    "Coupling",
    "CouplingStack",
    "MLPConditioner",
    "Transformer",
    "affine_transformer",
    "alternating_masks",
]


class Transformer(Protocol):
    """τ: ``(values (..., *event), raw (..., *event, p)) → (outputs, log |∂τ/∂x|)``.

    Both outputs have the shape of ``values``; the log-derivative is per
    coordinate, in the direction taken (of τ⁻¹ when ``inverse``). It must
    broadcast over leading axes and be elementwise in the coordinates.
    """

    def __call__(
        self, values: Array, raw: Array, *, inverse: bool
    ) -> tuple[Array, Array]: ...  # pragma: no cover - a protocol


def affine_transformer(values: Array, raw: Array, *, inverse: bool) -> tuple[Array, Array]:
    """RealNVP's ``y = x · exp(s) + t`` with ``raw[..., 0] = s`` and ``raw[..., 1] = t``.

    Args:
        values: ``(..., *event)``.
        raw: ``(..., *event, 2)``: log-scale and shift per coordinate.
        inverse: whether to apply ``x = (y - t) · exp(-s)``.

    Returns:
        The outputs and ``log |∂out/∂in|`` (``s``, or ``-s`` inverse), both ``(..., *event)``.
    """
    log_scale, shift = raw[..., 0], raw[..., 1]
    if inverse:
        return (values - shift) * jnp.exp(-log_scale), -log_scale
    return values * jnp.exp(log_scale) + shift, log_scale


def alternating_masks(size: int, layers: int) -> tuple[tuple[bool, ...], ...]:
    """Per layer, the moved coordinates of ``size``: even ones, then odd ones, in turn.

    With ``size = 1`` every layer moves the coordinate (its transformer is then a
    function of the context only).

    >>> alternating_masks(3, 2)
    ((True, False, True), (False, True, False))
    """
    return tuple(
        tuple(size == 1 or (i + layer) % 2 == 0 for i in range(size)) for layer in range(layers)
    )


@dataclasses.dataclass(frozen=True)
class _Uniform:
    """``U(-limit, limit)`` initialiser (a value, so equal modules have equal tree structures)."""

    limit: float

    def __call__(self, key: Array, shape: Sequence[int], dtype: object = jnp.float32) -> Array:
        return jax.random.uniform(key, tuple(shape), dtype, -self.limit, self.limit)  # type: ignore[arg-type]


class MLPConditioner(nnx.Module):
    """A SiLU network ``(inputs (..., *in_shape), context (..., c)) → (..., *out_shape)``.

    The inputs are flattened and the context appended; hidden layers are
    Linear → SiLU. Every weight and bias starts uniform on ``±1/√fan_in`` (as
    equinox's ``Linear``), so a transformer whose raw parameters 0 mean the
    identity starts near it but not exactly at it.

    >>> from flax import nnx
    >>> net = MLPConditioner((2, 2), (2, 5), 3, width=8, depth=2, rngs=nnx.Rngs(0))
    >>> net(jnp.ones((4, 2, 2)), jnp.ones((4, 3))).shape
    (4, 2, 5)
    """

    def __init__(
        self,
        in_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
        context_dim: int,
        *,
        width: int,
        depth: int,
        rngs: nnx.Rngs,
    ) -> None:
        self.in_shape = tuple(int(n) for n in in_shape)
        self.out_shape = tuple(int(n) for n in out_shape)
        self.context_dim = int(context_dim)
        sizes = [math.prod(self.in_shape) + self.context_dim, *([width] * depth)]
        sizes.append(math.prod(self.out_shape))
        self.layers = nnx.List(
            [
                nnx.Linear(
                    n_in,
                    n_out,
                    kernel_init=_Uniform(1 / math.sqrt(n_in)),
                    bias_init=_Uniform(1 / math.sqrt(n_in)),
                    rngs=rngs,
                )
                for n_in, n_out in itertools.pairwise(sizes)
            ]
        )

    def __call__(self, inputs: Array, context: Array | None = None) -> Array:
        leading = inputs.shape[: inputs.ndim - len(self.in_shape)]
        x = inputs.reshape((*leading, -1))
        if self.context_dim:
            if context is None:
                raise ValueError(f"this conditioner needs a context of size {self.context_dim}")
            x = jnp.concatenate([x, jnp.broadcast_to(context, (*leading, self.context_dim))], -1)
        for layer in self.layers[:-1]:
            x = jax.nn.silu(layer(x))
        return self.layers[-1](x).reshape((*leading, *self.out_shape))


Features = Callable[[Array], Array]


def _couple(
    mask: np.ndarray | Array,
    conditioner: nnx.Module,
    transformer: Transformer,
    features: Features | None,
    values: Array,
    context: Array | None,
    inverse: bool,
) -> tuple[Array, Array]:
    """One coupling step; ``mask`` ``event``-shaped booleans, concrete or traced."""
    if features is None:
        inputs = jnp.where(mask, 0.0, values)
    else:
        inputs = jnp.where(mask[..., None], 0.0, features(values))
    raw = conditioner(inputs) if context is None else conditioner(inputs, context)
    moved, log_det = transformer(values, raw, inverse=inverse)
    event_axes = tuple(range(-mask.ndim, 0))
    return jnp.where(mask, moved, values), jnp.sum(jnp.where(mask, log_det, 0.0), event_axes)


class Coupling(nnx.Module):
    """One coupling layer ``(..., *event) → (..., *event)`` with its ``log |det|`` ``(...)``.

    Args:
        mask: ``event``-shaped booleans (nested sequences or an array): ``True``
            where the layer moves the coordinate. Stored as nested tuples, a
            static value (not an NNX variable, so not a NumPyro param or state).
        conditioner: an NNX module called as ``conditioner(inputs, context)``
            (``conditioner(inputs)`` without a context): inputs ``(..., *event)``
            or ``(..., *event, f)`` with ``features``, the moved coordinates
            zeroed; output the raw parameters ``(..., *event, p)`` of ``transformer``.
            It should hold ``nnx.Param`` s only (no mutable state).
        transformer: τ (see :class:`Transformer`); a hashable value (a function,
            or a frozen dataclass) so that equal layers compile once.
        features: optional ``(..., *event) → (..., *event, f)`` per-coordinate
            network inputs (e.g. ``(cos, sin)`` of angles), computed before masking.
    """

    def __init__(
        self,
        mask: ArrayLike | Sequence[object],
        conditioner: nnx.Module,
        transformer: Transformer,
        *,
        features: Features | None = None,
    ) -> None:
        array = np.asarray(mask, dtype=bool)
        if array.ndim == 0:
            raise ValueError("mask must have the event's shape, got a scalar")
        self.mask = _nested_tuple(array)
        self.conditioner = conditioner
        self.transformer = transformer
        self.features = features

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one event (the mask's)."""
        return np.asarray(self.mask, dtype=bool).shape

    def __call__(
        self, values: Array, context: Array | None = None, *, inverse: bool = False
    ) -> tuple[Array, Array]:
        """Moves the masked coordinates; ``inverse`` applies τ⁻¹ with the same θ.

        Args:
            values: ``(..., *event)``.
            context: ``(..., c)`` or ``None``, passed to the conditioner.
            inverse: whether to invert the layer.

        Returns:
            The outputs ``(..., *event)`` and ``log |det ∂out/∂in|`` ``(...)``.
        """
        mask = np.asarray(self.mask, dtype=bool)
        return _couple(
            mask, self.conditioner, self.transformer, self.features, values, context, inverse
        )


def _nested_tuple(array: np.ndarray) -> tuple:
    if array.ndim == 1:
        return tuple(bool(b) for b in array)
    return tuple(_nested_tuple(row) for row in array)


class CouplingStack(nnx.Module):
    """Coupling layers of one structure, stacked and run by ``jax.lax.scan``.

    The layers differ only in their masks and weights: the conditioners' weights
    are stored with a leading ``layers`` axis, so compiling costs one layer
    whatever their number (and on CPU the scan runs faster than the unrolled
    layers). ``stack[i]`` is layer i as a :class:`Coupling`.

    Args:
        masks: ``(layers, *event)`` booleans, per layer (see :class:`Coupling`).
        conditioners: one NNX conditioner per layer, all of one structure (the
            same graph, e.g. built by one constructor), holding ``nnx.Param`` s only.
        transformer, features: shared by every layer (see :class:`Coupling`).

    >>> from flax import nnx
    >>> rngs = nnx.Rngs(0)
    >>> nets = [MLPConditioner((4,), (4, 2), 0, width=8, depth=1, rngs=rngs) for _ in range(3)]
    >>> stack = CouplingStack(alternating_masks(4, 3), nets, affine_transformer)
    >>> x = jnp.ones((5, 4))
    >>> y, log_det = stack(x)
    >>> bool(jnp.allclose(stack(y, inverse=True)[0], x, atol=1e-5)), log_det.shape
    (True, (5,))
    """

    def __init__(
        self,
        masks: ArrayLike | Sequence[object],
        conditioners: Sequence[nnx.Module],
        transformer: Transformer,
        *,
        features: Features | None = None,
    ) -> None:
        array = np.asarray(masks, dtype=bool)
        if array.ndim < 2 or array.shape[0] != len(conditioners) or not len(conditioners):
            raise ValueError(
                f"masks must be (layers, *event) with one conditioner per layer, got masks "
                f"of shape {array.shape} and {len(conditioners)} conditioners"
            )
        graphs, states = zip(*(nnx.split(network) for network in conditioners), strict=True)
        if any(graph != graphs[0] for graph in graphs[1:]):
            raise ValueError("the conditioners of a CouplingStack must share one structure")
        self.masks = _nested_tuple(array)  # static
        stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
        self.conditioners = nnx.merge(graphs[0], stacked)  # every weight (layers, ...)
        self.transformer = transformer
        self.features = features

    def __len__(self) -> int:
        return len(self.masks)

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one event."""
        return np.asarray(self.masks, dtype=bool).shape[1:]

    def __getitem__(self, index: int) -> Coupling:
        """Layer ``index`` as a :class:`Coupling` (its own copy of the weights)."""
        graph, state = nnx.split(self.conditioners)
        layer = jax.tree.map(lambda leaf: leaf[index], state)
        mask = np.asarray(self.masks, dtype=bool)[index]
        conditioner = nnx.merge(graph, layer)
        return Coupling(mask, conditioner, self.transformer, features=self.features)

    def __call__(
        self, values: Array, context: Array | None = None, *, inverse: bool = False
    ) -> tuple[Array, Array]:
        """The layers first to last (last to first, each inverted, when ``inverse``).

        Args:
            values: ``(..., *event)``.
            context: ``(..., c)`` or ``None``, given to every layer.
            inverse: whether to invert the stack.

        Returns:
            The outputs ``(..., *event)`` and the total ``log |det|`` ``(...)``.
        """
        graph, state = nnx.split(self.conditioners)
        masks = jnp.asarray(np.asarray(self.masks, dtype=bool))
        leading = values.shape[: values.ndim - len(self.event_shape)]

        def step(carry: tuple[Array, Array], layer: tuple[Any, Array]) -> tuple:
            current, total = carry
            weights, mask = layer
            current, log_det = _couple(
                mask,
                nnx.merge(graph, weights),
                self.transformer,
                self.features,
                current,
                context,
                inverse,
            )
            return (current, total + log_det), None

        start = (values, jnp.zeros(leading, values.dtype))
        (values, total), _ = jax.lax.scan(step, start, (state, masks), reverse=inverse)
        return values, total
