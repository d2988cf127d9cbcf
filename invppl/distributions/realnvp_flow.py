"""RealNVP flows (Dinh et al. 2017) as ordinary NumPyro distributions, their weights NNX Params.

:class:`RealNVP` is a Flax NNX module holding every weight of a flow (the
coupling conditioners and the normalisation layers' affine parameters); called,
it returns a ``TransformedDistribution`` of a standard normal base of the
event's shape through the transforms of :mod:`invppl.distributions.realnvp`.
For images ``(H, W, C)`` it is the multi-scale architecture: per scale,
checkerboard couplings, a squeeze, channel couplings, and half of the channels
factored out, the rest going on to the next scale; the last scale has
checkerboard couplings only. For vectors ``(D,)`` it is a stack of couplings
with alternating masks. An optional normalisation (``"actnorm"`` or
``"batchnorm"``) comes before each coupling, on the data side.

Inside a model, :func:`realnvp_sample` registers the weights (``nnx_module``)
and, for batch normalisation, the running statistics (a ``numpyro.mutable``
site) and samples or scores the site; :func:`initialize_actnorm` is ActNorm's
data-dependent initialisation.

>>> import jax, jax.numpy as jnp
>>> from flax import nnx
>>> flow = RealNVP((2,), couplings=2, width=8, rngs=nnx.Rngs(0))
>>> d = flow()
>>> d.event_shape, d.log_prob(jnp.zeros((5, 2))).shape
((2,), (5,))
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Literal

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from flax import nnx
from jax import Array
from jax.typing import ArrayLike
from numpyro.contrib.module import nnx_module
from numpyro.distributions.transforms import ComposeTransform, Transform
from numpyro.primitives import mutable

from invppl._checks import check_int
from invppl.distributions.realnvp import (
    ActNorm,
    AffineCoupling,
    BatchNorm,
    FactorOut,
    Squeeze,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
)
from invppl.nn.coupling import MLPConditioner
from invppl.nn.realnvp_nets import ResNetConditioner

__all__ = ["RealNVP", "initialize_actnorm", "realnvp_sample"]

Normalization = Literal["actnorm", "batchnorm"] | None
BatchNormState = dict[str, dict[str, Array]]
"""``{step: {"mean": (C,), "var": (C,)}}``, the running statistics of each batch-norm layer."""


class _Affine(nnx.Module):
    """A normalisation layer's learnt per-channel ``log_scale`` and ``shift`` ``(C,)``."""

    def __init__(self, channels: int) -> None:
        self.log_scale = nnx.Param(jnp.zeros((channels,)))
        self.shift = nnx.Param(jnp.zeros((channels,)))


class _Step(nnx.Module):
    """One coupling (static mask ``b``, conditioner) and its optional normalisation."""

    def __init__(self, mask: np.ndarray, conditioner: nnx.Module, norm: _Affine | None) -> None:
        self.mask = tuple(map(tuple, mask.reshape(mask.shape[0], -1)))  # static
        self.shape = mask.shape
        self.conditioner = conditioner
        self.norm = norm

    def b(self) -> np.ndarray:
        return np.asarray(self.mask, dtype=bool).reshape(self.shape)


class RealNVP(nnx.Module):
    """A RealNVP flow over events ``(H, W, C)`` (multi-scale) or ``(D,)`` (couplings).

    Args:
        event_shape: ``(H, W, C)`` with H and W divisible by ``2**(num_scales − 1)``,
            or ``(D,)`` with ``D ≥ 2`` (then ``num_scales`` must be 1).
        num_scales: image scales; each but the last squeezes and factors out half.
        couplings: couplings per half-scale for images (``couplings + 1`` at the
            last scale, as in the paper with 3), or in all for vectors.
        width, blocks: the conditioners' hidden width and residual blocks (MLP
            depth for vectors).
        normalization: ``"actnorm"``, ``"batchnorm"`` or None, before each coupling.
        log_scale_bound: the couplings' soft clamp of ``s`` (see
            :class:`~invppl.distributions.AffineCoupling`); None for none.
        momentum: batch norm's running-statistics decay.
        rngs: the initialisation's random streams.
    """

    def __init__(
        self,
        event_shape: tuple[int, ...],
        *,
        num_scales: int = 1,
        couplings: int = 3,
        width: int = 32,
        blocks: int = 2,
        normalization: Normalization = None,
        log_scale_bound: float | None = 3.0,
        momentum: float = 0.9,
        rngs: nnx.Rngs,
    ) -> None:
        self.event_shape = tuple(int(n) for n in event_shape)
        self.num_scales = check_int(num_scales, "num_scales", minimum=1)
        couplings = check_int(couplings, "couplings", minimum=1)
        if normalization not in ("actnorm", "batchnorm", None):
            raise ValueError(
                f'normalization must be "actnorm", "batchnorm" or None, got {normalization!r}'
            )
        self.normalization = normalization
        self.log_scale_bound, self.momentum = log_scale_bound, float(momentum)
        masks = _plan_masks(self.event_shape, self.num_scales, couplings)
        steps = []
        for mask in masks:
            if len(self.event_shape) == 1:
                size = self.event_shape[0]
                net: nnx.Module = MLPConditioner(
                    (size,), (size, 2), 0, width=width, depth=blocks, rngs=rngs
                )
            else:
                net = ResNetConditioner(mask.shape[-1], width=width, blocks=blocks, rngs=rngs)
            norm = None if normalization is None else _Affine(mask.shape[-1])
            steps.append(_Step(mask, net, norm))
        self.steps = nnx.List(steps)
        self.couplings = couplings

    @property
    def event_dim(self) -> int:
        return len(self.event_shape)

    def batch_norm_state(self) -> BatchNormState:
        """The initial running statistics (mean 0, variance 1) of each batch-norm layer."""
        if self.normalization != "batchnorm":
            return {}
        return {
            str(i): {"mean": jnp.zeros(step.shape[-1]), "var": jnp.ones(step.shape[-1])}
            for i, step in enumerate(self.steps)
        }

    def _step_transforms(
        self, ids: range, training: bool, state: MutableMapping[str, Any] | None
    ) -> list[Transform]:
        """The steps ``ids`` (data→latent order) as transforms in latent→data order."""
        parts: list[Transform] = []
        for i in reversed(ids):
            step = self.steps[i]
            parts.append(
                AffineCoupling(step.b(), step.conditioner, log_scale_bound=self.log_scale_bound)
            )
            if step.norm is not None:
                parts.append(self._norm(i, step, training, state))
        return parts

    def _norm(
        self, i: int, step: _Step, training: bool, state: MutableMapping[str, Any] | None
    ) -> Transform:
        event_dim = len(step.shape)
        assert step.norm is not None
        log_scale, shift = step.norm.log_scale[...], step.norm.shift[...]
        if self.normalization == "actnorm":
            return ActNorm(log_scale, shift, event_dim=event_dim)
        statistics = self.batch_norm_state()[str(i)] if state is None else state[str(i)]
        return BatchNorm(
            log_scale,
            shift,
            statistics,
            event_dim=event_dim,
            training=training,
            momentum=self.momentum,
        )

    def transforms(
        self, *, training: bool = False, state: MutableMapping[str, Any] | None = None
    ) -> list[Transform]:
        """The flow's transforms, latent→data order (as ``TransformedDistribution`` takes them).

        Args:
            training: batch norm with batch statistics (updating ``state``).
            state: batch norm's running statistics (:meth:`batch_norm_state`'s
                structure); the initial ones when None.
        """
        first = 0
        shape = self.event_shape
        levels: list[tuple[range, range, int]] = []
        for _ in range(self.num_scales - 1):
            checker = range(first, first + self.couplings)
            channel = range(checker.stop, checker.stop + self.couplings)
            first, shape = channel.stop, (shape[0] // 2, shape[1] // 2, 2 * shape[2])
            levels.append((checker, channel, shape[2]))
        parts = self._step_transforms(range(first, len(self.steps)), training, state)
        for checker, channel, factored in reversed(levels):
            inner = FactorOut(ComposeTransform(parts), factored)
            parts = [
                Squeeze(),
                inner,
                *self._step_transforms(channel, training, state),
                Squeeze().inv,
                *self._step_transforms(checker, training, state),
            ]
        return parts

    def __call__(
        self, *, training: bool = False, state: MutableMapping[str, Any] | None = None
    ) -> dist.TransformedDistribution:
        """The flow as a NumPyro distribution, ``event_shape = self.event_shape``.

        See :meth:`transforms` for the arguments.
        """
        base = dist.Normal(jnp.zeros(self.event_shape), 1.0).to_event(self.event_dim)
        return dist.TransformedDistribution(base, self.transforms(training=training, state=state))


def _plan_masks(event_shape: tuple[int, ...], num_scales: int, couplings: int) -> list[np.ndarray]:
    """Every coupling's ``b``, in data→latent order: per scale checkerboards, then channels."""
    if len(event_shape) == 1:
        if num_scales != 1:
            raise ValueError(f"a vector event {event_shape} has one scale, got {num_scales}")
        return [alternating_mask(event_shape[0], parity=i) for i in range(couplings)]
    if len(event_shape) != 3 or min(event_shape) < 1:
        raise ValueError(f"event_shape must be (H, W, C) or (D,), got {event_shape}")
    height, width, channels = event_shape
    factor = 2 ** (num_scales - 1)
    if height % factor or width % factor:
        raise ValueError(
            f"an image of {height}×{width} cannot be squeezed {num_scales - 1} times: "
            f"H and W must be divisible by {factor}"
        )
    masks = []
    shape = (height, width, channels)
    for _ in range(num_scales - 1):
        masks += [checkerboard_mask(shape, parity=i) for i in range(couplings)]
        squeezed = (shape[0] // 2, shape[1] // 2, 4 * shape[2])
        masks += [channel_mask(squeezed, parity=i) for i in range(couplings)]
        shape = (squeezed[0], squeezed[1], 2 * shape[2])
    if shape[0] * shape[1] * shape[2] < 2:
        raise ValueError(f"the last scale's event {shape} leaves no dimension to condition on")
    return masks + [checkerboard_mask(shape, parity=i) for i in range(couplings + 1)]


def realnvp_sample(
    name: str,
    flow: RealNVP,
    *,
    obs: ArrayLike | None = None,
    training: bool = False,
    module_name: str | None = None,
) -> Array:
    """``numpyro.sample(name, flow(...), obs=obs)`` with the flow's weights registered.

    The weights are the param site ``f"{module_name}$params"``
    (``nnx_module``); batch norm's running statistics are the mutable site
    ``f"{module_name}$batch_norm"``, updated when ``training`` and
    ``obs`` is scored by ``Trace_ELBO``. ``module_name`` defaults to
    ``f"{name}_flow"``. Put the call inside ``numpyro.plate("data", n)``.

    >>> import jax, jax.numpy as jnp, numpyro
    >>> from flax import nnx
    >>> flow = RealNVP((2,), couplings=2, width=4, rngs=nnx.Rngs(0))
    >>> def model(x):
    ...     with numpyro.plate("data", x.shape[0]):
    ...         realnvp_sample("x", flow, obs=x)
    >>> trace = numpyro.handlers.trace(numpyro.handlers.seed(model, 0)).get_trace(jnp.ones((3, 2)))
    >>> trace["x_flow$params"]["type"], trace["x"]["fn"].event_shape
    ('param', (2,))
    """
    module_name = f"{name}_flow" if module_name is None else module_name
    state = None
    if flow.normalization == "batchnorm":
        state = mutable(f"{module_name}$batch_norm", flow.batch_norm_state())
    distribution = nnx_module(module_name, flow)(training=training, state=state)
    return numpyro.sample(name, distribution, obs=obs)


def initialize_actnorm(flow: RealNVP, x: ArrayLike) -> RealNVP:
    """A copy of ``flow`` whose ActNorm layers normalise the batch ``x`` ``(n, *event)``.

    Walks ``x`` from the data side; each ActNorm gets the per-channel mean and
    log standard deviation of its input (with the layers before it already
    initialised), so that its output has mean 0 and variance 1 per channel.
    """
    if flow.normalization != "actnorm":
        raise ValueError(f"initialize_actnorm needs an actnorm flow, got {flow.normalization!r}")
    x = jnp.asarray(x)
    if x.ndim != flow.event_dim + 1 or x.shape[1:] != flow.event_shape or x.shape[0] < 2:
        raise ValueError(
            f"initialize_actnorm: x must be (n ≥ 2, *{flow.event_shape}), got shape {x.shape}"
        )
    flow = nnx.clone(flow)
    found: list[ActNorm] = []
    _initialize(flow.transforms(), x, found)
    norms = [step.norm for step in flow.steps if step.norm is not None]
    for norm, actnorm in zip(norms, found, strict=True):
        norm.log_scale[...] = actnorm.log_scale
        norm.shift[...] = actnorm.shift
    return flow


def _initialize(parts: list[Transform], y: Array, found: list[ActNorm]) -> Array:
    """Runs ``y`` data→latent through ``parts``, initialising each ActNorm on its input."""
    for part in reversed(parts):
        if isinstance(part, ActNorm):
            part = ActNorm.from_data(y, event_dim=part.event_dim)
            found.append(part)
        if isinstance(part, FactorOut):
            kept, moved = y[..., : -part.channels], y[..., -part.channels :]
            inner = part.inner.parts if isinstance(part.inner, ComposeTransform) else [part.inner]
            y = jnp.concatenate([kept, _initialize(list(inner), moved, found)], axis=-1)
        else:
            y = part.inv(y)
    return y
