"""RealNVP's bijectors (Dinh et al. 2017) as NumPyro ``Transform`` s.

Each class here is an ordinary :class:`numpyro.distributions.transforms.Transform`
with an exact ``log_abs_det_jacobian``, an exact inverse, declared
``domain`` / ``codomain`` (``constraints.independent(real, k)`` over its event)
and a pytree structure (``tree_flatten``), so that it composes with NumPyro's
``ComposeTransform`` and ``TransformedDistribution`` and passes through
``jax.jit`` and ``jax.grad``. In a ``TransformedDistribution`` the forward map
goes from the base (latent) side to the data side, and ``log_prob`` runs the
inverses from the data side.

- :class:`AffineCoupling`: ``y = b⊙x + (1−b)⊙(x·exp(s(b⊙x)) + t(b⊙x))``, ``s``
  and ``t`` given by any callable (a Flax NNX network, a function).
- :func:`checkerboard_mask`, :func:`channel_mask` (images ``(H, W, C)``) and
  :func:`alternating_mask` (vectors): the fixed ``b`` s.
- :class:`Squeeze`: space to channels, ``(H, W, C) → (H/2, W/2, 4C)`` by 2×2 blocks.
- :class:`FactorOut`: the multi-scale step, identity on the first channels and
  a given transform on the others.
- :class:`ActNorm` (with the data-dependent :meth:`ActNorm.from_data`) and
  :class:`BatchNorm` (running statistics in a NumPyro mutable-state dict).

>>> import jax.numpy as jnp
>>> mask = alternating_mask(2, parity=0)
>>> layer = AffineCoupling(mask, lambda kept: (jnp.tanh(kept[..., ::-1]), kept[..., ::-1]))
>>> x = jnp.array([0.5, -1.0])
>>> y = layer(x)
>>> bool(jnp.allclose(layer.inv(y), x)), bool(y[0] == x[0])
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, MutableMapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import Array
from jax.typing import ArrayLike
from numpyro.distributions import constraints
from numpyro.distributions.transforms import ComposeTransform, Transform
from numpyro.distributions.util import sum_rightmost

__all__ = [
    "ActNorm",
    "AffineCoupling",
    "BatchNorm",
    "FactorOut",
    "Squeeze",
    "alternating_mask",
    "channel_mask",
    "checkerboard_mask",
    "inverse_and_log_det",
]

Conditioner = Callable[[Array], Any]
"""``kept (..., *event) → (s, t)`` (a pair of ``(..., *event)``) or one ``(..., *event, 2)``."""


# ---------------------------------------------------------------------------
# checks shared by the transforms


def _is_concrete(raw: Any, values: Array) -> bool:
    """Whether ``raw`` (converted to ``values``) has values known now, not only when run.

    Under ``jax.jit`` a NumPy array becomes a tracer on conversion though its
    values are known, and a concrete ``jax.Array`` captured by a closure stays
    concrete while every ``jnp`` operation on it is traced.
    """
    if not isinstance(values, jax.core.Tracer):
        return True
    return isinstance(raw, np.ndarray | np.generic | int | float | complex)


def _check_input(values: ArrayLike, event_dim: int, what: str) -> Array:
    """``values`` as an array of at least ``event_dim`` axes without NaN (checked when concrete).

    The shape is always checked; the NaN check only runs on concrete values (eagerly, or
    on a constant captured inside ``jax.jit``, evaluated at trace time) and is skipped for
    tracers, whose values are not known until the compiled function runs.
    """
    raw = values
    values = jnp.asarray(values)
    if values.ndim < event_dim:
        raise ValueError(
            f"{what}: expected an input with at least {event_dim} axes (..., *event), "
            f"got shape {values.shape}"
        )
    if jnp.issubdtype(values.dtype, jnp.inexact) and _is_concrete(raw, values):
        with jax.ensure_compile_time_eval():  # evaluate now, even while jit traces
            has_nan = bool(jnp.any(jnp.isnan(jnp.asarray(raw))))
        if has_nan:
            raise ValueError(f"{what}: the input holds NaN")
    return values


def _check_event(values: Array, event_shape: tuple[int, ...], what: str) -> None:
    if values.shape[values.ndim - len(event_shape) :] != event_shape:
        raise ValueError(
            f"{what}: expected an input of shape (..., {', '.join(map(str, event_shape))}), "
            f"got shape {values.shape}"
        )


def _nested_tuple(array: np.ndarray) -> Any:
    return bool(array) if array.ndim == 0 else tuple(_nested_tuple(row) for row in array)


# ---------------------------------------------------------------------------
# masks: True where b = 1 (the coordinate is kept and conditioned on)


def _check_mask(mask: np.ndarray, what: str) -> np.ndarray:
    if mask.all() or not mask.any():
        kind = "transforms nothing" if mask.all() else "leaves no dimension to condition on"
        raise ValueError(f"{what}: the mask {kind} (event of shape {mask.shape})")
    return mask


def alternating_mask(size: int, parity: int = 0) -> np.ndarray:
    """``b`` ``(size,)`` for vectors: ``True`` (kept) at even indices, at odd ones if ``parity``.

    >>> alternating_mask(4, parity=1)
    array([False,  True, False,  True])
    """
    if size < 2:
        raise ValueError(
            f"alternating_mask: a vector of size {size} leaves no dimension to condition on"
        )
    return _check_mask(np.arange(size) % 2 == parity % 2, "alternating_mask")


def checkerboard_mask(shape: tuple[int, int, int], parity: int = 0) -> np.ndarray:
    """``b`` ``(H, W, C)``: kept where ``(row + column) % 2 == parity``, the same in every channel.

    >>> checkerboard_mask((2, 2, 1))[..., 0]
    array([[ True, False],
           [False,  True]])
    """
    height, width, channels = _image_shape(shape, "checkerboard_mask")
    board = (np.indices((height, width)).sum(0) % 2) == parity % 2
    return _check_mask(np.repeat(board[..., None], channels, -1), "checkerboard_mask")


def channel_mask(shape: tuple[int, int, int], parity: int = 0) -> np.ndarray:
    """``b`` ``(H, W, C)``: the first ``C // 2`` channels kept (the others if ``parity``).

    >>> channel_mask((1, 1, 4), parity=1)[0, 0]
    array([False, False,  True,  True])
    """
    height, width, channels = _image_shape(shape, "channel_mask")
    if channels < 2:
        raise ValueError(
            f"channel_mask: an image with {channels} channel leaves no dimension to condition "
            "on; squeeze it first"
        )
    first = np.arange(channels) < channels // 2
    kept = ~first if parity % 2 else first
    return np.broadcast_to(kept, (height, width, channels)).copy()


def _image_shape(shape: tuple[int, ...], what: str) -> tuple[int, int, int]:
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{what}: expected an image shape (H, W, C), got {tuple(shape)}")
    return int(shape[0]), int(shape[1]), int(shape[2])


# ---------------------------------------------------------------------------
# affine coupling


class AffineCoupling(Transform):
    """``y = b⊙x + (1−b)⊙(x·exp(s(b⊙x)) + t(b⊙x))`` over events of the mask's shape.

    Args:
        mask: ``b``, booleans of the event's shape (e.g. ``(D,)`` or ``(H, W, C)``):
            ``True`` where the coordinate is kept and fed to the conditioner
            (the complement of :class:`invppl.nn.Coupling`'s "moved" mask).
        conditioner: ``b⊙x (..., *event) → (s, t)``, each ``(..., *event)``, or one
            array ``(..., *event, 2)`` with ``s`` and ``t`` on its last axis; any
            callable, e.g. a Flax NNX module (then a pytree child of the
            transform, so its weights are traced under ``jax.jit``).
        log_scale_bound: if given, ``s`` is soft-clamped to ``bound·tanh(s/bound)``
            (identity near 0, ``|s| < bound``), the stabilised log-scale of
            RealNVP; ``None`` uses ``s`` as it comes.

    The log-determinant is ``Σ (1−b)⊙s(b⊙x)`` per event, ``(...)``.
    """

    def __init__(
        self,
        mask: ArrayLike,
        conditioner: Conditioner,
        *,
        log_scale_bound: float | None = None,
    ) -> None:
        array = np.asarray(mask, dtype=bool)
        if array.ndim == 0:
            raise ValueError("AffineCoupling: mask must have the event's shape, got a scalar")
        _check_mask(array, "AffineCoupling")
        if not callable(conditioner):
            raise TypeError(f"AffineCoupling: conditioner must be callable, got {conditioner!r}")
        if log_scale_bound is not None and not (
            math.isfinite(log_scale_bound) and log_scale_bound > 0
        ):
            raise ValueError(
                f"AffineCoupling: log_scale_bound must be positive, got {log_scale_bound}"
            )
        self.mask_tuple = _nested_tuple(array)
        self.conditioner = conditioner
        self.log_scale_bound = log_scale_bound

    @property
    def mask(self) -> np.ndarray:
        """``b``, the event-shaped kept coordinates."""
        return np.asarray(self.mask_tuple, dtype=bool)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return np.shape(self.mask_tuple)

    @property
    def domain(self) -> constraints.Constraint:
        return constraints.independent(constraints.real, len(self.event_shape))

    @property
    def codomain(self) -> constraints.Constraint:
        return self.domain

    def _scale_and_shift(self, values: Array, what: str) -> tuple[Array, Array]:
        """``(s, t)`` of ``values`` ``(..., *event)``, zero on the kept coordinates."""
        _check_event(values, self.event_shape, what)
        mask = self.mask
        raw = self.conditioner(jnp.where(mask, values, 0.0))
        if isinstance(raw, tuple | list):
            log_scale, shift = raw
        else:
            if raw.shape[-1:] != (2,) or raw.ndim != values.ndim + 1:
                raise ValueError(
                    f"{what}: the conditioner must return (s, t) or an array (..., *event, 2), "
                    f"got shape {raw.shape} for an input of shape {values.shape}"
                )
            log_scale, shift = raw[..., 0], raw[..., 1]
        if self.log_scale_bound is not None:
            log_scale = self.log_scale_bound * jnp.tanh(log_scale / self.log_scale_bound)
        return jnp.where(mask, 0.0, log_scale), jnp.where(mask, 0.0, shift)

    def __call__(self, x: ArrayLike) -> Array:
        return self.call_with_intermediates(x)[0]

    def call_with_intermediates(self, x: ArrayLike) -> tuple[Array, Array]:
        """``y`` and ``s`` (both ``(..., *event)``), reused by :meth:`log_abs_det_jacobian`."""
        x = _check_input(x, len(self.event_shape), "AffineCoupling")
        log_scale, shift = self._scale_and_shift(x, "AffineCoupling")
        return jnp.where(self.mask, x, x * jnp.exp(log_scale) + shift), log_scale

    def _inverse(self, y: ArrayLike) -> Array:
        y = _check_input(y, len(self.event_shape), "AffineCoupling.inv")
        log_scale, shift = self._scale_and_shift(y, "AffineCoupling.inv")
        return jnp.where(self.mask, y, (y - shift) * jnp.exp(-log_scale))

    def log_abs_det_jacobian(self, x: ArrayLike, y: ArrayLike, intermediates: Any = None) -> Array:
        if intermediates is None:
            # s depends on the kept coordinates only, which x and y share: use y, as the
            # inverse does, so that under jit the conditioner is evaluated once
            intermediates = self._scale_and_shift(jnp.asarray(y), "AffineCoupling")[0]
        return jnp.sum(intermediates, axis=tuple(range(-len(self.event_shape), 0)))

    def tree_flatten(self) -> tuple[tuple[Any, ...], tuple[tuple[str, ...], dict[str, Any]]]:
        aux = {"mask_tuple": self.mask_tuple, "log_scale_bound": self.log_scale_bound}
        if isinstance(self.conditioner, nnx.Module):
            return (self.conditioner,), (("conditioner",), aux)
        return (), ((), {**aux, "conditioner": self.conditioner})

    def eq(self, other: object, static: bool = False) -> bool:
        return (
            isinstance(other, AffineCoupling)
            and other.mask_tuple == self.mask_tuple
            and other.conditioner is self.conditioner
            and other.log_scale_bound == self.log_scale_bound
        )


# ---------------------------------------------------------------------------
# squeeze and the multi-scale factoring-out


class Squeeze(Transform):
    """Space to channels: ``(..., H, W, C) → (..., H/2, W/2, 4C)``, each 2×2 block to channels.

    A permutation of the coordinates (log-determinant 0); output channel
    ``(2·i + j)·C + c`` holds pixel ``(2h + i, 2w + j)`` of channel ``c``. Its
    inverse ``Squeeze().inv`` maps channels back to space. H and W must be even.

    >>> x = jnp.arange(8.0).reshape(2, 2, 2)
    >>> Squeeze()(x).shape, bool((Squeeze().inv(Squeeze()(x)) == x).all())
    ((1, 1, 8), True)
    """

    domain = constraints.independent(constraints.real, 3)
    codomain = constraints.independent(constraints.real, 3)

    def __call__(self, x: ArrayLike) -> Array:
        x = _check_input(x, 3, "Squeeze")
        *leading, height, width, channels = x.shape
        self.forward_shape(x.shape)
        blocks = x.reshape((*leading, height // 2, 2, width // 2, 2, channels))
        blocks = jnp.moveaxis(blocks, -4, -3)  # (..., H/2, W/2, 2, 2, C)
        return blocks.reshape((*leading, height // 2, width // 2, 4 * channels))

    def _inverse(self, y: ArrayLike) -> Array:
        y = _check_input(y, 3, "Squeeze.inv")
        *leading, height, width, channels = self.inverse_shape(y.shape)
        blocks = y.reshape((*leading, height // 2, width // 2, 2, 2, channels))
        blocks = jnp.moveaxis(blocks, -3, -4)  # (..., H/2, 2, W/2, 2, C)
        return blocks.reshape((*leading, height, width, channels))

    def log_abs_det_jacobian(self, x: ArrayLike, y: ArrayLike, intermediates: Any = None) -> Array:
        return jnp.zeros(jnp.shape(x)[:-3], jnp.result_type(x, float))

    def forward_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) < 3 or shape[-3] % 2 or shape[-2] % 2:
            raise ValueError(
                f"Squeeze: expected (..., H, W, C) with H and W even, got shape {tuple(shape)}"
            )
        return (*shape[:-3], shape[-3] // 2, shape[-2] // 2, 4 * shape[-1])

    def inverse_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) < 3 or shape[-1] % 4:
            raise ValueError(
                "Squeeze.inv: expected (..., H, W, C) with C a multiple of 4, "
                f"got shape {tuple(shape)}"
            )
        return (*shape[:-3], 2 * shape[-3], 2 * shape[-2], shape[-1] // 4)

    def tree_flatten(self) -> tuple[tuple[()], tuple[tuple[()], dict[str, Any]]]:
        return (), ((), {})

    def eq(self, other: object, static: bool = False) -> bool:
        return isinstance(other, Squeeze)


def inverse_and_log_det(transform: Transform, y: ArrayLike, event_dim: int) -> tuple[Array, Array]:
    """``x = transform⁻¹(y)`` and ``log |det ∂transform/∂x|`` ``(...)``, from the data side.

    Runs a ``ComposeTransform`` part by part from its last, as
    ``TransformedDistribution.log_prob`` does, so every part computes its
    log-determinant from its own data-side input (which :class:`BatchNorm` in
    training needs). ``event_dim``: the event rank of ``y``.
    """
    if isinstance(transform, ComposeTransform):
        total: Array = jnp.zeros(())
        value = jnp.asarray(y)
        for part in reversed(transform.parts):
            value, log_det = inverse_and_log_det(part, value, event_dim)
            total = total + log_det
        return value, total
    x = transform.inv(y)
    log_det = transform.log_abs_det_jacobian(x, y)
    return x, sum_rightmost(log_det, event_dim - transform.codomain.event_dim)


class FactorOut(Transform):
    """``(..., H, W, C)``: the first ``C − k`` channels unchanged, ``inner`` on the last ``k``.

    The multi-scale architecture of RealNVP: after a squeeze, half of the
    channels are *factored out* (they are final latent coordinates, the identity
    here) and the other half go on through the next scale, ``inner``. Nesting
    factor-outs keeps the whole flow one bijection of ``(H, W, C)``, so a flow is
    a ``TransformedDistribution`` over one standard-normal base of the image's shape.

    Args:
        inner: a shape-preserving transform of ``(..., H, W, k)`` events
            (e.g. a ``ComposeTransform`` of couplings and further factor-outs).
        channels: ``k``, how many (last) channels ``inner`` transforms.
    """

    domain = constraints.independent(constraints.real, 3)
    codomain = constraints.independent(constraints.real, 3)

    def __init__(self, inner: Transform, channels: int) -> None:
        if not isinstance(inner, Transform):
            raise TypeError(f"FactorOut: inner must be a Transform, got {type(inner).__name__}")
        if inner.domain.event_dim > 3 or inner.codomain.event_dim > 3:
            raise ValueError("FactorOut: inner must act on events of rank at most 3 (H, W, k)")
        if channels < 1:
            raise ValueError(f"FactorOut: channels must be positive, got {channels}")
        self.inner = inner
        self.channels = int(channels)

    def _split(self, values: ArrayLike, what: str) -> tuple[Array, Array]:
        values = _check_input(values, 3, what)
        if values.shape[-1] <= self.channels:
            raise ValueError(
                f"{what}: an input of shape {values.shape} has no channel left to factor out "
                f"beside the {self.channels} that inner transforms"
            )
        return values[..., : -self.channels], values[..., -self.channels :]

    def __call__(self, x: ArrayLike) -> Array:
        kept, moved = self._split(x, "FactorOut")
        return jnp.concatenate([kept, self.inner(moved)], axis=-1)

    def _inverse(self, y: ArrayLike) -> Array:
        kept, moved = self._split(y, "FactorOut.inv")
        return jnp.concatenate([kept, self.inner.inv(moved)], axis=-1)

    def log_abs_det_jacobian(self, x: ArrayLike, y: ArrayLike, intermediates: Any = None) -> Array:
        _, moved = self._split(y, "FactorOut")
        return inverse_and_log_det(self.inner, moved, 3)[1]

    def tree_flatten(self) -> tuple[tuple[Transform], tuple[tuple[str], dict[str, int]]]:
        return (self.inner,), (("inner",), {"channels": self.channels})

    def eq(self, other: object, static: bool = False) -> bool:
        return (
            isinstance(other, FactorOut)
            and other.channels == self.channels
            and bool(other.inner.eq(self.inner, static))
        )


# ---------------------------------------------------------------------------
# normalisation layers: per-channel (last axis) affine maps


def _positions(shape: tuple[int, ...], event_dim: int) -> int:
    """How many times each channel occurs in one event (the product of its non-channel axes)."""
    return math.prod(shape[len(shape) - event_dim : -1]) if event_dim > 1 else 1


def _check_event_dim(event_dim: int, what: str) -> int:
    if event_dim not in (1, 3):
        raise ValueError(f"{what}: event_dim must be 1 (vectors) or 3 (images), got {event_dim}")
    return event_dim


class _PerChannel(Transform):
    """A per-channel map of ``(..., D)`` vectors (``event_dim`` 1) or ``(..., H, W, C)``
    images (3), with ``(C,)`` parameters ``log_scale``: its domain and input checks."""

    event_dim: int
    log_scale: Array

    @property
    def domain(self) -> constraints.Constraint:
        return constraints.independent(constraints.real, self.event_dim)

    @property
    def codomain(self) -> constraints.Constraint:
        return self.domain

    def _check(self, values: ArrayLike, what: str) -> Array:
        values = _check_input(values, self.event_dim, what)
        _check_event(values, self.log_scale.shape, what)
        return values


class ActNorm(_PerChannel):
    """``y = x·exp(log_scale) + shift``, per channel (the last axis) of ``(..., D)`` or images.

    Glow's activation normalisation. ``log_scale`` and ``shift`` are ``(C,)``;
    the log-determinant is ``positions·Σ log_scale`` per event. Build one from a
    batch with :meth:`from_data` (data-dependent initialisation).
    """

    def __init__(self, log_scale: ArrayLike, shift: ArrayLike, *, event_dim: int) -> None:
        self.event_dim = _check_event_dim(event_dim, "ActNorm")
        self.log_scale = jnp.asarray(log_scale)
        self.shift = jnp.asarray(shift)
        if self.log_scale.ndim != 1 or self.shift.shape != self.log_scale.shape:
            raise ValueError(
                f"ActNorm: log_scale and shift must both be (C,), got {self.log_scale.shape} "
                f"and {self.shift.shape}"
            )

    @classmethod
    def from_data(cls, y: ArrayLike, *, event_dim: int, eps: float = 1e-6) -> ActNorm:
        """The ActNorm whose inverse maps the batch ``y`` ``(batch..., *event)`` to zero mean,
        unit variance per channel (its data-dependent initialisation)."""
        y = _check_input(y, max(_check_event_dim(event_dim, "ActNorm"), 2), "ActNorm.from_data")
        axes = tuple(range(y.ndim - 1))
        return cls(jnp.log(jnp.std(y, axes) + eps), jnp.mean(y, axes), event_dim=event_dim)

    def __call__(self, x: ArrayLike) -> Array:
        return self._check(x, "ActNorm") * jnp.exp(self.log_scale) + self.shift

    def _inverse(self, y: ArrayLike) -> Array:
        return (self._check(y, "ActNorm.inv") - self.shift) * jnp.exp(-self.log_scale)

    def log_abs_det_jacobian(self, x: ArrayLike, y: ArrayLike, intermediates: Any = None) -> Array:
        shape = jnp.shape(x)
        total = _positions(shape, self.event_dim) * jnp.sum(self.log_scale)
        return jnp.broadcast_to(total, shape[: len(shape) - self.event_dim])

    def tree_flatten(self) -> tuple[tuple[Array, Array], tuple[tuple[str, str], dict[str, int]]]:
        return (self.log_scale, self.shift), (("log_scale", "shift"), {"event_dim": self.event_dim})

    def eq(self, other: object, static: bool = False) -> bool:
        return isinstance(other, ActNorm) and other is self


class BatchNorm(_PerChannel):
    """Batch normalisation as a bijector: its *inverse* normalises, per channel (last axis).

    From the data side (``log_prob``), ``x = (y − μ) / √(σ² + ε) · exp(log_scale) + shift``;
    the forward (sampling) map undoes it. With ``training=False`` ``(μ, σ²)`` are
    the running statistics; with ``training=True`` they are the statistics of
    the batch being normalised (over every axis but the channel: the leading
    batch axes and, for images, H and W), treated as constants of the example
    in the log-determinant as in Dinh et al. (2017), and the running
    statistics are updated into ``state``. The forward map always uses the
    running statistics (a sample has no batch to take statistics from).

    Args:
        log_scale, shift: ``(C,)`` the learnt affine map after normalising.
        state: ``{"mean": (C,), "var": (C,)}``, the running statistics; in a
            model, the value of a ``numpyro.mutable`` site (see
            :func:`invppl.distributions.realnvp_sample`), which NumPyro's
            ``Trace_ELBO`` carries from step to step. In training the inverse
            writes ``momentum·running + (1 − momentum)·batch`` (no gradient)
            into it, computed from the values it held when the transform was
            built (so a second pass over the same batch writes the same update).
            The dict is not part of the pytree: a copy made by ``jax.tree`` (e.g.
            a transform passed into ``jax.jit``) does not update it.
        event_dim: 1 for ``(..., D)``, 3 for ``(..., H, W, C)``.
        training: batch statistics (and updates) or the running ones.
        momentum: the running statistics' decay per update.
        eps: ε in the normaliser.
    """

    def __init__(
        self,
        log_scale: ArrayLike,
        shift: ArrayLike,
        state: MutableMapping[str, Any],
        *,
        event_dim: int,
        training: bool = False,
        momentum: float = 0.9,
        eps: float = 1e-5,
    ) -> None:
        self.event_dim = _check_event_dim(event_dim, "BatchNorm")
        self.log_scale, self.shift = jnp.asarray(log_scale), jnp.asarray(shift)
        if not {"mean", "var"} <= set(state):
            raise ValueError(f"BatchNorm: state must hold 'mean' and 'var', got {sorted(state)}")
        self.mean, self.var = jnp.asarray(state["mean"]), jnp.asarray(state["var"])
        self.state: MutableMapping[str, Any] | None = state
        shapes = {self.log_scale.shape, self.shift.shape, self.mean.shape, self.var.shape}
        if len(shapes) != 1 or self.log_scale.ndim != 1:
            raise ValueError(f"BatchNorm: parameters and statistics must all be (C,), got {shapes}")
        if not 0.0 <= momentum < 1.0 or eps <= 0:
            raise ValueError(
                f"BatchNorm: need 0 ≤ momentum < 1 and eps > 0, got {momentum} and {eps}"
            )
        self.training = bool(training)
        self.momentum, self.eps = float(momentum), float(eps)

    def _statistics(self, y: Array) -> tuple[Array, Array]:
        """``(μ, σ²)`` ``(C,)``: of the batch ``y`` in training, the running ones otherwise."""
        if not self.training:
            return self.mean, self.var
        axes = tuple(range(y.ndim - 1))
        if math.prod(y.shape[:-1]) < 2:
            raise ValueError(
                f"BatchNorm: training needs at least two values per channel, got shape {y.shape}"
            )
        return jnp.mean(y, axes), jnp.var(y, axes)

    def __call__(self, x: ArrayLike) -> Array:
        x = self._check(x, "BatchNorm")
        standard = (x - self.shift) * jnp.exp(-self.log_scale)
        return standard * jnp.sqrt(self.var + self.eps) + self.mean

    def _inverse(self, y: ArrayLike) -> Array:
        y = self._check(y, "BatchNorm.inv")
        mean, var = self._statistics(y)
        if self.training and self.state is not None:
            decay = self.momentum
            self.state["mean"] = jax.lax.stop_gradient(decay * self.mean + (1 - decay) * mean)
            self.state["var"] = jax.lax.stop_gradient(decay * self.var + (1 - decay) * var)
        return (y - mean) / jnp.sqrt(var + self.eps) * jnp.exp(self.log_scale) + self.shift

    def log_abs_det_jacobian(self, x: ArrayLike, y: ArrayLike, intermediates: Any = None) -> Array:
        y = jnp.asarray(y)
        var = self._statistics(y)[1]
        per_channel = 0.5 * jnp.log(var + self.eps) - self.log_scale
        total = _positions(y.shape, self.event_dim) * jnp.sum(per_channel)
        return jnp.broadcast_to(total, y.shape[: y.ndim - self.event_dim])

    def tree_flatten(self) -> tuple[tuple[Array, ...], tuple[tuple[str, ...], dict[str, Any]]]:
        aux = {
            "event_dim": self.event_dim,
            "training": self.training,
            "momentum": self.momentum,
            "eps": self.eps,
            "state": None,  # the mutable dict stays with the original (see the class notes)
        }
        return (self.log_scale, self.shift, self.mean, self.var), (
            ("log_scale", "shift", "mean", "var"),
            aux,
        )

    def eq(self, other: object, static: bool = False) -> bool:
        return isinstance(other, BatchNorm) and other is self
